"""Reading a whole index in a consistent view (point in time + ``search_after``), and alias switches.

Elasticsearch opens a point in time with ``POST /<index>/_pit``; OpenSearch (2.4+) with
``POST /<index>/_search/point_in_time``. Both then page with ``POST /_search`` carrying ``pit.id`` and a
``search_after`` on a total order: ``_shard_doc`` on Elasticsearch (the cheapest), ``_id`` on OpenSearch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from colsplade.engines._client import EngineClient
from colsplade.exceptions import EngineRefusedError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "ScanHit",
    "alias_indices",
    "close_point_in_time",
    "next_version",
    "open_point_in_time",
    "resolve_alias",
    "scan_index",
    "seq_no_mark",
    "switch_alias",
]


#: A total order for ``search_after`` within a point in time. OpenSearch (2.19) has no ``_shard_doc``;
#: ``_id`` is unique per index and sortable there (through deprecated fielddata), ``_doc`` within one shard.
_SORT: dict[str, list[dict[str, str]]] = {
    "elasticsearch": [{"_shard_doc": "asc"}],
    "opensearch": [{"_id": "asc"}],
}


@dataclass(frozen=True)
class ScanHit:
    """One document of a scan: its ``_id``, ``_source`` and the sort values to resume after it."""

    doc_id: str
    source: dict[str, Any]
    sort: list[Any]


def _index_path(client: EngineClient, index: str) -> str:
    return client._index_path(index)


def open_point_in_time(client: EngineClient, index: str, keep_alive: str = "5m") -> str:
    """Open a point in time on ``index`` and return its id."""
    if client.engine == "elasticsearch":
        answer = client.request(
            "POST", _index_path(client, index) + "/_pit", params={"keep_alive": keep_alive}
        )
        return str(answer["id"])
    answer = client.request(
        "POST", _index_path(client, index) + "/_search/point_in_time", params={"keep_alive": keep_alive}
    )
    return str(answer["pit_id"])


def close_point_in_time(client: EngineClient, pit_id: str) -> None:
    """Release a point in time (a missing one is not an error: it may have expired)."""
    try:
        if client.engine == "elasticsearch":
            client.request("DELETE", "/_pit", body={"id": pit_id})
        else:
            client.request("DELETE", "/_search/point_in_time", body={"pit_id": [pit_id]})
    except EngineRefusedError as exc:
        if exc.status != 404:
            raise


def scan_index(
    client: EngineClient,
    index: str,
    *,
    query: Mapping[str, Any] | None = None,
    batch_size: int = 500,
    keep_alive: str = "5m",
    source_excludes: Sequence[str] = (),
    source_includes: Sequence[str] = (),
) -> Iterator[ScanHit]:
    """Every document of ``index`` (matching ``query``), in ``_shard_doc`` order, from one point in time.

    ``source_includes`` / ``source_excludes`` filter each hit's ``_source`` (only the text fields of a
    colsplade index, say, instead of its token codes).

    Writes made to the index after the scan started are not seen, so re-encoding into the same index in
    place never reads its own output. The point in time is closed when the iterator finishes or is closed.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    sort = _SORT[client.engine]
    if client.engine == "opensearch" and _shards(client, index) == 1:
        # Within one shard the Lucene doc id is a total order, and costs no fielddata on _id.
        sort = [{"_doc": "asc"}]
    # the documents as stored: vector fields too, where the engine leaves them out by default
    with_vectors = client.capabilities().source_with_vectors
    pit_id = open_point_in_time(client, index, keep_alive)
    search_after: list[Any] | None = None
    try:
        while True:
            body: dict[str, Any] = {
                "size": batch_size,
                "query": dict(query) if query else {"match_all": {}},
                "pit": {"id": pit_id, "keep_alive": keep_alive},
                "sort": sort,
                "track_total_hits": False,
            }
            if source_excludes or source_includes:
                body["_source"] = {
                    **({"includes": list(source_includes)} if source_includes else {}),
                    **({"excludes": list(source_excludes)} if source_excludes else {}),
                }
            source = with_vectors(body.get("_source", True))
            if source is not True:
                body["_source"] = source
            if search_after is not None:
                body["search_after"] = search_after
            answer = client.request("POST", "/_search", body=body)
            # The engine may hand back a new id for the same point in time; the newest one must be used.
            pit_id = str(answer.get("pit_id", pit_id))
            hits = answer.get("hits", {}).get("hits", [])
            if not hits:
                return
            for hit in hits:
                yield ScanHit(doc_id=str(hit["_id"]), source=hit.get("_source") or {}, sort=hit["sort"])
            search_after = hits[-1]["sort"]
    finally:
        try:
            close_point_in_time(client, pit_id)
        except Exception:
            logger.debug("could not close point in time", exc_info=True)


