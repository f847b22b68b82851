"""Named query plans: which candidate sources a search takes and whether MaxSim reranks them (pure).

A plan is a set of :meth:`colsplade.query.SearchClient.search` arguments under a name, so that backend
code, ``colsplade search --plan`` and ``colsplade eval`` speak of the same thing. Arguments a caller
passes to ``search`` win over the plan's.

Why the default is ``bm25+colbert(fused)``: the plan has to hold up on corpora unlike the one a model
was trained on, against the BM25 a team actually runs (English stemming and stopwords). MaxSim alone
throws that BM25's evidence away; keeping its score, standardised over the window and added to MaxSim's
with a weight fixed in advance (:data:`colsplade.scoring.DEFAULT_FUSION_WEIGHT`), beat the English BM25 on
SciFact and on two corpora no model was trained on, where every plan that replaced BM25's score lost to
it. It takes one round trip on the index's own analysed text fields. ``benchmarks/results/first_stage.json``
holds the measurements. An index without BM25 text fields falls back to :data:`FALLBACK_PLAN`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from colsplade.exceptions import InvalidInputError

__all__ = [
    "DEFAULT_PLAN",
    "FALLBACK_PLAN",
    "QUERY_PLANS",
    "plan_arguments",
    "plan_needs_text_fields",
]

#: Placeholder in a plan's ``bm25_fields``: the client's ``text_fields``.
TEXT_FIELDS = "<text_fields>"

#: name -> :meth:`SearchClient.search` arguments. ``bm25_fields`` of :data:`TEXT_FIELDS` become the
#: client's text fields.
QUERY_PLANS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # the engine's BM25 over the text fields, no model in the ranking (encoding still runs)
        "bm25": {"splade": False, "bm25_fields": TEXT_FIELDS, "hybrid": "sum", "rerank": "none"},
        "splade": {"splade": True, "rerank": "none"},
        "splade+colbert": {"splade": True, "rerank": "auto"},
        # BM25 candidates in one round trip (the multi_match is the whole first stage), MaxSim orders them
        "bm25+colbert": {"splade": False, "bm25_fields": TEXT_FIELDS, "hybrid": "sum", "rerank": "auto"},
        "hybrid(bm25+splade)": {
            "splade": True,
            "bm25_fields": TEXT_FIELDS,
            "hybrid": "rrf",
            "rerank": "none",
        },
        "hybrid(bm25+splade)+colbert": {
            "splade": True,
            "bm25_fields": TEXT_FIELDS,
            "hybrid": "rrf",
            "rerank": "auto",
        },
        # the fused plans keep the first stage's evidence: the window is ordered by MaxSim fused with the
        # first-stage score(s) (z-scores with a fixed weight, or reciprocal rank), in the client
        "bm25+colbert(fused)": {
            "splade": False,
            "bm25_fields": TEXT_FIELDS,
            "hybrid": "sum",
            "rerank": "client",
            "fusion": "zscore",
        },
        "bm25+colbert(rrf)": {
            "splade": False,
            "bm25_fields": TEXT_FIELDS,
            "hybrid": "sum",
            "rerank": "client",
            "fusion": "rrf",
        },
        "splade+colbert(fused)": {"splade": True, "rerank": "client", "fusion": "zscore"},
        "hybrid(bm25+splade)+colbert(fused)": {
            "splade": True,
            "bm25_fields": TEXT_FIELDS,
            "hybrid": "rrf",
            "rerank": "client",
            "fusion": "zscore",
        },
    }
)

DEFAULT_PLAN = "bm25+colbert(fused)"
"""The plan a :class:`~colsplade.query.SearchClient` uses when the caller names none."""

FALLBACK_PLAN = "splade+colbert(fused)"
"""The plan that replaces one needing BM25 text fields on an index that has none of them."""


def plan_needs_text_fields(name: str) -> bool:
    """Whether plan ``name`` takes BM25 candidates from the index's text fields."""
    return _plan(name).get("bm25_fields") == TEXT_FIELDS


def plan_arguments(name: str, text_fields: Sequence[str]) -> dict[str, Any]:
    """The :meth:`SearchClient.search` arguments of plan ``name``, BM25 fields resolved to ``text_fields``.

    >>> plan_arguments("bm25+colbert", ["title", "text"])["bm25_fields"]
    ['title', 'text']
    """
    args = dict(_plan(name))
    if args.get("bm25_fields") == TEXT_FIELDS:
        args["bm25_fields"] = list(text_fields)
    return args


def _plan(name: str) -> Mapping[str, Any]:
    try:
        return QUERY_PLANS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown query plan {name!r}; choose one of {', '.join(QUERY_PLANS)}"
        ) from None
