"""Least-privilege roles for colsplade's two kinds of job, and the calls that make roles and users.

An ingest job and a search service hold different credentials. :func:`ingest_role` may create and update
colsplade's indices and aliases, write documents and read the index it re-encodes; :func:`search_role` may
only read. Both return plain dicts, in the format of the engine's security API (the OpenSearch security
plugin's ``_plugins/_security/api/roles``, or Elasticsearch's ``_security/role``), so an operator can print
them (``colsplade engine roles``), review them and apply them with their own tooling.

>>> role = search_role(["docs*"], engine="opensearch")
>>> role["index_permissions"][0]["index_patterns"]
['docs*']
>>> "indices:data/write/bulk*" in role["index_permissions"][0]["allowed_actions"]
False
>>> ingest_role(["docs*"], engine="elasticsearch")["indices"][0]["privileges"]
['create_index', 'manage', 'read', 'view_index_metadata', 'write']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from colsplade._logging import quiet_logger
from colsplade._types import EngineName
from colsplade.config import Secret
from colsplade.engines._client import EngineClient
from colsplade.exceptions import EngineAuthorizationError, EngineRefusedError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "ROLE_NAMES",
    "check_write_privileges",
    "delete_user",
    "ingest_role",
    "put_role",
    "put_user",
    "role_body",
    "search_role",
]

ROLE_NAMES = ("colsplade_ingest", "colsplade_search")

# Every job asks which engine and version it talks to (GET /) and the node's modules and plugins (field
# types, painless); an ingest job also waits for the health of the indices it creates.
# A hybrid plan sends its sub-searches in one _msearch: the security plugin checks that composite action at
# the cluster level (each sub-search is then checked against the index permissions as a search).
_CLUSTER_SEARCH = ("cluster:monitor/main", "cluster:monitor/nodes/info", "indices:data/read/msearch")
_CLUSTER_INGEST = (*_CLUSTER_SEARCH, "cluster:monitor/health")

# Each action below was found necessary by dropping it and running ingest, re-encoding an index behind an
# alias and hybrid search on the real secured node, except two kept on purpose: get/mget (backend code
# fetches documents by id) and point_in_time/delete (closing a scan's point in time; a refusal is only
# logged, and the engine would keep the snapshot until its keep-alive ends).
_OPENSEARCH_SEARCH = (
    "indices:data/read/search*",
    "indices:data/read/get*",
    "indices:data/read/mget*",
    "indices:admin/mappings/get",
)
# Reading a whole index to re-encode it: resolve it (alias or index), its settings, a point in time, and
# its shards' sequence numbers (the catch-up pass over documents written during the re-encode).
_OPENSEARCH_SCAN = (
    "indices:monitor/stats",
    "indices:data/read/search*",
    "indices:admin/mappings/get",
    "indices:admin/get",
    "indices:admin/aliases/get",
    "indices:monitor/settings/get",
    "indices:data/read/point_in_time/create",
)
_OPENSEARCH_WRITE = (
    "indices:admin/create",
    "indices:admin/mapping/put",
    "indices:admin/aliases",
    "indices:admin/refresh*",
    "indices:monitor/stats",
    "indices:data/write/*",
)
_OPENSEARCH_CLUSTER_WRITE = ("cluster:admin/point_in_time/delete", "indices:data/write/bulk")


def _check_patterns(index_patterns: Sequence[str]) -> list[str]:
    patterns = [str(p) for p in index_patterns]
    if not patterns or any(not p.strip() for p in patterns):
        raise InvalidInputError(
            "give at least one index pattern, e.g. 'docs*' for the alias docs and its docs-vN"
        )
    return patterns


def search_role(index_patterns: Sequence[str], *, engine: EngineName) -> dict[str, Any]:
    """Read only: search, get, mappings and aliases of ``index_patterns``; nothing that writes."""
    patterns = _check_patterns(index_patterns)
    if engine == "elasticsearch":
        return {
            "cluster": ["monitor"],
            "indices": [{"names": patterns, "privileges": ["read", "view_index_metadata"]}],
        }
    return {
        "cluster_permissions": list(_CLUSTER_SEARCH),
        "index_permissions": [{"index_patterns": patterns, "allowed_actions": list(_OPENSEARCH_SEARCH)}],
    }


def ingest_role(
    index_patterns: Sequence[str], *, source_patterns: Sequence[str] = (), engine: EngineName
) -> dict[str, Any]:
    """Create and update indices and aliases matching ``index_patterns`` and write their documents; read
    ``source_patterns`` too (the existing index a migration re-encodes). On OpenSearch it cannot delete
    indices; on Elasticsearch the ``manage`` privilege (aliases, settings, refresh) includes deleting the
    indices of ``index_patterns``.

    Patterns should cover both the alias and its versioned indices (``docs*`` covers ``docs``, ``docs-v2``).
    """
    patterns = _check_patterns(index_patterns)
    sources = [str(p) for p in source_patterns]
    if engine == "elasticsearch":
        indices = [
            {
                "names": patterns,
                "privileges": ["create_index", "manage", "read", "view_index_metadata", "write"],
            }
        ]
        if sources:
            indices.append({"names": sources, "privileges": ["read", "view_index_metadata", "monitor"]})
        return {"cluster": ["monitor"], "indices": indices}
    # Its own indices are read too: re-encoding an alias into its next version scans the current one.
    own = list(dict.fromkeys([*_OPENSEARCH_SEARCH, *_OPENSEARCH_SCAN, *_OPENSEARCH_WRITE]))
    permissions = [{"index_patterns": patterns, "allowed_actions": own}]
    if sources:
        permissions.append({"index_patterns": sources, "allowed_actions": list(_OPENSEARCH_SCAN)})
    return {
        "cluster_permissions": [*_CLUSTER_INGEST, *_OPENSEARCH_CLUSTER_WRITE],
        "index_permissions": permissions,
    }


def role_body(name: str, engine: EngineName, index_patterns: Sequence[str] = ("*",)) -> dict[str, Any]:
    """The body of one of :data:`ROLE_NAMES` over ``index_patterns`` (all indices by default)."""
    if name == "colsplade_ingest":
        return ingest_role(index_patterns, engine=engine)
    if name == "colsplade_search":
        return search_role(index_patterns, engine=engine)
    raise InvalidInputError(f"unknown role {name!r}; colsplade defines {', '.join(ROLE_NAMES)}")


def _security_path(client: EngineClient, kind: str, name: str) -> str:
    if client.engine == "elasticsearch":
        return f"/_security/{kind}/{quote(name, safe='')}"
    kind = {"role": "roles", "user": "internalusers"}[kind]
    return f"/_plugins/_security/api/{kind}/{quote(name, safe='')}"


@contextlib.contextmanager
def _security_index_hint() -> Iterator[None]:
    """Name the way out when Elasticsearch cannot create its ``.security`` index: the integ-test zip a local
    node runs lacks ``analysis-common``, whose ``pattern_capture`` filter that index's mapping uses."""
    try:
        yield
    except EngineRefusedError as exc:
        if type(exc) is not EngineRefusedError or "pattern_capture" not in exc.reason:
            raise
        raise EngineRefusedError(
            exc.status,
            exc.error_type,
            exc.reason,
            exc.body,
            "This Elasticsearch cannot create its .security index, where the REST API keeps users, roles "
            "and API keys (a local node from the integ-test zip has no analysis-common module); its users "
            "and roles live in files: colsplade.engines.put_file_user / put_file_role",
        ) from None


