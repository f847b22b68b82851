"""Pure query-DSL builders (plain dicts): SPLADE first stage and nested token kNN, per engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from colsplade.exceptions import InvalidInputError
from colsplade.mappings import FieldSpec, escape_feature

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SparsePruning",
    "bm25_clause",
    "candidates_query",
    "first_stage_query",
    "maxsim_rescore",
    "nested_knn_query",
    "rrf_fuse",
    "search_body",
    "source_filter",
    "sparse_query",
    "sparse_rescore",
    "token_fetch",
    "top_terms",
]


#: The engines' default ``index.max_rescore_window``: a larger rescore window is refused by the engine.
MAX_RESCORE_WINDOW = 10_000


@dataclass(frozen=True)
class SparsePruning:
    """How the SPLADE first stage drops query terms: fewer posting lists to walk, a little recall lost.

    ``top_k``: keep the ``top_k`` heaviest terms; ``weight_ratio``: drop terms lighter than ``weight_ratio`` x
    the heaviest (both in the client, on either engine; the heaviest term always stays, so a pruned query
    never comes back empty for want of terms). ``engine``: also let Elasticsearch prune, through its
    ``sparse_vector`` query's ``pruning_config`` (a term is dropped when it is ``freq_ratio`` times more
    frequent in the index than the average term and lighter than ``weight_threshold`` x the heaviest;
    Elasticsearch's own defaults are 5 and 0.4). Needs the ``sparse_vector`` field (Elasticsearch);
    ``rank_features`` indices (OpenSearch) are pruned in the client only.

    ``rescore_window``: give the pruned query's top ``rescore_window`` hits (per shard, at least the
    hits asked for) their exact score back, in the same request: an engine ``rescore`` adds the terms
    the pruning dropped (and, with ``engine=True``, the tokens Elasticsearch pruned, through
    ``only_score_pruned_tokens``). The cheap pruned query chooses the candidates; their order and scores
    are the exact query's. The rescore walks the dropped terms' postings for those hits only, so the cost
    stays small on large indices (see :func:`sparse_rescore`). 0 (the default) keeps the pruned scores.

    >>> SparsePruning(top_k=2).apply({"a": 3.0, "b": 1.0, "c": 2.0})
    {'a': 3.0, 'c': 2.0}
    >>> SparsePruning(weight_ratio=0.5).apply({"a": 3.0, "b": 1.0, "c": 2.0})
    {'a': 3.0, 'c': 2.0}
    """

    top_k: int | None = None
    weight_ratio: float = 0.0
    engine: bool = False
    freq_ratio: float = 5.0
    weight_threshold: float = 0.4
    rescore_window: int = 0

    def __post_init__(self) -> None:
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 1):
            raise InvalidInputError(f"SparsePruning.top_k must be >= 1 or None, got {self.top_k!r}")
        if not 0.0 <= self.weight_ratio <= 1.0:
            raise InvalidInputError(f"SparsePruning.weight_ratio must be in [0, 1], got {self.weight_ratio}")
        if not self.freq_ratio >= 1.0 or not 0.0 <= self.weight_threshold <= 1.0:
            raise InvalidInputError(
                "SparsePruning.freq_ratio must be >= 1 and weight_threshold in [0, 1], got "
                f"{self.freq_ratio}, {self.weight_threshold}"
            )
        window = self.rescore_window
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= MAX_RESCORE_WINDOW:
            raise InvalidInputError(
                f"SparsePruning.rescore_window must be an int in [0, {MAX_RESCORE_WINDOW}] (0: no rescore; "
                f"the engines' index.max_rescore_window), got {window!r}"
            )

    def apply(self, query_impacts: Mapping[str, float]) -> dict[str, float]:
        """The query terms the client keeps (the engine's pruning, if any, comes on top)."""
        kept = {t: float(w) for t, w in query_impacts.items() if float(w) > 0.0}
        if not kept:
            return kept
        if self.weight_ratio > 0.0:
            floor = self.weight_ratio * max(kept.values())
            kept = {t: w for t, w in kept.items() if w >= floor}
        if self.top_k is not None:
            kept = top_terms(kept, self.top_k)
        return kept

    def engine_config(self, *, only_pruned: bool = False) -> dict[str, Any]:
        """Elasticsearch's ``pruning_config`` (``only_pruned``: score only the tokens it prunes, the form
        a rescore that restores them uses)."""
        return {
            "tokens_freq_ratio_threshold": float(self.freq_ratio),
            "tokens_weight_threshold": float(self.weight_threshold),
            "only_score_pruned_tokens": bool(only_pruned),
        }


def sparse_query(
    query_impacts: Mapping[str, float],
    spec: FieldSpec | None = None,
    *,
    pruning: SparsePruning | None = None,
) -> dict[str, Any]:
    """The SPLADE dot product as engine query: one linear feature clause per query term, boosted by its weight.

    With ``rank_features`` each clause is ``rank_feature`` with the ``linear`` function (score = stored
    impact); ``sparse_vector`` fields score a ``term`` on the feature linearly as well. Summed by a
    ``bool.should``, the score is Σ_t q_t · d_t. Terms with weight <= 0 are dropped. ``pruning`` drops
    light terms first (:class:`SparsePruning`); with ``engine=True`` on a ``sparse_vector`` field the query
    is Elasticsearch's ``sparse_vector`` query with its ``pruning_config``.

    >>> sparse_query({"cat": 0.5, "dog": 1.0}, FieldSpec(splade_type="sparse_vector"),
    ...              pruning=SparsePruning(engine=True))["sparse_vector"]["query_vector"]
    {'cat': 0.5, 'dog': 1.0}

    >>> sparse_query({"e.g.": 2.0, "the": 0.0})
    {'bool': {'should': [{'rank_feature': {'field': 'splade.e%2Eg%2E', 'linear': {}, 'boost': 2.0}}]}}
    >>> sparse_query({"cat": 0.5}, FieldSpec(splade_type="sparse_vector"))
    {'bool': {'should': [{'term': {'splade': {'value': 'cat', 'boost': 0.5}}}]}}
    """
    spec = spec or FieldSpec()
    if pruning is not None:
        query_impacts = pruning.apply(query_impacts)
        if pruning.engine:
            if spec.splade_type != "sparse_vector":
                raise InvalidInputError(
                    "engine-side pruning needs Elasticsearch's sparse_vector field; this index has "
                    f"{spec.splade_type}: prune in the client (SparsePruning(top_k=..., weight_ratio=...))"
                )
            return _engine_pruned(query_impacts, spec, pruning, only_pruned=False)
    clauses: list[dict[str, Any]] = []
    for token, weight in query_impacts.items():
        weight = float(weight)
        if not weight > 0.0:
            continue
        key = escape_feature(token)
        if spec.splade_type == "rank_features":
            clauses.append(
                {"rank_feature": {"field": f"{spec.splade_field}.{key}", "linear": {}, "boost": weight}}
            )
        else:
            clauses.append({"term": {spec.splade_field: {"value": key, "boost": weight}}})
    if not clauses:
        raise InvalidInputError("the query has no SPLADE term with a positive weight; nothing to retrieve")
    return {"bool": {"should": clauses}}


def _engine_pruned(
    query_impacts: Mapping[str, float], spec: FieldSpec, pruning: SparsePruning, *, only_pruned: bool
) -> dict[str, Any]:
    """Elasticsearch's ``sparse_vector`` query with its ``pruning_config``."""
    vector = {escape_feature(t): float(w) for t, w in query_impacts.items() if float(w) > 0.0}
    if not vector:
        raise InvalidInputError("the query has no SPLADE term with a positive weight; nothing to retrieve")
    return {
        "sparse_vector": {
            "field": spec.splade_field,
            "query_vector": vector,
            "prune": True,
            "pruning_config": pruning.engine_config(only_pruned=only_pruned),
        }
    }


def sparse_rescore(
    query_impacts: Mapping[str, float],
    spec: FieldSpec | None = None,
    *,
    pruning: SparsePruning | None,
    size: int,
) -> dict[str, Any] | None:
    """The rescore that gives a pruned SPLADE query's top hits their exact score back, or None when
    ``pruning`` asks for none (``rescore_window`` 0) or dropped nothing.

    Its query scores what the pruning left out: the terms the client dropped, plus (``engine=True``) the
    tokens Elasticsearch prunes from the kept ones (``only_score_pruned_tokens``). With ``query_weight``
    and ``rescore_query_weight`` 1 and ``score_mode`` ``total``, a hit's score becomes pruned + dropped =
    the exact Σ_t q_t · d_t (a hit without a dropped term keeps its score, which is then exact). The window
    is ``max(rescore_window, size)``, so every hit returned is rescored.

    >>> r = sparse_rescore({"a": 3.0, "b": 1.0, "c": 2.0}, pruning=SparsePruning(top_k=2, rescore_window=50),
    ...                    size=10)
    >>> r["window_size"], r["query"]["rescore_query"]
    (50, {'bool': {'should': [{'rank_feature': {'field': 'splade.b', 'linear': {}, 'boost': 1.0}}]}})
    >>> sparse_rescore({"a": 3.0}, pruning=SparsePruning(top_k=2, rescore_window=50), size=10) is None
    True
    >>> sparse_rescore({"a": 3.0, "b": 1.0}, pruning=SparsePruning(top_k=1), size=10) is None
    True
    """
    if pruning is None or not pruning.rescore_window:
        return None
    spec = spec or FieldSpec()
    kept = pruning.apply(query_impacts)  # the positive terms the first stage keeps
    dropped = {t: float(w) for t, w in query_impacts.items() if float(w) > 0.0 and t not in kept}
    clauses: list[dict[str, Any]] = []
    if dropped:
        clauses.append(sparse_query(dropped, spec))
    if pruning.engine and kept:
        clauses.append(_engine_pruned(kept, spec, pruning, only_pruned=True))
    if not clauses:
        return None
    return {
        "window_size": max(int(pruning.rescore_window), int(size)),
        "query": {
            "rescore_query": clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses}},
            "query_weight": 1.0,
            "rescore_query_weight": 1.0,
            "score_mode": "total",
        },
    }


