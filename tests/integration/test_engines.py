"""Real Elasticsearch and OpenSearch nodes: index creation, rank_features + nested vectors round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colsplade.engines import create_index, index_info, spec_for
from colsplade.exceptions import EngineRefusedError, InvalidInputError
from colsplade.mappings import FieldSpec, MappingConflictError, escape_impacts, unescape_impacts
from colsplade.query import nested_knn_query, sparse_query

DIM = 8


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _doc(impacts: dict[str, float], vectors: np.ndarray) -> dict:
    return {
        "title": "a title",
        "splade": escape_impacts(impacts),
        "colbert": [{"v": [float(x) for x in row]} for row in vectors],
        "colsplade": {"model_name": "test", "model_version": "1", "encoded_at": "2026-11-25T00:00:00Z"},
    }


def test_capabilities(engine):
    caps = engine.capabilities()
    assert caps.engine == engine.engine
    assert caps.knn
    if engine.engine == "opensearch":
        # colsplade assembles these modules into the minimal distribution; the k-NN plugin is installed.
        assert caps.rank_features and caps.painless
        assert "opensearch-knn" in caps.plugins
    else:
        assert caps.sparse_vector
    assert caps.splade_type in ("rank_features", "sparse_vector")


def test_round_trip_rank_features_and_nested_knn(engine, engine_index):
    rng = np.random.default_rng(0)
    spec = FieldSpec(nested_vectors=True, colbert_dim=DIM)
    result = create_index(engine, engine_index, spec, model_name="test", model_version="1")
    assert result["created"]
    spec = result["spec"]
    docs = {
        "d1": ({"u.s.": 1.5, "cat": 0.25, "zero": 0.0}, _unit(rng, 5)),
        "d2": ({"cat": 2.0, "100%": 0.75}, _unit(rng, 3)),
        "d3": ({"dog": 1.0}, _unit(rng, 4)),
    }
    for doc_id, (impacts, vectors) in docs.items():
        engine.index_document(engine_index, doc_id, _doc(impacts, vectors))
    engine.refresh(engine_index)
    engine.flush(engine_index)

    # Stored impacts come back under their escaped keys; zeros were dropped.
    stored = engine.get_document(engine_index, "d1")["_source"]
    assert unescape_impacts(stored["splade"]) == {"u.s.": 1.5, "cat": 0.25}

    # The rank_feature (linear) bool sums to the SPLADE dot product, up to the 9-bit feature precision.
    query_impacts = {"u.s.": 2.0, "cat": 1.0, "100%": 4.0}
    hits = engine.search(engine_index, {"query": sparse_query(query_impacts, spec), "_source": False})[
        "hits"
    ]["hits"]
    expected = {
        doc_id: sum(w * impacts.get(t, 0.0) for t, w in query_impacts.items())
        for doc_id, (impacts, _) in docs.items()
    }
    got = {h["_id"]: h["_score"] for h in hits}
    assert set(got) == {"d1", "d2"}
    for doc_id, score in got.items():
        assert math.isclose(score, expected[doc_id], rel_tol=0.01)
    assert [h["_id"] for h in hits] == sorted(got, key=lambda d: -expected[d])

    # Nested kNN: a document's score comes from its best token for the query vector.
    query_vector = docs["d3"][1][2]
    body = {"query": nested_knn_query(engine.engine, query_vector, spec, k=3), "_source": False}
    knn_hits = engine.search(engine_index, body)["hits"]["hits"]
    assert knn_hits[0]["_id"] == "d3"
    best_dots = {d: float(np.max(v @ query_vector)) for d, (_, v) in docs.items()}
    # Both engines map a unit dot product s to (1 + s) / 2 (ES dot_product) or 1 + s (OpenSearch innerproduct).
    top = knn_hits[0]["_score"]
    assert math.isclose(top, (1 + best_dots["d3"]) / 2, rel_tol=1e-3) or math.isclose(
        top, 1 + best_dots["d3"], rel_tol=1e-3
    )

    info = index_info(engine, engine_index)
    assert info["documents"] == 3
    assert info["lucene_documents"] == 3 + 5 + 3 + 4
    assert info["colsplade_fields"] == {
        "splade": True,
        "colbert_codes": True,
        "colbert": True,
        "colsplade": True,
    }
    assert info["model_version"] == "1"


def test_add_fields_to_existing_index_keeps_documents(engine, engine_index):
    settings = {"index": {"number_of_shards": 1, "number_of_replicas": 0}}
    if engine.engine == "opensearch":
        settings["index"]["knn"] = True
    engine.create_index(
        engine_index, {"settings": settings, "mappings": {"properties": {"title": {"type": "text"}}}}
    )
    engine.index_document(engine_index, "old", {"title": "existing search keeps working"}, refresh=True)

    with pytest.raises(InvalidInputError, match="already exists"):
        create_index(engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=DIM))
    result = create_index(
        engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=DIM), existing_ok=True
    )
    assert not result["created"] and result["added_fields"] == [
        "colbert",
        "colbert_codes",
        "colsplade",
        "splade",
    ]
    again = create_index(
        engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=DIM), existing_ok=True
    )
    assert again["added_fields"] == []

    mapping = engine.get_mapping(engine_index)
    assert mapping["properties"]["title"] == {"type": "text"}
    hits = engine.search(engine_index, {"query": {"match": {"title": "search"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["old"]

    rng = np.random.default_rng(1)
    engine.index_document(engine_index, "new", _doc({"x": 1.0}, _unit(rng, 2)), refresh=True)
    spec = result["spec"]
    hits = engine.search(engine_index, {"query": sparse_query({"x": 1.0}, spec)})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["new"]

    with pytest.raises(MappingConflictError):
        create_index(
            engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=2 * DIM), existing_ok=True
        )


def test_conflicting_field_is_refused(engine, engine_index):
    engine.create_index(engine_index, {"mappings": {"properties": {"splade": {"type": "keyword"}}}})
    with pytest.raises(MappingConflictError, match="splade"):
        create_index(engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=DIM), existing_ok=True)


@pytest.mark.parametrize("element_type", ["byte", "bit"])
def test_compact_element_types(engine, engine_index, element_type):
    spec = FieldSpec(
        nested_vectors=True, colbert_dim=DIM * 8 if element_type == "bit" else DIM, element_type=element_type
    )
    if engine.engine == "opensearch" and element_type == "bit":
        # Binary knn_vector needs the faiss engine, whose native library the Maven plugin zip lacks;
        # stored-only bit vectors (rerank in the client) still work.
        spec = FieldSpec(nested_vectors=True, colbert_dim=DIM * 8, element_type="bit", index_vectors=False)
    spec = create_index(engine, engine_index, spec)["spec"]
    if element_type == "byte":
        vectors = [
            [int(x) for x in row] for row in np.random.default_rng(2).integers(-127, 128, size=(3, DIM))
        ]
    else:
        vectors = [
            [int(x) for x in row] for row in np.random.default_rng(2).integers(-128, 128, size=(3, DIM))
        ]
    doc = {"splade": {"a": 1.0}, "colbert": [{"v": v} for v in vectors]}
    engine.index_document(engine_index, "d", doc, refresh=True)
    # the nested vectors are indexed (and stored for scripts), never copied into the _source a search returns
    returned = engine.search(engine_index, {"query": {"ids": {"values": ["d"]}}})["hits"]["hits"][0][
        "_source"
    ]
    assert not any(t.get(spec.vector_field) for t in returned.get("colbert") or [])
    if spec.index_vectors:
        hits = engine.search(engine_index, {"query": nested_knn_query(engine.engine, vectors[0], spec, k=1)})
        assert hits["hits"]["hits"][0]["_id"] == "d"


def test_painless_in_nested_script_score(engine, engine_index):
    """In-engine MaxSim needs painless vector functions inside a nested script_score."""
    if not engine.capabilities().painless:
        pytest.skip(
            f"{engine.engine} {engine.capabilities().version} build has no painless (documented in README)"
        )
    create_index(engine, engine_index, FieldSpec(nested_vectors=True, colbert_dim=DIM, index_vectors=False))
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 4)
    engine.index_document(engine_index, "d", _doc({"a": 1.0}, vectors), refresh=True)
    q = _unit(rng, 1)[0]
    fn = "cosineSimilarity" if engine.engine == "opensearch" else "dotProduct"
    script = {"source": f"1.0 + {fn}(params.q, doc['colbert.v'])", "params": {"q": [float(x) for x in q]}}
    body = {
        "query": {
            "nested": {
                "path": "colbert",
                "score_mode": "max",
                "query": {"script_score": {"query": {"match_all": {}}, "script": script}},
            }
        }
    }
    score = engine.search(engine_index, body)["hits"]["hits"][0]["_score"]
    assert math.isclose(score, 1.0 + float(np.max(vectors @ q)), rel_tol=1e-4)


def test_refused_and_missing_index_errors(engine, engine_index):
    with pytest.raises(EngineRefusedError) as info:
        engine.search(engine_index, {"query": {"match_all": {}}})
    assert info.value.status == 404 and info.value.error_type == "index_not_found_exception"
    assert "colsplade index create" in str(info.value)
    assert index_info(engine, engine_index) == {"index": engine_index, "exists": False}
    with pytest.raises(InvalidInputError, match="invalid index name"):
        engine.index_exists("Bad Name")


def test_spec_for_adapts_splade_type(engine):
    spec = spec_for(engine, FieldSpec(nested_vectors=True))
    assert spec.splade_type == engine.capabilities().splade_type


def test_native_knn_fields_refused_on_maven_opensearch(engine, engine_index):
    """The Maven k-NN zip has no native libs; a faiss / binary field would crash the node, so it is refused."""
    if engine.engine != "opensearch":
        pytest.skip("OpenSearch k-NN plugin only")
    for spec in (
        FieldSpec(nested_vectors=True, colbert_dim=64, element_type="bit"),
        FieldSpec(nested_vectors=True, colbert_dim=DIM, knn_engine="faiss"),
    ):
        with pytest.raises(InvalidInputError, match="no native libraries"):
            create_index(engine, engine_index, spec)
    assert not engine.index_exists(engine_index)
    assert engine.health()["status"] in ("green", "yellow")


def test_english_analyser_for_bm25(engine, engine_index):
    """The local OpenSearch node has the language analysers (analysis-common assembled from Maven Central):
    a BM25 text field analysed by `english` stems and drops stopwords, as a team's English index does.
    Elasticsearch's integ-test zip lacks the module: `auto` is `standard` there and `english` is refused."""
    from colsplade.mappings import text_analyzers, text_properties

    caps = engine.capabilities()
    if engine.engine == "opensearch":
        assert caps.language_analyzers and "analysis-common" in caps.modules
    if not caps.language_analyzers:
        assert caps.resolve_analyzer() == "standard"
        with pytest.raises(InvalidInputError, match="no 'english' analyser"):
            caps.resolve_analyzer("english")
        return
    assert caps.resolve_analyzer() == "english" == caps.resolve_analyzer("english")
    tokens = engine.request(
        "POST", "/_analyze", body={"analyzer": "english", "text": "The studies are running"}
    )
    assert [t["token"] for t in tokens["tokens"]] == ["studi", "run"]
    engine.create_index(
        engine_index, {"mappings": {"properties": text_properties(["title", "text"], "english")}}
    )
    assert text_analyzers(engine.get_mapping(engine_index)["properties"], ["title", "text"]) == {
        "title": "english",
        "text": "english",
    }
    engine.index_document(engine_index, "a", {"title": "Runner", "text": "The mice are running studies"})
    engine.index_document(
        engine_index, "b", {"title": "Other", "text": "a completely different topic"}, refresh=True
    )
    body = {"query": {"multi_match": {"query": "study runs", "fields": ["title", "text"]}}}
    assert [h["_id"] for h in engine.search(engine_index, body)["hits"]["hits"]] == ["a"]
    # the stopword alone matches nothing: english drops it at query and index time
    body = {"query": {"multi_match": {"query": "the", "fields": ["title", "text"]}}}
    assert engine.search(engine_index, body)["hits"]["hits"] == []
