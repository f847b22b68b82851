"""Typed results of the query client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hit", "HitExplanation", "SearchResult", "ShardStats", "SparseTermContribution", "TokenMatch"]


@dataclass(frozen=True)
class TokenMatch:
    """One query token's best document token in the MaxSim sum.

    ``doc_position`` is the document token's position (with pooled token storage: the member of the best
    pooled vector that is nearest to the query token); ``doc_token`` is the word there when the document
    text could be re-tokenised (else ``None``). ``contribution`` = ``max_j q_i · d_j`` over the stored vectors.
    """

    query_position: int
    query_token: str | None
    doc_position: int
    doc_token: str | None
    contribution: float


@dataclass(frozen=True)
class SparseTermContribution:
    """One SPLADE term's share of the first-stage score: ``query_weight * doc_weight``."""

    term: str
    query_weight: float
    doc_weight: float
    contribution: float


@dataclass
class HitExplanation:
    """Why a document scored what it did: SPLADE terms and ColBERT token matches.

    ``sparse_score`` is the sum of ``terms`` contributions (exact, from the stored impacts);
    ``maxsim_score`` is the sum of ``tokens`` contributions.
    """

    sparse_score: float
    terms: list[SparseTermContribution] = field(default_factory=list)
    maxsim_score: float | None = None
    tokens: list[TokenMatch] = field(default_factory=list)


@dataclass
class Hit:
    """One result: ``score`` is the final score (MaxSim when reranked), ``stage_scores`` every stage's."""

    id: str
    score: float
    stage_scores: dict[str, float]
    source: dict[str, Any] | None = None
    highlight: dict[str, list[str]] | None = None
    explanation: HitExplanation | None = None


@dataclass(frozen=True)
class ShardStats:
    """The engine's ``_shards`` counts of a search: how many shards it asked, how many answered.

    ``failures`` has one ``"index[shard]: reason"`` per failed shard, as the engine reports them.
    ``partial`` is True when some shard did not answer (failed, or was not counted as successful) or the
    search timed out: the hits may then miss documents that a complete answer would hold.

    >>> ShardStats.from_answer({"_shards": {"total": 3, "successful": 2, "skipped": 0, "failed": 1,
    ...     "failures": [{"index": "docs", "shard": 2, "reason": {"type": "no_shard_available_action_exception"}}]}})
    ShardStats(total=3, successful=2, skipped=0, failed=1, timed_out=False, failures=('docs[2]: no_shard_available_action_exception',))
    """

    total: int
    successful: int
    skipped: int = 0
    failed: int = 0
    timed_out: bool = False
    failures: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return self.failed > 0 or self.successful < self.total or self.timed_out

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> ShardStats | None:
        """The counts of a search answer (None when it has no ``_shards``)."""
        shards = answer.get("_shards")
        if not isinstance(shards, Mapping):
            return None
        failures = []
        for failure in shards.get("failures") or []:
            reason = failure.get("reason")
            if isinstance(reason, Mapping):
                reason = ": ".join(str(r) for r in (reason.get("type"), reason.get("reason")) if r)
            failures.append(f"{failure.get('index')}[{failure.get('shard')}]: {reason}")
        return cls(
            total=int(shards.get("total", 0)),
            successful=int(shards.get("successful", 0)),
            skipped=int(shards.get("skipped", 0)),
            failed=int(shards.get("failed", 0)),
            timed_out=bool(answer.get("timed_out", False)),
            failures=tuple(failures),
        )

    def worst(self, other: ShardStats | None) -> ShardStats:
        """The less complete of two answers' counts (a search of several round trips reports its worst)."""
        if other is None or other == self:
            return self
        if self.partial != other.partial:
            return self if self.partial else other
        if not self.partial:
            return self if self.total >= other.total else other
        return ShardStats(
            total=max(self.total, other.total),
            successful=min(self.successful, other.successful),
            skipped=min(self.skipped, other.skipped),
            failed=max(self.failed, other.failed),
            timed_out=self.timed_out or other.timed_out,
            failures=tuple(dict.fromkeys(self.failures + other.failures)),
        )


@dataclass
class SearchResult:
    """Hits of one page plus what the search cost.

    ``timings_ms`` has ``encode``, ``engine`` (the ``round_trips``, network included) and ``rerank``
    (client-side decode + MaxSim, 0 when the engine reranked); ``candidates`` is how many documents the
    rerank saw. ``reason`` says why a result is empty when no search could run (no candidate source).

    ``shards``: the engine's shard counts (the least complete over the search's round trips; None when
    no request ran). ``partial`` is True when some shard did not answer: the hits are then what the
    answering shards hold, never presented as complete (``SearchClient(strict=True)`` raises
    :class:`~colsplade.exceptions.PartialResultError` instead).
    """

    query: str
    hits: list[Hit]
    rerank: str
    window: int
    candidates: int
    timings_ms: dict[str, float]
    query_terms: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    shards: ShardStats | None = None
    #: the named query plan the search ran (see :data:`colsplade.query.QUERY_PLANS`); None when the
    #: caller spelled out its candidate sources instead of naming a plan
    plan: str | None = None
    #: engine requests the search made: 1 for every plan (its sub-searches travel in one ``_msearch``);
    #: 2 for a hybrid by rank reranked in the engine (the rescore needs the fused ids) and one more for
    #: ``explain``; 0 when no search could run
    round_trips: int = 0

    @property
    def partial(self) -> bool:
        return self.shards is not None and self.shards.partial

    def ids(self) -> list[str]:
        return [h.id for h in self.hits]
