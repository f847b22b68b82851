"""Pure query-DSL builders (plain dicts): SPLADE first stage and nested token kNN, per engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from colsplade.exceptions import InvalidInputError
from colsplade.mappings import FieldSpec, escape_feature

__all__ = ["nested_knn_query", "sparse_query"]


def sparse_query(query_impacts: Mapping[str, float], spec: FieldSpec | None = None) -> dict[str, Any]:
    """The SPLADE dot product as engine query: one linear feature clause per query term, boosted by its weight.

    With ``rank_features`` each clause is ``rank_feature`` with the ``linear`` function (score = stored
    impact); ``sparse_vector`` fields score a ``term`` on the feature linearly as well. Summed by a
    ``bool.should``, the score is Σ_t q_t · d_t. Terms with weight <= 0 are dropped.

    >>> sparse_query({"e.g.": 2.0, "the": 0.0})
    {'bool': {'should': [{'rank_feature': {'field': 'splade.e%2Eg%2E', 'linear': {}, 'boost': 2.0}}]}}
    >>> sparse_query({"cat": 0.5}, FieldSpec(splade_type="sparse_vector"))
    {'bool': {'should': [{'term': {'splade': {'value': 'cat', 'boost': 0.5}}}]}}
    """
    spec = spec or FieldSpec()
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
