"""Typed results of the query client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hit", "HitExplanation", "SearchResult", "SparseTermContribution", "TokenMatch"]


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


@dataclass
class SearchResult:
    """Hits of one page plus what the search cost.

    ``timings_ms`` has ``encode``, ``engine`` (round trips, network included) and ``rerank``
    (client-side decode + MaxSim, 0 when the engine reranked); ``candidates`` is how many documents the
    rerank saw. ``reason`` says why a result is empty when no search could run (no candidate source).
    """

    query: str
    hits: list[Hit]
    rerank: str
    window: int
    candidates: int
    timings_ms: dict[str, float]
    query_terms: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def ids(self) -> list[str]:
        return [h.id for h in self.hits]
