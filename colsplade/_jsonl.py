"""The one strict reader of JSONL input files: training triples, negatives, BEIR corpora and queries.

Strict means a bad line stops the read with an :class:`~colsplade.exceptions.InvalidInputError` that
names the file and the line and says what to fix, before any work is done on a half-read file. (Ingest's
streaming sources are tolerant instead: they send a bad line to the dead-letter file and go on.)
Pure: no torch, so the inference side may use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, overload

from colsplade.exceptions import InvalidInputError

__all__ = ["read_jsonl"]


@overload
def read_jsonl(
    path: str | os.PathLike[str], *, line_numbers: Literal[False] = False
) -> Iterator[dict[str, Any]]: ...


@overload
def read_jsonl(
    path: str | os.PathLike[str], *, line_numbers: Literal[True]
) -> Iterator[tuple[int, dict[str, Any]]]: ...


def read_jsonl(
    path: str | os.PathLike[str], *, line_numbers: bool = False
) -> Iterator[dict[str, Any]] | Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file (UTF-8, one object a line; blank lines are skipped), in file order.

    With ``line_numbers`` it yields ``(line number, object)`` pairs, so that a caller's own checks (a
    missing id, a duplicate) can name the line too. Raises :class:`InvalidInputError` for a missing file,
    and, as the read reaches it, for a line that is not UTF-8, not JSON, or not a JSON object:
    ``path:line: ...`` and what to do.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = Path(tmp) / "q.jsonl"
    ...     _ = p.write_text('{"_id": "q1"}\\n\\n{"_id": "q2"}\\n[1]\\n', encoding="utf-8")
    ...     ok = [r["_id"] for _, r in zip(range(2), read_jsonl(p))]
    ...     try:
    ...         list(read_jsonl(p, line_numbers=True))
    ...     except InvalidInputError as exc:
    ...         error = str(exc).replace(str(p), "q.jsonl")
    >>> ok
    ['q1', 'q2']
    >>> error
    'q.jsonl:4: expected a JSON object, got a list; each line must hold one JSON object ({...}): fix or remove that line'
    """
    records = _records(Path(path))
    return records if line_numbers else (record for _, record in records)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # checked here, not when the generator first runs: a missing file fails at the call, not at first use
    if not path.is_file():
        raise InvalidInputError(
            f"{path} does not exist or is not a file; give the path of a JSONL file (one JSON object a line)"
        )
    return _parse(path)


def _parse(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # bytes, decoded line by line: a text stream decodes ahead in blocks and would blame the wrong line
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{path}:{line_no}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8"
                ) from exc
            if line.strip():
                yield line_no, _parse_line(path, line_no, line)


def _parse_line(path: Path, line_no: int, line: str) -> dict[str, Any]:
    """One line's object, or an error naming ``path:line_no``."""
    fix = "each line must hold one JSON object ({...}): fix or remove that line"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}:{line_no}: not JSON ({exc.msg}, column {exc.colno}); {fix}") from exc
    if not isinstance(record, dict):
        raise InvalidInputError(
            f"{path}:{line_no}: expected a JSON object, got a {_json_type(record)}; {fix}"
        )
    return record


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type.

    >>> _json_type([1]), _json_type("x"), _json_type(None), _json_type(2.5)
    ('list', 'string', 'null', 'number')
    """
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"
