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


def test_sparse_pruning_keeps_the_heaviest_terms_and_never_empties_a_query():
    from colsplade.query import SparsePruning, sparse_query

    impacts = {"gene": 2.0, "cell": 1.0, "the": 0.1, "mice": 0.8}
    assert SparsePruning(top_k=2).apply(impacts) == {"gene": 2.0, "cell": 1.0}
    assert SparsePruning(weight_ratio=0.45).apply(impacts) == {"gene": 2.0, "cell": 1.0}
    assert SparsePruning(weight_ratio=1.0).apply(impacts) == {"gene": 2.0}  # the heaviest always stays
    assert SparsePruning(top_k=1, weight_ratio=0.9).apply({"a": 0.5}) == {"a": 0.5}
    pruned = sparse_query(impacts, FieldSpec(), pruning=SparsePruning(top_k=3))
    assert [c["rank_feature"]["field"] for c in pruned["bool"]["should"]] == [
        "splade.gene",
        "splade.cell",
        "splade.mice",
    ]
    engine = sparse_query(
        {"e.g.": 1.0, "x": 0.2},
        FieldSpec(splade_type="sparse_vector"),
        pruning=SparsePruning(engine=True, top_k=1),
    )
    assert engine == {
        "sparse_vector": {
            "field": "splade",
            "query_vector": {"e%2Eg%2E": 1.0},
            "prune": True,
            "pruning_config": {
                "tokens_freq_ratio_threshold": 5.0,
                "tokens_weight_threshold": 0.4,
                "only_score_pruned_tokens": False,
            },
        }
    }
    with pytest.raises(InvalidInputError, match="sparse_vector field"):
        sparse_query(impacts, FieldSpec(), pruning=SparsePruning(engine=True))
    for bad in (
        {"top_k": 0},
        {"weight_ratio": 1.5},
        {"weight_ratio": -0.1},
        {"freq_ratio": 0.5},
        {"weight_threshold": 2},
    ):
        with pytest.raises(InvalidInputError, match="SparsePruning"):
            SparsePruning(**bad)


def test_sparse_rescore_adds_back_exactly_what_the_pruning_dropped():
    from colsplade.query import SparsePruning, search_body, sparse_rescore

    impacts = {"gene": 2.0, "cell": 1.0, "the": 0.1, "mice": 0.8, "zero": 0.0}
    pruning = SparsePruning(top_k=2, rescore_window=100)
    rescore = sparse_rescore(impacts, FieldSpec(), pruning=pruning, size=10)
    assert rescore is not None
    assert rescore["window_size"] == 100
    assert rescore["query"]["query_weight"] == rescore["query"]["rescore_query_weight"] == 1.0
    assert rescore["query"]["score_mode"] == "total"
    should = rescore["query"]["rescore_query"]["bool"]["should"]
    # the kept and the dropped terms partition the positive ones: pruned + rescore = exact
    assert {c["rank_feature"]["field"]: c["rank_feature"]["boost"] for c in should} == {
        "splade.the": 0.1,
        "splade.mice": 0.8,
    }
    # never a window smaller than the hits asked for: each returned hit is rescored
    assert sparse_rescore(impacts, FieldSpec(), pruning=pruning, size=500)["window_size"] == 500
    # nothing dropped, no rescore asked for, or no pruning: no rescore
    assert sparse_rescore({"gene": 2.0, "cell": 1.0}, FieldSpec(), pruning=pruning, size=10) is None
    assert sparse_rescore(impacts, FieldSpec(), pruning=SparsePruning(top_k=2), size=10) is None
    assert sparse_rescore(impacts, FieldSpec(), pruning=None, size=10) is None
    # sparse_vector + the engine's pruning: the client-dropped terms and the tokens the engine prunes
    spec = FieldSpec(splade_type="sparse_vector")
    both = sparse_rescore(
        impacts, spec, pruning=SparsePruning(top_k=2, engine=True, rescore_window=50), size=10
    )
    dropped, engine_pruned = both["query"]["rescore_query"]["bool"]["should"]
    assert [c["term"]["splade"]["value"] for c in dropped["bool"]["should"]] == ["the", "mice"]
    assert engine_pruned["sparse_vector"]["query_vector"] == {"gene": 2.0, "cell": 1.0}
    assert engine_pruned["sparse_vector"]["pruning_config"]["only_score_pruned_tokens"] is True
    only_engine = sparse_rescore(
        {"gene": 2.0}, spec, pruning=SparsePruning(engine=True, rescore_window=50), size=10
    )
    assert "sparse_vector" in only_engine["query"]["rescore_query"]
    # one rescorer stays an object, several become the engine's list (applied in turn)
    assert search_body({"match_all": {}}, 5, rescore=[rescore])["rescore"] == rescore
    assert search_body({"match_all": {}}, 5, rescore=[rescore, rescore])["rescore"] == [rescore, rescore]
    assert "rescore" not in search_body({"match_all": {}}, 5, rescore=[])
    for bad in (-1, 10_001, 2.5, True, "100"):
        with pytest.raises(InvalidInputError, match="rescore_window"):
            SparsePruning(top_k=2, rescore_window=bad)
