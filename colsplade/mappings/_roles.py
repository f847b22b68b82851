"""Least-privilege roles for colsplade's two kinds of job, as plain dicts (no request is sent here).

An ingest job and a search service hold different credentials. :func:`ingest_role` may create and update
colsplade's indices and aliases, write documents and read the index it re-encodes; :func:`search_role` may
only read. Both return plain dicts, in the format of the engine's security API (the OpenSearch security
plugin's ``_plugins/_security/api/roles``, or Elasticsearch's ``_security/role``), so an operator can print
them (``colsplade engine roles``), review them and apply them with their own tooling
(:func:`colsplade.engines.put_role`), and a secured local node writes them into its files
(:mod:`colsplade.local`).

>>> role = search_role(["docs*"], engine="opensearch")
>>> role["index_permissions"][0]["index_patterns"]
['docs*']
>>> "indices:data/write/bulk*" in role["index_permissions"][0]["allowed_actions"]
False
>>> ingest_role(["docs*"], engine="elasticsearch")["indices"][0]["privileges"]
['create_index', 'manage', 'read', 'view_index_metadata', 'write']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from colsplade._types import EngineName
from colsplade.exceptions import InvalidInputError

__all__ = ["ROLE_NAMES", "ingest_role", "role_body", "search_role"]

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