def _shards(client: EngineClient, index: str) -> int:
    answer = client.request(
        "GET", _index_path(client, index) + "/_settings", params={"flat_settings": "true"}
    )
    counts = {int(v["settings"].get("index.number_of_shards", 0)) for v in answer.values()}
    return counts.pop() if len(counts) == 1 else 0


def alias_indices(client: EngineClient, alias: str) -> list[str]:
    """The indices ``alias`` points to (empty when there is no such alias)."""
    try:
        # Scoped to the name itself (not GET /_alias/NAME, which reads every index's aliases): a user
        # holding privileges on this alias and its indices only may ask.
        name = quote(alias, safe="")
        answer = client.request("GET", f"/{name}/_alias/{name}")
    except EngineRefusedError as exc:
        if exc.status == 404:
            return []
        raise
    return sorted(name for name, info in answer.items() if alias in (info.get("aliases") or {}))


def switch_alias(client: EngineClient, alias: str, index: str) -> list[str]:
    """Point ``alias`` at ``index`` only, in one atomic request; returns the indices it left."""
    previous = [name for name in alias_indices(client, alias) if name != index]
    actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": alias}} for name in previous]
    actions.append({"add": {"index": index, "alias": alias}})
    client.request("POST", "/_aliases", body={"actions": actions})
    logger.info("alias %s now points to %s (was %s)", alias, index, ", ".join(previous) or "nothing")
    return previous


def seq_no_mark(client: EngineClient, index: str) -> int:
    """The lowest ``max_seq_no`` over ``index``'s primary shards (-1 for an empty index).

    Every write after this call has a larger ``_seq_no`` on its shard, so ``{"range": {"_seq_no": {"gt":
    mark}}}`` finds all of them (and, with several shards, a few older documents of the busier shards).
    """
    name = quote(index, safe="")
    stats = client.request("GET", f"/{name}/_stats/docs", params={"level": "shards"})
    marks = []
    for info in (stats.get("indices") or {}).values():
        for copies in (info.get("shards") or {}).values():
            for copy in copies:
                if (copy.get("routing") or {}).get("primary"):
                    marks.append(int((copy.get("seq_no") or {}).get("max_seq_no", -1)))
    return min(marks) if marks else -1


def resolve_alias(client: EngineClient, name: str, alias: str | None = None) -> tuple[str, str]:
    """-> ``(alias, concrete index)`` of a job that re-encodes ``name`` and points an alias at the result.

    ``name`` an alias on one index: ``alias`` (default ``name``) and that index. ``name`` an index:
    ``alias`` must be given, and must not be the name of an index. Anything else raises
    :class:`InvalidInputError` saying what to name.
    """
    current = alias_indices(client, name)
    if current:
        if len(current) != 1:
            raise InvalidInputError(
                f"alias {name!r} points to {len(current)} indices ({', '.join(current)}); name one of them"
            )
        return alias or name, current[0]
    if not client.index_exists(name):
        raise InvalidInputError(f"no index or alias named {name!r} on {client.engine}")
    if alias is None:
        raise InvalidInputError(
            f"{name!r} is an index, not an alias: name the alias the search will read (--alias NAME); the "
            f"switch points that alias at the new index, and {name!r} itself is never modified"
        )
    if not alias_indices(client, alias) and client.index_exists(alias):
        raise InvalidInputError(f"{alias!r} is an index; an alias cannot take its name")
    return alias, name


def next_version(client: EngineClient, alias: str) -> str:
    """The first ``<alias>-v<n>`` (n = 1, 2, ...) that is no index yet."""
    n = 1
    while client.index_exists(f"{alias}-v{n}"):
        n += 1
    return f"{alias}-v{n}"
