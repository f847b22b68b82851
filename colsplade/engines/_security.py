"""The calls that make roles and users on a cluster, and the write-privilege preflight of a job.

The role bodies themselves are pure and live in :mod:`colsplade.mappings` (``ingest_role``,
``search_role``, ``role_body``); they are re-exported here because the calls below take them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from colsplade._logging import quiet_logger
from colsplade.config import Secret
from colsplade.engines._client import EngineClient
from colsplade.exceptions import EngineAuthorizationError, EngineRefusedError
from colsplade.mappings import ROLE_NAMES, ingest_role, role_body, search_role

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
            "and roles live in files: colsplade.local.put_file_user / put_file_role",
        ) from None


def put_role(client: EngineClient, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create or replace the role ``name`` (needs a user allowed to manage security). On a secured local
    Elasticsearch node (a file realm) use :func:`~colsplade.local.put_file_role` instead."""
    with _security_index_hint():
        return client.request("PUT", _security_path(client, "role", name), body=body)


def put_user(
    client: EngineClient, username: str, password: str | Secret, roles: Sequence[str]
) -> dict[str, Any]:
    """Create or replace an internal user holding ``roles`` (the password is sent, never logged). On a
    secured local Elasticsearch node (a file realm) use :func:`~colsplade.local.put_file_user` instead."""
    secret = password.reveal() if isinstance(password, Secret) else str(password)
    if client.engine == "elasticsearch":
        body: dict[str, Any] = {"password": secret, "roles": list(roles)}
    else:
        body = {"password": secret, "opendistro_security_roles": list(roles)}
    with _no_body_logs(), _security_index_hint():
        return client.request("PUT", _security_path(client, "user", username), body=body)


def delete_user(client: EngineClient, username: str) -> dict[str, Any]:
    """Remove an internal user: its credentials stop working at once (a revoked job's password). On a
    secured local Elasticsearch node (a file realm) use :func:`~colsplade.local.delete_file_user`."""
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
