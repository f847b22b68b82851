"""Sources of JSON text: JSONL / JSON files and globs, and a byte stream of JSONL (stdin).

A JSONL position is the file number, the byte offset after the record and its line number, so a resumed
run seeks instead of re-reading; a stream cannot seek and skips the lines its checkpoint counts.
"""

from __future__ import annotations

import glob
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from colsplade.exceptions import InvalidInputError
from colsplade.ingest.sources._base import DEFAULT_MAX_RECORD_BYTES, Record, Source, is_blank, parse_json_line

__all__ = ["FileSource", "StreamSource"]


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
                    if is_blank(line):
                        continue
                    record = parse_json_line(line, seq, position, self.max_record_bytes)
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
            if line_no <= skip or is_blank(line):
                continue
            record = parse_json_line(line, seq, {"line": line_no}, self.max_record_bytes)
            seq += 1
            yield record
