"""Query client: SPLADE retrieval on the inverted index, then ColBERT MaxSim rerank.

Backend code::

    from colsplade.query import SearchClient
    search = SearchClient("docs", model="models/joint")     # once per process; thread-safe
    result = search.search("what causes scurvy", k=10, filters=[{"term": {"lang": "en"}}])
    for hit in result.hits:
        print(hit.id, hit.score, hit.stage_scores)

The pure DSL builders (``sparse_query``, ``maxsim_rescore``, ...) are public too, for teams that assemble
their own requests.
"""

from colsplade.query._client import (
    QUERY_ENCODER_OPTIONS,
    AsyncSearchClient,
    SearchClient,
    model_identity,
)
from colsplade.query._dsl import (
    SparsePruning,
    bm25_clause,
    first_stage_query,
    maxsim_rescore,
    nested_knn_query,
    rrf_fuse,
    search_body,
    sparse_query,
    sparse_rescore,
    top_terms,
)
from colsplade.query._plans import DEFAULT_PLAN, FALLBACK_PLAN, QUERY_PLANS, plan_arguments
from colsplade.query._types import (
    Hit,
    HitExplanation,
    SearchResult,
    ShardStats,
    SparseTermContribution,
    TokenMatch,
)

__all__ = [
    "DEFAULT_PLAN",
    "FALLBACK_PLAN",
    "QUERY_ENCODER_OPTIONS",
    "QUERY_PLANS",
    "AsyncSearchClient",
    "Hit",
    "HitExplanation",
    "SearchClient",
    "SearchResult",
    "ShardStats",
    "SparsePruning",
    "SparseTermContribution",
    "TokenMatch",
    "bm25_clause",
    "first_stage_query",
    "maxsim_rescore",
    "model_identity",
    "nested_knn_query",
    "plan_arguments",
    "rrf_fuse",
    "search_body",
    "sparse_query",
    "sparse_rescore",
    "top_terms",
]
