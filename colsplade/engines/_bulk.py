"""Bulk writes through the official clients' ``streaming_bulk`` helpers, with retries that lose nothing.

The helpers cut a batch into requests by document count and by bytes (token vectors make documents
heavy) and report one result per action, in order. Above them, :func:`bulk_write` retries what failed for a
transient reason (HTTP 429, 5xx, no connection) with capped exponential backoff and equal jitter, sending
again only the failed actions; a document the engine rejects for good (a mapping conflict, ...) is returned
as rejected with the engine's reason, never retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from colsplade.engines._client import EngineClient, refusal
from colsplade.exceptions import (
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineUnreachableError,
    InvalidInputError,
)

logger = logging.getLogger(__name__)

__all__ = ["BulkAction", "BulkItemResult", "RetryPolicy", "bulk_write"]

#: Statuses worth sending again: the engine is busy (429) or failing for now (5xx).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying transient failures.

    Waits ``initial_backoff * 2**attempt`` seconds capped at ``max_backoff``, with equal jitter (a uniform
    draw between half that cap and the cap: many writers do not retry in lock step, and each still backs
    off at least half the time, which an overloaded node needs), at most ``max_retries`` times per action
    and never beyond ``max_elapsed`` seconds for one batch.
    """

    max_retries: int = 10
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_elapsed: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("retry counts and backoff times must not be negative")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): with ``jitter``, uniform in [cap/2, cap].

        >>> RetryPolicy(initial_backoff=1, max_backoff=5, jitter=False).delay(4)
        5
        >>> import random
        >>> rng = random.Random(0)
        >>> all(0.5 <= RetryPolicy(initial_backoff=1).delay(0, rng) <= 1 for _ in range(100))
        True
        """
        cap = min(self.max_backoff, self.initial_backoff * (2**attempt))
        if not self.jitter:
            return cap
        return (rng or random).uniform(cap / 2, cap)


@dataclass
class BulkAction:
    """One bulk operation: ``op`` is ``index`` (whole document), ``update`` (partial ``doc``) or ``delete``
    (``source`` unused). A malformed action raises :class:`~colsplade.exceptions.InvalidInputError` here.

    ``source`` is the document (a dict) or, to keep serialisation off the writer thread, its JSON text.
    """

    index: str
    doc_id: str
    source: dict[str, Any] | str
    op: str = "index"

    def __post_init__(self) -> None:
        # A malformed action would otherwise fail inside the client's helper on every retry round.
        if self.op not in ("index", "update", "delete"):
            raise InvalidInputError(f"BulkAction.op must be 'index', 'update' or 'delete', not {self.op!r}")
        if not isinstance(self.index, str) or not self.index:
            raise InvalidInputError(f"BulkAction.index must be an index name, not {self.index!r}")
        if not isinstance(self.doc_id, str) or not self.doc_id:
            raise InvalidInputError(f"BulkAction.doc_id must be a non-empty string, not {self.doc_id!r}")
        if self.op != "delete" and not isinstance(self.source, dict | str):
            raise InvalidInputError(
                f"BulkAction.source must be a dict or its JSON text, not a {type(self.source).__name__}"
            )


@dataclass
class BulkItemResult:
    """What happened to one action: ``ok``; else ``status``, ``error`` and whether it was transient."""

    ok: bool
    status: int | None = None
    error: str | None = None
    attempts: int = 1
    result: str | None = None
    transient: bool = False


@dataclass
class _Pending:
    position: int
    action: BulkAction
    attempts: int = 0
    last: BulkItemResult = field(default_factory=lambda: BulkItemResult(ok=False))


def _expand(action: BulkAction) -> tuple[dict[str, Any], Any]:
    meta = {action.op: {"_index": action.index, "_id": action.doc_id}}
    if action.op == "update":
        source = action.source
        if isinstance(source, str):
            return meta, '{"doc":' + source + "}"
        return meta, {"doc": source}
    return meta, action.source


def _helpers(client: EngineClient) -> tuple[Any, Any]:
    """The raw client to send bulks with, and its library's ``streaming_bulk``."""
    if client.engine == "elasticsearch":
        from elasticsearch.helpers import streaming_bulk

        # The transport would retry 429/5xx at once and without backoff; leave that to the policy here.
        return client.client.options(retry_on_status=()), streaming_bulk
    from opensearchpy.helpers import streaming_bulk

    return client.client, streaming_bulk


def _describe_error(error: Any) -> str:
    if isinstance(error, dict):
        reason = error.get("reason") or ""
        caused = error.get("caused_by")
        text = f"{error.get('type', 'error')}: {reason}"
        if isinstance(caused, dict) and caused.get("reason"):
            text += f" (caused by {caused.get('type')}: {caused.get('reason')})"
        return text
    return str(error)[:1000]