def bm25_clause(
    text: str,
    fields: Sequence[str],
    *,
    boost: float | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The engine's own BM25 over ``fields`` (each analysed as the index maps it), optionally boosted and
    restricted by ``filters`` (which do not score).

    >>> bm25_clause("vitamin c", ["title", "text"])
    {'multi_match': {'query': 'vitamin c', 'fields': ['title', 'text']}}
    >>> bm25_clause("x", ["text"], boost=0.5, filters=[{"term": {"lang": "en"}}])["bool"]["filter"]
    [{'term': {'lang': 'en'}}]
    """
    if not fields:
        raise InvalidInputError("BM25 needs at least one text field")
    clause: dict[str, Any] = {"multi_match": {"query": text, "fields": list(fields)}}
    if boost is not None:
        clause["multi_match"]["boost"] = float(boost)
    if filters:
        return {"bool": {"must": [clause], "filter": [dict(f) for f in filters]}}
    return clause


def nested_knn_query(
    engine: str,
    query_vector: Sequence[float],
    spec: FieldSpec | None = None,
    *,
    k: int = 10,
    num_candidates: int | None = None,
) -> dict[str, Any]:
    """A parent-level query scoring each document by its best token for ``query_vector`` (nested kNN).

    >>> spec = FieldSpec(colbert_dim=2)
    >>> nested_knn_query("opensearch", [1.0, 0.0], spec, k=5)["nested"]["query"]
    {'knn': {'colbert.v': {'vector': [1.0, 0.0], 'k': 5}}}
    >>> nested_knn_query("elasticsearch", [1.0, 0.0], spec, k=5)["nested"]["query"]["knn"]["num_candidates"]
    50
    """
    spec = spec or FieldSpec()
    vector = [float(x) for x in query_vector]
    if len(vector) != spec.colbert_dim and spec.element_type != "bit":
        raise InvalidInputError(
            f"query vector has {len(vector)} dimensions, the index has {spec.colbert_dim}"
        )
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    if engine == "elasticsearch":
        inner = {
            "knn": {
                "field": spec.vector_path,
                "query_vector": vector,
                "k": k,
                "num_candidates": num_candidates or max(10 * k, 50),
            }
        }
    elif engine == "opensearch":
        inner = {"knn": {spec.vector_path: {"vector": vector, "k": k}}}
    else:
        raise InvalidInputError(f"unknown engine {engine!r}")
    return {"nested": {"path": spec.colbert_field, "score_mode": "max", "query": inner}}


#: Painless per engine: the score of one (query token, document token) pair, shifted by +1 so it is never
#: negative (script_score refuses negative scores; unit vectors give dot products >= -1). The field name
#: and the vector travel as parameters, never spliced into the source.
_MAXSIM_SCRIPTS = {
    # OpenSearch k-NN painless has no inner product; on unit vectors cosine equals the dot product.
    "opensearch": "1.0 + cosineSimilarity(params.q, doc[params.field])",
    "elasticsearch": "1.0 + dotProduct(params.q, params.field)",
}


def maxsim_rescore(
    engine: str,
    query_vectors: Sequence[Sequence[float]] | np.ndarray,
    spec: FieldSpec | None = None,
    *,
    window: int = 100,
    first_stage_weight: float = 0.0,
) -> dict[str, Any]:
    """A rescore that replaces the top ``window`` scores (per shard) by ``m + MaxSim`` (+ ``w`` times the
    first-stage score when ``first_stage_weight`` w is not 0: the rescore's ``query_weight``).

    One nested clause per query token (``score_mode: max`` over the document's tokens) of a script
    score ``1 + q_i · d_j``; their ``bool.should`` sums to ``Σ_i (1 + max_j q_i · d_j) = m + MaxSim``,
    where ``m`` is the number of query tokens. Subtract ``m`` to read MaxSim.

    >>> r = maxsim_rescore("opensearch", [[1.0, 0.0], [0.0, 1.0]], FieldSpec(colbert_dim=2), window=50)
    >>> r["window_size"], len(r["query"]["rescore_query"]["bool"]["should"]), r["query"]["query_weight"]
    (50, 2, 0.0)
    """
    spec = spec or FieldSpec()
    if engine not in _MAXSIM_SCRIPTS:
        raise InvalidInputError(f"unknown engine {engine!r}")
    if window < 1:
        raise InvalidInputError(f"window must be >= 1, got {window}")
    clauses = []
    for vector in query_vectors:
        q = [float(x) for x in vector]
        if len(q) != spec.colbert_dim:
            raise InvalidInputError(f"query vector has {len(q)} dimensions, the index has {spec.colbert_dim}")
        script = {"source": _MAXSIM_SCRIPTS[engine], "params": {"q": q, "field": spec.vector_path}}
        clauses.append(
            {
                "nested": {
                    "path": spec.colbert_field,
                    "score_mode": "max",
                    "query": {"script_score": {"query": {"match_all": {}}, "script": script}},
                }
            }
        )
    if not clauses:
        raise InvalidInputError("the query has no ColBERT vectors to rerank with")
    return {
        "window_size": window,
        "query": {
            "rescore_query": {"bool": {"should": clauses}},
            "query_weight": float(first_stage_weight),
            "rescore_query_weight": 1.0,
            "score_mode": "total",
        },
    }


def first_stage_query(
    query_impacts: Mapping[str, float],
    spec: FieldSpec | None = None,
    *,
    filters: Sequence[Mapping[str, Any]] = (),
    extra_should: Sequence[Mapping[str, Any]] = (),
    pruning: SparsePruning | None = None,
) -> dict[str, Any]:
    """The first stage: SPLADE clauses (plus optional extra candidate clauses), restricted by ``filters``.

    ``filters`` are any engine query-DSL clauses (they restrict, they do not score). ``extra_should``
    adds candidate sources (nested kNN, BM25) whose scores add to the SPLADE score.

    >>> q = first_stage_query({"a": 1.0}, filters=[{"term": {"lang": "en"}}])
    >>> q["bool"]["filter"], q["bool"]["minimum_should_match"]
    ([{'term': {'lang': 'en'}}], 1)
    """
    spec = spec or FieldSpec()
    should: list[dict[str, Any]] = [sparse_query(query_impacts, spec, pruning=pruning)]
    should.extend(dict(c) for c in extra_should)
    body: dict[str, Any] = {"should": should, "minimum_should_match": 1}
    if filters:
        body["filter"] = [dict(f) for f in filters]
    return {"bool": body}


def rrf_fuse(
    ranked_lists: Sequence[Sequence[str]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ``Σ_lists w / (k + rank)``, highest first (ties by first appearance).

    >>> rrf_fuse([["a", "b", "c"], ["b", "d"]])[:2]
    [('b', 0.03252247488101534), ('a', 0.01639344262295082)]
    """
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise InvalidInputError("rrf_fuse needs one weight per ranked list")
    scores: dict[str, float] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        for rank, doc_id in enumerate(ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    order = {doc_id: i for i, doc_id in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def source_filter(source: Sequence[str] | bool | None, spec: FieldSpec | None = None) -> Any:
    """The ``_source`` a search asks for: ``False`` for none, all but colsplade's heavy fields for
    ``True``, else the listed fields.

    >>> source_filter(True)
    {'excludes': ['splade', 'colbert', 'colbert_codes']}
    >>> source_filter(None), source_filter(["title"])
    (False, ['title'])
    """
    spec = spec or FieldSpec()
    if source is None or source is False:
        return False
    if source is True:
        return {"excludes": list(spec.heavy_fields)}
    return list(source)


def token_fetch(spec: FieldSpec, source: Any = False) -> dict[str, Any]:
    """The request keys that fetch each hit's token blob, merged with the caller's ``_source`` filter.

    ``source`` storage reads the blob out of ``_source``; ``stored`` by ``stored_fields``;
    ``doc_values`` by ``docvalue_fields``. Schema-1 indices read their packed copy (or the nested JSON).

    >>> token_fetch(FieldSpec())
    {'_source': True}
    >>> token_fetch(FieldSpec(), ["title"])
    {'_source': ['title', 'colbert_codes']}
    >>> token_fetch(FieldSpec(codes_storage="stored"), ["title"])
    {'_source': ['title'], 'stored_fields': ['colbert_codes']}
    >>> token_fetch(FieldSpec(codes_storage="doc_values"))
    {'_source': False, 'docvalue_fields': ['colbert_codes']}
    """
    if spec.codes_field is not None and spec.codes_storage == "stored":
        return {"_source": source, "stored_fields": [spec.codes_field]}
    if spec.codes_field is not None and spec.codes_storage == "doc_values":
        return {"_source": source, "docvalue_fields": [spec.codes_field]}
    if spec.codes_field is not None and not isinstance(source, list):
        # The whole _source, not a filtered one: filtering makes the engine parse and rewrite every
        # hit's JSON (measured ~4x slower for a window of 100 abstracts than sending it whole, which
        # the client then parses with orjson); colsplade's fields are stripped from the hits later.
        return {"_source": True}
    # schema 1: the packed copy, and the nested numbers for documents written without one
    fields = (
        [spec.codes_field] if spec.codes_field else [f for f in (spec.packed_field, spec.colbert_field) if f]
    )
    if source is False:
        return {"_source": fields}
    if isinstance(source, dict):
        # "all but the heavy fields", plus the blob
        return {"_source": {"excludes": [f for f in source["excludes"] if f not in fields]}}
    return {"_source": list(dict.fromkeys([*source, *fields]))}


def search_body(
    query: Mapping[str, Any],
    size: int,
    *,
    source: Any = False,
    fetch: Mapping[str, Any] | None = None,
    highlight: Sequence[str] | None = None,
    rescore: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One search request. Total hits are not tracked, so the engine may skip non-competitive documents.
    ``rescore``: one rescorer, or several that the engine applies in turn.

    >>> search_body({"match_all": {}}, 5, highlight=["text"])
    {'query': {'match_all': {}}, 'size': 5, '_source': False, 'track_total_hits': False, 'highlight': {'fields': {'text': {}}}}
    """
    body: dict[str, Any] = {
        "query": dict(query),
        "size": int(size),
        "_source": source,
        "track_total_hits": False,
    }
    if fetch:
        body.update(fetch)
    if isinstance(rescore, Mapping):
        body["rescore"] = dict(rescore)
    elif rescore:
        rescorers = [dict(r) for r in rescore]
        body["rescore"] = rescorers[0] if len(rescorers) == 1 else rescorers
    if highlight:
        body["highlight"] = {"fields": {f: {} for f in highlight}}
    return body


def candidates_query(
    query_impacts: Mapping[str, float],
    spec: FieldSpec,
    filters: Sequence[Mapping[str, Any]],
    extra_should: Sequence[Mapping[str, Any]],
    pruning: SparsePruning | None = None,
) -> dict[str, Any]:
    """The first stage from whatever candidate sources the search has: SPLADE clauses when the query has
    terms, else only the extra sources (nested kNN, BM25), restricted by ``filters``.

    >>> candidates_query({}, FieldSpec(), [], [{"match": {"text": "x"}}])
    {'bool': {'should': [{'match': {'text': 'x'}}], 'minimum_should_match': 1}}
    """
    if query_impacts:
        return first_stage_query(
            query_impacts, spec, filters=filters, extra_should=extra_should, pruning=pruning
        )
    body: dict[str, Any] = {"should": [dict(c) for c in extra_should], "minimum_should_match": 1}
    if filters:
        body["filter"] = [dict(f) for f in filters]
    return {"bool": body}


def top_terms(query_impacts: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` heaviest query terms (ties keep the query's order).

    >>> top_terms({"a": 0.5, "b": 2.0, "c": 1.0}, 2)
    {'b': 2.0, 'c': 1.0}
    """
    ranked = sorted(query_impacts.items(), key=lambda kv: -kv[1])[:k]
    return dict(ranked)
