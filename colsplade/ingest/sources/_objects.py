"""Sources of objects already parsed: a Python iterable of mappings, and the documents of an index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from colsplade.engines import scan_index
from colsplade.ingest.sources._base import Record, Source

__all__ = ["IndexSource", "IterableSource"]


class IterableSource(Source):
    """Any Python iterable of dicts; resuming skips the number of items the checkpoint counts."""

    kind = "iterable"

    def __init__(self, items: Iterable[Any], *, name: str = "iterable") -> None:
        self.items = items
        self.name = name

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def total(self) -> int | None:
        try:
            return len(self.items)  # type: ignore[arg-type]
        except TypeError:
            return None

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record]:
        skip = int(resume.get("item", 0)) if resume else 0
        for i, item in enumerate(self.items):
            if i < skip:
                continue
            position = {"item": i + 1}
            if isinstance(item, Mapping):
                yield Record(i, position, doc=dict(item))
            else:
                yield Record(
                    i, position, error=f"a {type(item).__name__}, not a mapping", raw=repr(item)[:1000]
                )


class IndexSource(Source):
    """The documents of an index of the connected cluster, read from one point in time.

    Positions count the documents read; a point in time does not outlive the run, so a resumed run reads
    again from the start (``_id`` s are the index's own, so the rewrite is idempotent) unless ``query``
    excludes what is done (the in-place re-encode does that by model version).
    """

    kind = "index"

    def __init__(
        self,
        client: Any,
        index: str,
        *,
        query: Mapping[str, Any] | None = None,
        batch_size: int = 500,
        keep_alive: str = "10m",
        source_excludes: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.index = index
        self.query = query
        self.batch_size = batch_size
        self.keep_alive = keep_alive
        self.source_excludes = source_excludes

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index}

    def total(self) -> int | None:
        return self.client.count(self.index, self.query)

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record]:
        for i, hit in enumerate(
            scan_index(
                self.client,
                self.index,
                query=self.query,
                batch_size=self.batch_size,
                keep_alive=self.keep_alive,
                source_excludes=self.source_excludes,
            )
        ):
            yield Record(i, {"read": i + 1}, doc=hit.source, doc_id=hit.doc_id)
