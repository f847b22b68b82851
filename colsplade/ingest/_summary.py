"""What an ingest run did, how it shows its progress, and the one place its bulk writes are settled.

:class:`BulkSink` is shared by the three writers (``ingest``, ``ingest_encoded``, ``reindex`` through
``ingest``): it sends bulk actions with the run's retry policy and sizes, counts the retries and the write
time into the :class:`IngestSummary`, and dead-letters each document the engine refused with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from colsplade.engines import BulkAction, BulkItemResult, EngineClient, RetryPolicy, bulk_write
from colsplade.ingest._checkpoint import DeadLetterWriter

if TYPE_CHECKING:
    from colsplade.ingest.sources import Source

logger = logging.getLogger(__name__)

__all__ = ["BulkSink", "IngestSummary", "Progress"]


@dataclass
class IngestSummary:
    """What a run did. ``exit_code``: 0 when everything read was indexed, 3 when some was dead-lettered."""

    index: str
    read: int = 0
    indexed: int = 0
    deleted: int = 0
    passages: int = 0
    dead_lettered: int = 0
    retried: int = 0
    truncated: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0
    resumed_from: dict[str, Any] | None = None
    checkpoint: str | None = None
    dead_letter: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    model: str = ""
    codec: str | None = None
    tokens: int = 0
    alias: str | None = None
    alias_switched: bool = False
    caught_up: int = 0  # documents written during a re-encode, taken by its catch-up passes
    # a stream source's figures (Kafka: consumer lag, messages/s, committed offsets, rebalances)
    stream: dict[str, Any] | None = None

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 3 if self.dead_lettered else 0

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "docs_per_second": round(self.docs_per_second, 2)}

    def __str__(self) -> str:
        text = (
            f"{self.indexed} indexed, {self.dead_lettered} dead-lettered of {self.read} read into "
            f"{self.index} in {self.seconds:.1f} s ({self.docs_per_second:.1f} docs/s; encode "
            f"{self.encode_seconds:.1f} s, write {self.write_seconds:.1f} s; {self.retried} retried)"
        )
        if self.deleted:
            text += f"; {self.deleted} deleted"
        if self.stream is not None:
            text += f"; lag {self.stream.get('lag')}, {self.stream.get('messages_per_second')} msg/s"
        if self.dead_lettered and self.dead_letter:
            text += f"; rejects in {self.dead_letter}"
        return text


@dataclass
class BulkSink:
    """Writes bulk actions into the engine and settles the outcome of each one.

    ``bulk_docs`` / ``bulk_bytes``: the most documents and bytes per bulk request; ``retry``: how long
    an unreachable or overloaded engine is waited for. Write time and retries go into ``summary``.
    """

    client: EngineClient
    summary: IngestSummary
    dead: DeadLetterWriter
    retry: RetryPolicy
    bulk_docs: int
    bulk_bytes: int

    def send(self, actions: list[BulkAction]) -> list[BulkItemResult]:
        """Write ``actions``; one result per action, in order (retried as ``retry`` allows)."""
        t0 = time.monotonic()
        results = bulk_write(
            self.client,
            actions,
            chunk_size=self.bulk_docs,
            max_chunk_bytes=self.bulk_bytes,
            retry=self.retry,
            on_retry=self._on_retry,
        )
        self.summary.write_seconds += time.monotonic() - t0
        return results

    def _on_retry(self, n: int, delay: float, reason: str) -> None:
        self.summary.retried += n

    def settle(
        self, actions: Sequence[BulkAction], results: Sequence[BulkItemResult]
    ) -> list[tuple[int, BulkAction, BulkItemResult]]:
        """Count each written document as a passage and return the (position, action, result) of each
        action the engine refused, for the caller to dead-letter with its record. Deleting a document that
        is already gone counts as done."""
        out = []
        for i, (action, result) in enumerate(zip(actions, results, strict=True)):
            if action.op == "delete":
                if not result.ok and result.status != 404:
                    out.append((i, action, result))
            elif result.ok:
                self.summary.passages += 1
            else:
                out.append((i, action, result))
        return out

    def dead_letter(self, action: BulkAction, result: BulkItemResult, **where: Any) -> None:
        """Dead-letter one refused action with the engine's reason (``where``: position, document)."""
        self.dead.write(
            reason=result.error or f"HTTP {result.status}",
            stage="engine",
            doc_id=action.doc_id,
            status=result.status,
            **where,
        )


class Progress:
    """A tqdm bar on stderr, or a log line every 30 s."""

    def __init__(self, src: Source, enabled: bool | None, started: float) -> None:
        self.bar = progress_bar(src, enabled)
        self.started = started
        self.last_log = time.monotonic()

    def update(self, summary: IngestSummary, n_records: int, stream: dict[str, Any] | None) -> None:
        lag = {} if stream is None else {"lag": stream.get("lag")}
        if self.bar is not None:
            self.bar.update(n_records)
            self.bar.set_postfix(dead=summary.dead_lettered, retried=summary.retried, **lag, refresh=False)
        elif time.monotonic() - self.last_log >= 30:
            self.last_log = time.monotonic()
            logger.info(
                "ingest: %d read, %d indexed, %d dead-lettered, %.1f docs/s%s",
                summary.read,
                summary.indexed,
                summary.dead_lettered,
                summary.indexed / max(1e-9, self.last_log - self.started),
                f", lag {lag['lag']}" if lag else "",
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar(src: Source, enabled: bool | None) -> Any:
    if enabled is None:
        import sys

        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    total = None
    try:
        total = src.total()
    except Exception:
        logger.debug("no total for the progress bar", exc_info=True)
    return tqdm(total=total, unit="doc", desc="ingest", dynamic_ncols=True, mininterval=0.5, leave=True)
