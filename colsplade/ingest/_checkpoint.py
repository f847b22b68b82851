"""Checkpoint and dead-letter files: the two things an interrupted run leaves for the next one.

The checkpoint is replaced atomically (write a temporary file, fsync, rename), so a ``kill -9`` leaves the
old or the new one, never a torn one. Dead letters are appended and fsynced *before* the checkpoint moves
past them, so a rejected document is never both forgotten and skipped.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path
from typing import Any, TextIO

from colsplade.exceptions import InvalidInputError
from colsplade.ingest._json import dumps

logger = logging.getLogger(__name__)

__all__ = ["Checkpoint", "DeadLetterWriter"]

CHECKPOINT_FORMAT = 1


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Checkpoint:
    """The source position up to which the engine acknowledged everything, kept in a JSON file."""

    def __init__(self, path: str | os.PathLike[str], source: dict[str, Any], index: str) -> None:
        self.path = Path(path)
        self.source = source
        self.index = index
        self.position: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InvalidInputError(f"checkpoint {str(self.path)!r} is not valid JSON: {exc}") from exc
            if data.get("source") != source or data.get("index") != index:
                raise InvalidInputError(
                    f"checkpoint {str(self.path)!r} belongs to another run (source {data.get('source')}, "
                    f"index {data.get('index')!r}); pass another --checkpoint path or delete it to start over"
                )
            self.position = data.get("position")
            self.state = data.get("state") or {}
            logger.info("resuming from checkpoint %s at %s", self.path, self.position)

    def save(self, position: dict[str, Any] | None, *, complete: bool = False, **state: Any) -> None:
        """Record ``position`` (everything up to it is acknowledged) atomically."""
        self.position = position
        self.state.update(state)
        data = {
            "format": CHECKPOINT_FORMAT,
            "source": self.source,
            "index": self.index,
            "position": position,
            "complete": complete,
            "state": self.state,
            "updated_at": _now(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class DeadLetterWriter:
    """Appends one JSON line per rejected document: reason, stage, id, source position, document."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._file: TextIO | None = None
        self.count = 0
        self.reasons: dict[str, int] = {}

    def write(
        self,
        *,
        reason: str,
        stage: str,
        position: dict[str, Any] | None = None,
        doc_id: str | None = None,
        status: int | None = None,
        document: Any = None,
        raw: str | None = None,
    ) -> None:
        self.count += 1
        # Reasons are grouped by their first words for the summary ("malformed JSON", "empty text", ...).
        key = reason.split(":")[0][:80]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        logger.debug("dead letter (%s) %s: %s", stage, doc_id, reason)
        if self.path is None:
            logger.warning("rejected document %s (%s): %s", doc_id, stage, reason)
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        entry: dict[str, Any] = {"reason": reason, "stage": stage, "id": doc_id, "at": _now()}
        if status is not None:
            entry["status"] = status
        if position is not None:
            entry["position"] = position
        if document is not None:
            entry["document"] = document
        if raw is not None:
            entry["raw"] = raw
        try:
            line = dumps(entry)
        except (TypeError, ValueError):
            entry.pop("document", None)
            entry["raw"] = repr(document)[:100_000]
            line = dumps(entry)
        self._file.write(line + "\n")

    def sync(self) -> None:
        """Make every line written so far durable (called before the checkpoint moves past them)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None
