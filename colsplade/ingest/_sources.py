"""Where documents come from: JSONL / JSON files and globs, a byte stream (stdin), iterables, an index.

Every source yields :class:`Record` objects in a fixed order, each with the *position after it*: what a
checkpoint stores, and what :meth:`Source.records` takes back to resume right after the last acknowledged
record. A record that cannot be read (malformed JSON, bytes that are not UTF-8, not an object) still comes
out, with ``error`` set, so it reaches the dead-letter file in order instead of vanishing.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from colsplade.exceptions import InvalidInputError
from colsplade.ingest._checkpoint import DeadLetterWriter

logger = logging.getLogger(__name__)

__all__ = [
    "FileSource",
    "IndexSource",
    "IterableSource",
    "Record",
    "Source",
    "StreamSource",
]

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


def _parse_line(line: bytes, seq: int, position: dict[str, Any], max_bytes: int) -> Record:
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


def _is_blank(line: bytes) -> bool:
    return not line.strip()


class FileSource(Source):
    """JSONL files (one object per line), or JSON files holding one array of objects or one object.

    ``paths``: files or glob patterns, expanded and sorted (``data/*.jsonl``). Position: file number and
    byte offset after the last record (JSONL), or item number (JSON array).
    """

    kind = "files"

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        files: list[Path] = []
        for item in items:
            text = os.fspath(item)
            if glob.has_magic(text):
                matched = sorted(glob.glob(text, recursive=True))
                if not matched:
                    raise InvalidInputError(f"no file matches {text!r}")
                files.extend(Path(m) for m in matched)
            else:
                path = Path(text)
                if not path.is_file():
                    raise InvalidInputError(f"no such file: {text!r}")
                files.append(path)
        if not files:
            raise InvalidInputError("no input files given")
        self.files = files
        self.max_record_bytes = max_record_bytes
        self._total: int | None = None

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "files": [str(f.resolve()) for f in self.files]}

    def _is_array(self, path: Path) -> bool:
        """Whether a ``.json`` file is one JSON value (an array of objects, or one object) rather than JSONL."""
        if path.suffix.lower() != ".json":
            return False
        with open(path, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):
            return True
        if not head.startswith(b"{") or path.stat().st_size > self.max_record_bytes:
            return False
        # A pretty-printed object spans lines; JSONL saved as .json does not parse as one value.
        try:
            json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            return False
        return True

    def total(self) -> int | None:
        if self._total is None:
            count = 0
            for path in self.files:
                if self._is_array(path):
                    return None
                # Counting newlines is I/O-bound and cheap next to encoding; it buys the ETA.
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        count += block.count(b"\n")
            self._total = count
        return self._total

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record]:
        start_file = int(resume.get("file", 0)) if resume else 0
        seq = 0
        for number, path in enumerate(self.files):
            if number < start_file:
                continue
            resume_here = resume if resume and number == start_file else None
            if self._is_array(path):
                yield from self._array_records(number, path, resume_here, seq_start=seq)
                seq += 1 << 40  # distinct ordinals across files; only order matters
                continue
            offset = int(resume_here.get("offset", 0)) if resume_here else 0
            line_no = int(resume_here.get("line", 0)) if resume_here else 0
            with open(path, "rb") as f:
                f.seek(offset)
                for line in f:
                    offset += len(line)
                    line_no += 1
                    position = {"file": number, "offset": offset, "line": line_no}
                    if _is_blank(line):
                        continue
                    record = _parse_line(line, seq, position, self.max_record_bytes)
                    seq += 1
                    yield record
            # The next file starts at its beginning; a position at the very end of this one says "done".

    def _array_records(
        self, number: int, path: Path, resume: Mapping[str, Any] | None, seq_start: int
    ) -> Iterator[Record]:
        start_item = int(resume.get("item", 0)) if resume else 0
        raw = path.read_bytes()
        try:
            value = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            yield Record(
                seq_start,
                {"file": number, "item": 1},
                error=f"{path.name} is not valid JSON: {exc}",
                raw=raw[:1000].decode("utf-8", "backslashreplace"),
            )
            return
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if i < start_item:
                continue
            position = {"file": number, "item": i + 1}
            if isinstance(item, dict):
                yield Record(seq_start + i, position, doc=item)
            else:
                yield Record(
                    seq_start + i,
                    position,
                    error=f"a JSON {type(item).__name__}, not an object",
                    raw=json.dumps(item),
                )


class StreamSource(Source):
    """JSONL from a byte stream that may never end (stdin), read line by line as it arrives.

    A stream cannot seek: resuming skips the lines the checkpoint counts, so rerun with the same input.
    """

    kind = "stream"

    def __init__(
        self,
        stream: BinaryIO | io.TextIOBase | None = None,
        *,
        name: str = "stdin",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if stream is None:
            import sys

            stream = sys.stdin.buffer
        self.stream = stream
        self.name = name
        self.max_record_bytes = max_record_bytes

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record]:
        skip = int(resume.get("line", 0)) if resume else 0
        line_no = 0
        seq = 0
        # readline, not iteration: iteration reads ahead in blocks, which would hold records back
        # from an interactive or slow producer.
        readline = self.stream.readline
        while True:
            line = readline()
            if not line:
                return
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            line_no += 1
            if line_no <= skip or _is_blank(line):
                continue
            record = _parse_line(line, seq, {"line": line_no}, self.max_record_bytes)
            seq += 1
            yield record


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
        from colsplade.engines import scan_index

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