def _is_transient(status: Any, exception: Any) -> bool:
    if isinstance(status, int):
        return status in RETRYABLE_STATUSES
    # No status at all: the request never got an answer (connection refused, reset, timeout).
    return exception is not None or status in (None, "N/A")


def _raise_if_denied(status: Any, error: Any) -> None:
    """A document refused for want of credentials or privileges stops the write: it is no bad document."""
    if status in (401, 403):
        refused = refusal(int(status), {"error": error})
        if isinstance(refused, EngineAuthenticationError | EngineAuthorizationError):
            raise refused


def _send_once(
    client: EngineClient, pending: Sequence[_Pending], chunk_size: int, max_chunk_bytes: int
) -> None:
    """One pass of ``streaming_bulk`` over ``pending``; fills each one's ``last`` result."""
    raw, streaming_bulk = _helpers(client)
    results = streaming_bulk(
        raw,
        (p.action for p in pending),
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        expand_action_callback=_expand,
        raise_on_error=False,
        raise_on_exception=False,
        max_retries=0,
        yield_ok=True,
    )
    done = 0
    try:
        # One result per action, in the order sent: position is the correlation, which stays right even
        # when one batch holds the same _id twice.
        for ok, item in results:
            p = pending[done]
            p.attempts += 1
            info = next(iter(item.values()))
            status = info.get("status")
            if ok:
                p.last = BulkItemResult(
                    ok=True, status=status, result=info.get("result"), attempts=p.attempts
                )
            else:
                _raise_if_denied(status, info.get("error"))
                exception = info.get("exception")
                p.last = BulkItemResult(
                    ok=False,
                    status=status if isinstance(status, int) else None,
                    error=_describe_error(info.get("error")),
                    attempts=p.attempts,
                    transient=_is_transient(status, exception),
                )
            done += 1
    except Exception as exc:
        # The Elasticsearch helper lets connection errors escape (only ApiError is turned into per-item
        # failures); everything not yet answered is unacknowledged and will be sent again.
        translated = client._translate(exc)
        if isinstance(translated, EngineAuthenticationError | EngineAuthorizationError):
            raise translated from exc
        status = getattr(translated, "status", None)
        transient = _is_transient(status, exc) if status is not None else True
        for p in pending[done:]:
            p.attempts += 1
            p.last = BulkItemResult(
                ok=False,
                status=status,
                error=str(translated)[:1000],
                attempts=p.attempts,
                transient=transient,
            )


def bulk_write(
    client: EngineClient,
    actions: Sequence[BulkAction],
    *,
    chunk_size: int = 500,
    max_chunk_bytes: int = 10 * 1024 * 1024,
    retry: RetryPolicy | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[BulkItemResult]:
    """Write ``actions`` and return one :class:`BulkItemResult` per action, in order.

    Transient failures are retried (only the failed actions) under ``retry``; permanent ones come back with
    ``ok=False`` and the engine's reason. ``on_retry(n_actions, delay, reason)`` is called before each
    retry round.

    Raises:
        EngineUnreachableError: transient failures outlasted the retry policy; nothing is known lost (the
            caller must not acknowledge the actions that did not succeed).
        EngineAuthenticationError, EngineAuthorizationError: the credentials or the user's privileges do
            not allow the write (for the request or any document): raised at once, nothing is dead-lettered.
    """
    retry = retry or RetryPolicy()
    pending = [_Pending(i, a) for i, a in enumerate(actions)]
    results: list[BulkItemResult | None] = [None] * len(pending)
    started = time.monotonic()
    rng = random.Random()
    round_no = 0
    while pending:
        _send_once(client, pending, chunk_size, max_chunk_bytes)
        again: list[_Pending] = []
        for p in pending:
            if p.last.ok or not p.last.transient:
                results[p.position] = p.last
            else:
                again.append(p)
        if not again:
            break
        reason = again[0].last.error or f"HTTP {again[0].last.status}"
        elapsed = time.monotonic() - started
        if round_no >= retry.max_retries or elapsed >= retry.max_elapsed:
            raise EngineUnreachableError(
                client.url,
                f"{len(again)} document(s) still failing after {round_no} retries over {elapsed:.0f} s "
                f"(last: {reason}); rerun to resume from the checkpoint",
            )
        delay = retry.delay(round_no, rng)
        logger.warning(
            "bulk: %d of %d document(s) failed transiently (%s); retry %d in %.1f s",
            len(again),
            len(actions),
            reason,
            round_no + 1,
            delay,
        )
        if on_retry is not None:
            on_retry(len(again), delay, reason)
        sleep(delay)
        round_no += 1
        pending = again
    return [r if r is not None else BulkItemResult(ok=False, error="no result") for r in results]
