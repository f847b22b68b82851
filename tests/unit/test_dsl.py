import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.mappings import FieldSpec
from colsplade.query import nested_knn_query, sparse_query


def test_sparse_query_one_clause_per_positive_term():
    q = sparse_query({"a": 1.0, "b.c": 0.5, "z": 0.0, "n": -2})
    fields = [c["rank_feature"]["field"] for c in q["bool"]["should"]]
    assert fields == ["splade.a", "splade.b%2Ec"]


def test_sparse_query_empty_is_an_error():
    with pytest.raises(InvalidInputError, match="no SPLADE term"):
        sparse_query({"a": 0.0})


def test_nested_knn_dimension_checked():
    with pytest.raises(InvalidInputError, match="dimensions"):
        nested_knn_query("elasticsearch", [1.0, 2.0], FieldSpec(colbert_dim=4))
    with pytest.raises(InvalidInputError):
        nested_knn_query("solr", [1.0] * 128)