def put_role(client: EngineClient, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create or replace the role ``name`` (needs a user allowed to manage security). On a secured local
    Elasticsearch node (a file realm) use :func:`~colsplade.engines.put_file_role` instead."""
    with _security_index_hint():
        return client.request("PUT", _security_path(client, "role", name), body=body)


def put_user(
    client: EngineClient, username: str, password: str | Secret, roles: Sequence[str]
) -> dict[str, Any]:
    """Create or replace an internal user holding ``roles`` (the password is sent, never logged). On a
    secured local Elasticsearch node (a file realm) use :func:`~colsplade.engines.put_file_user` instead."""
    secret = password.reveal() if isinstance(password, Secret) else str(password)
    if client.engine == "elasticsearch":
        body: dict[str, Any] = {"password": secret, "roles": list(roles)}
    else:
        body = {"password": secret, "opendistro_security_roles": list(roles)}
    with _no_body_logs(), _security_index_hint():
        return client.request("PUT", _security_path(client, "user", username), body=body)


def delete_user(client: EngineClient, username: str) -> dict[str, Any]:
    """Remove an internal user: its credentials stop working at once (a revoked job's password). On a
    secured local Elasticsearch node (a file realm) use :func:`~colsplade.engines.delete_file_user`."""
    return client.request("DELETE", _security_path(client, "user", username))


# The loggers through which the official clients write request bodies (at DEBUG, or INFO for the trace).
_BODY_LOGGERS = ("opensearch", "opensearchpy.trace", "elastic_transport.transport", "elastic_transport.node")


@contextlib.contextmanager
def _no_body_logs() -> Iterator[None]:
    """Keep a request that carries a password out of the clients' debug logs (warnings still pass)."""
    with contextlib.ExitStack() as stack:
        for name in _BODY_LOGGERS:
            stack.enter_context(quiet_logger(name, below=logging.WARNING))
        yield


def check_write_privileges(client: EngineClient, index: str, alias: str, job: str = "this job") -> None:
    """Do on a scratch index ``{index}-preflight`` what a re-encode behind an alias does (create an index,
    write and read a document, add an alias), so that a missing privilege stops a job before any work,
    with the action the engine refused and what the job needed it for. The scratch index is deleted after;
    a user who may not delete indices (the ``colsplade_ingest`` role) is told to delete it by hand."""
    probe = f"{index}-preflight"
    name = quote(probe, safe="")
    steps = [
        (
            "create its new index",
            "PUT",
            f"/{name}",
            {"settings": {"number_of_shards": 1, "number_of_replicas": 0}},
        ),
        ("write documents", "PUT", f"/{name}/_doc/probe", {"probe": True}),
        ("read documents", "POST", f"/{name}/_search", {"size": 0}),
        (
            "switch an alias",
            "POST",
            "/_aliases",
            {"actions": [{"add": {"index": probe, "alias": f"{probe}-alias"}}]},
        ),
    ]
    created = False
    try:
        for what, method, path, body in steps:
            try:
                client.request(method, path, body=body)
            except EngineAuthorizationError as exc:
                raise exc.with_hint(
                    f"{job} needs to {what} (indices {index}*, alias {alias}); the colsplade_ingest role "
                    "holds those privileges (README, 'Secured clusters')"
                ) from None
            created = True
    finally:
        if created:
            try:
                client.request("DELETE", f"/{name}")
            except EngineAuthorizationError:
                logger.warning(
                    "could not delete the scratch index %s (no privilege to delete): delete it by hand", probe
                )
