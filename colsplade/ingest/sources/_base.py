"""The contract every source follows (:class:`Source`, :class:`Record`) and the JSON-line parser they share.

Every source yields :class:`Record` objects in a fixed order, each with the *position after it*: what a
checkpoint stores, and what :meth:`Source.records` takes back to resume right after the last acknowledged
record. A record that cannot be read (malformed JSON, bytes that are not UTF-8, not an object) still comes
out, with ``error`` set, so it reaches the dead-letter file in order instead of vanishing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from colsplade.ingest._checkpoint import DeadLetterWriter

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "Record", "Source", "is_blank", "parse_json_line"]

#: Lines longer than this are not parsed (a dead letter says why): one bad line must not eat the memory.
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024


@dataclass
class Record:
    """One document from a source.

    ``seq``: 0-based ordinal within this run; ``position``: where to resume *after* this record;
    ``doc``: the parsed object, or None when ``error`` says why it could not be read (``raw`` then holds
    the text, undecodable bytes escaped); ``doc_id``: an id the source itself knows (an index's ``_id``,
    a Kafka message's key); ``delete``: the source says the document ``doc_id`` is gone (a Kafka tombstone).
    """

    seq: int
    position: dict[str, Any]
    doc: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None
    doc_id: str | None = None
    delete: bool = False


class Source:
    """Base class: a named, ordered, resumable stream of :class:`Record`.

    A source that keeps its own position (a Kafka consumer group's committed offsets) sets
    ``self_committing`` and uses the hooks the pipeline calls: :meth:`accepts` before a record is encoded
    and written, :meth:`acknowledge` once records are settled (acknowledged by the engine or
    dead-lettered, the dead letters synced), :meth:`dead_letters` for the run's dead-letter writer,
    :meth:`close` when the run ends and :meth:`stats` for the progress line and the summary. A source may
    yield ``None`` to say it is idle for now: what is batched is then passed on instead of waiting.
    """

    kind = "source"
    self_committing = False

    def signature(self) -> dict[str, Any]:
        """What identifies this source in a checkpoint (a checkpoint of another source is refused)."""
        return {"kind": self.kind}

    def total(self) -> int | None:
        """Number of records when cheaply known (for the progress bar's ETA), else None."""
        return None

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record]:
        """The records in order, starting right after the position ``resume`` (a checkpoint's)."""
        raise NotImplementedError

    def accepts(self, record: Record) -> bool:
        """Whether ``record`` is still wanted (False: its partition was revoked, drop it)."""
        return True

    def acknowledge(self, records: Sequence[Record]) -> None:
        """``records`` are settled: the engine acknowledged them or their dead letters are synced."""

    def dead_letters(self, path: str | os.PathLike[str] | None) -> DeadLetterWriter:
        """The dead-letter writer of a run reading this source."""
        return DeadLetterWriter(path)

    def close(self) -> None:
        """The run is over (finished, stopped or failed): release what the source holds."""

    def stats(self) -> dict[str, Any] | None:
        """Figures of a stream (consumer lag, throughput) for the progress line and the summary."""
        return None


def parse_json_line(
    line: bytes, seq: int, position: dict[str, Any], max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Record:
    """One line of JSONL (or one message value) -> a :class:`Record`: the object, or why it is unusable.

    ``seq`` and ``position`` are passed through to the record; ``position`` says where the line is (its
    ``line`` number in a file, its topic, partition and offset in Kafka), so a dead letter points at it.
    Never raises on bad input: a line over ``max_bytes``, bytes that are not UTF-8, malformed JSON or a
    JSON value that is not an object give a record with ``error`` set and ``raw`` holding the text
    (undecodable bytes backslash-escaped, an oversized line cut at 1000 bytes). A UTF-8 byte order mark
    is ignored.

    >>> parse_json_line(b'{"id": 1}\\n', 0, {"line": 1}).doc
    {'id': 1}
    >>> bad = parse_json_line(b"[1, 2]", 1, {"line": 2})
    >>> bad.error, bad.raw, bad.position
    ('a JSON list, not an object', '[1, 2]', {'line': 2})
    >>> parse_json_line(b'{"t": "\\xff"}', 2, {"line": 3}).error
    'not valid UTF-8 (byte 7: invalid start byte)'
    >>> parse_json_line(b'{"id": }', 3, {"line": 4}).error
    'malformed JSON: Expecting value: line 1 column 8 (char 7)'
    >>> parse_json_line(b'{"id": 1}', 4, {"line": 5}, max_bytes=4).error
    'record of 9 bytes is larger than the limit of 4 bytes'
    """
    if len(line) > max_bytes:
        return Record(
            seq,
            position,
            error=f"record of {len(line)} bytes is larger than the limit of {max_bytes} bytes",
            raw=line[:1000].decode("utf-8", "backslashreplace") + "...",
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(
            seq,
            position,
            error=f"not valid UTF-8 (byte {exc.start}: {exc.reason})",
            raw=line.decode("utf-8", "backslashreplace"),
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return Record(seq, position, error=f"malformed JSON: {exc}", raw=text)
    if not isinstance(doc, dict):
        return Record(seq, position, error=f"a JSON {type(doc).__name__}, not an object", raw=text)
    return Record(seq, position, doc=doc)


def is_blank(line: bytes) -> bool:
    """Whether a line holds only whitespace (skipped in JSONL, never a dead letter).

    >>> is_blank(b"  \\r\\n"), is_blank(b"{}")
    (True, False)
    """
    return not line.strip()
