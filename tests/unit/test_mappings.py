import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.mappings import (
    FieldSpec,
    MappingConflictError,
    colsplade_properties,
    escape_feature,
    escape_impacts,
    fields_to_add,
    index_body,
    index_meta,
    load_template,
    spec_from_meta,
    unescape_feature,
)


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_templates_equal_builders(engine):
    assert load_template(engine) == index_body(engine)


def test_escape_is_reversible_on_tricky_tokens():
    tokens = [".", "..", "%", "%2E", "%25", "a.b", "##.", "e.g.", "100%", "naïve", "__", "%%2E.."]
    escaped = [escape_feature(t) for t in tokens]
    assert all("." not in e for e in escaped)
    assert len(set(escaped)) == len(tokens)
    assert [unescape_feature(e) for e in escaped] == tokens


def test_escape_rejects_empty_and_drops_non_positive():
    with pytest.raises(InvalidInputError):
        escape_feature("")
    assert escape_impacts({"a": 0.0, "b": -1, "c": float("nan"), "d": 2}) == {"d": 2.0}


@pytest.mark.parametrize("element_type", ["float", "byte", "bit"])
def test_es_vector_field(element_type):
    field = colsplade_properties(
        "elasticsearch", FieldSpec(colbert_dim=64, element_type=element_type, nested_vectors=True)
    )["colbert"]
    assert field["type"] == "nested"
    vec = field["properties"]["v"]
    assert vec["type"] == "dense_vector" and vec["dims"] == 64 and vec["element_type"] == element_type
    assert vec["similarity"] == ("l2_norm" if element_type == "bit" else "dot_product")


def test_os_vector_field_types():
    byte = colsplade_properties("opensearch", FieldSpec(element_type="byte", nested_vectors=True))["colbert"][
        "properties"
    ]["v"]
    assert byte["data_type"] == "byte" and byte["method"]["engine"] == "lucene"
    bit = colsplade_properties("opensearch", FieldSpec(element_type="bit", nested_vectors=True))["colbert"][
        "properties"
    ]["v"]
    assert bit["data_type"] == "binary" and bit["method"] == {
        "name": "hnsw",
        "engine": "faiss",
        "space_type": "hamming",
        "parameters": {"m": 16, "ef_construction": 100},
    }
    stored = colsplade_properties("opensearch", FieldSpec(index_vectors=False, nested_vectors=True))[
        "colbert"
    ]["properties"]["v"]
    assert "method" not in stored
    assert index_body("opensearch", FieldSpec(index_vectors=False))["settings"]["index"]["knn"] is False


def test_quantization_and_stored_only():
    q = colsplade_properties("elasticsearch", FieldSpec(quantization="int8_hnsw", nested_vectors=True))[
        "colbert"
    ]["properties"]["v"]
    assert q["index_options"]["type"] == "int8_hnsw"
    s = colsplade_properties("elasticsearch", FieldSpec(index_vectors=False, nested_vectors=True))["colbert"][
        "properties"
    ]["v"]
    assert s["index"] is False and "similarity" not in s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"colbert_dim": 0},
        {"element_type": "half"},
        {"element_type": "bit", "colbert_dim": 12},
        {"quantization": "pq"},
        {"quantization": "int8_hnsw", "element_type": "byte"},
        {"splade_field": "a.b"},
        {"splade_field": "x", "colbert_field": "x"},
        {"knn_engine": "nmslib"},
        {"codes_storage": "fielddata"},
        {"codes_field": "splade"},
        {"doc_top_k": 0},
        {"doc_top_k": -5},
        {"doc_top_k": True},
        {"doc_top_k": 12.5},
        {"doc_top_k": "128"},
    ],
)
def test_bad_specs(kwargs):
    with pytest.raises(InvalidInputError):
        FieldSpec(**kwargs)


def test_sparse_vector_only_on_elasticsearch():
    with pytest.raises(InvalidInputError, match="Elasticsearch field type"):
        colsplade_properties("opensearch", FieldSpec(splade_type="sparse_vector"))


def test_fields_to_add_keeps_users_fields_and_is_idempotent():
    existing = {"title": {"type": "text"}, "body": {"type": "text"}}
    to_add = fields_to_add("opensearch", existing)
    assert set(to_add) == {"splade", "colbert_codes", "colsplade"}
    merged = {**existing, **to_add}
    assert fields_to_add("opensearch", merged) == {}


def test_fields_to_add_refuses_conflicts():
    with pytest.raises(MappingConflictError, match="colbert_codes"):
        fields_to_add("elasticsearch", {"colbert_codes": {"type": "keyword"}})
    with pytest.raises(MappingConflictError, match="colbert"):
        fields_to_add("elasticsearch", {"colbert": {"type": "keyword"}}, FieldSpec(nested_vectors=True))
    other_dim = colsplade_properties("elasticsearch", FieldSpec(colbert_dim=96, nested_vectors=True))
    with pytest.raises(MappingConflictError):
        fields_to_add("elasticsearch", other_dim, FieldSpec(colbert_dim=128, nested_vectors=True))


@pytest.mark.parametrize("storage", ["source", "stored", "doc_values"])
def test_compact_store_layouts_keep_vectors_out_of_source(storage):
    spec = FieldSpec(codes_storage=storage)
    body = index_body("elasticsearch", spec)
    codes = body["mappings"]["properties"]["colbert_codes"]
    assert codes["type"] == "binary" and "colbert" not in body["mappings"]["properties"]
    assert codes.get("store", False) is (storage == "stored")
    assert codes.get("doc_values", False) is (storage == "doc_values")
    excludes = body["mappings"].get("_source", {}).get("excludes", [])
    assert excludes == ([] if storage == "source" else ["colbert_codes"])
    nested = index_body("opensearch", FieldSpec(nested_vectors=True, element_type="byte"))
    assert nested["mappings"]["_source"] == {"excludes": ["colbert"]}
    assert nested["settings"]["index"]["knn"] is True
    assert index_body("opensearch")["settings"]["index"]["knn"] is False


def test_schema_one_meta_reads_as_the_legacy_layout():
    old = {
        "colsplade": {
            "schema": 1,
            "colbert_dim": 16,
            "element_type": "byte",
            "packed_field": "colbert_packed",
        }
    }
    spec = spec_from_meta(old)
    assert spec.nested_vectors and spec.codes_field is None and spec.packed_field == "colbert_packed"
    with pytest.raises(InvalidInputError, match="token store"):
        FieldSpec(codes_field=None)


def test_doc_cap_round_trips_and_reads_none_where_not_recorded():
    meta = index_meta(FieldSpec(doc_top_k=128), "m", "1")
    assert meta["colsplade"]["doc_top_k"] == 128
    assert spec_from_meta(meta).doc_top_k == 128
    del meta["colsplade"]["doc_top_k"]  # an index written before the cap was recorded
    assert spec_from_meta(meta).doc_top_k is None


def test_meta_round_trip_and_body_conflicts():
    spec = FieldSpec(colbert_dim=32, element_type="bit", index_vectors=False)
    body = index_body(
        "elasticsearch", spec, model_name="m", model_version="2", extra_properties={"t": {"type": "text"}}
    )
    assert spec_from_meta(body["mappings"]["_meta"]) == spec
    assert body["mappings"]["_meta"]["colsplade"]["model_version"] == "2"
    assert spec_from_meta({}) is None
    with pytest.raises(MappingConflictError):
        index_body("elasticsearch", extra_properties={"splade": {"type": "text"}})
    with pytest.raises(InvalidInputError):
        index_body("solr")


@pytest.mark.parametrize("element_type", ["float", "byte", "bit"])
def test_packing_round_trip_is_exact(element_type):
    import numpy as np

    from colsplade.mappings import pack_token_vectors, unpack_token_vectors

    rng = np.random.default_rng(0)
    if element_type == "float":
        vectors, width = rng.normal(size=(7, 16)).astype(np.float32), 16
    elif element_type == "byte":
        vectors, width = rng.integers(-128, 128, size=(7, 16)).astype(np.int8), 16
    else:
        vectors, width = rng.integers(-128, 128, size=(7, 2)).astype(np.int8), 2
    back = unpack_token_vectors(pack_token_vectors(vectors, element_type), width, element_type)
    assert back.shape == vectors.shape
    assert back.tobytes() == np.ascontiguousarray(vectors).tobytes()
    empty = unpack_token_vectors(pack_token_vectors(vectors[:0], element_type), width, element_type)
    assert empty.shape == (0, width)


def test_packing_bad_input():
    import numpy as np

    from colsplade.mappings import pack_token_vectors, unpack_token_vectors

    with pytest.raises(InvalidInputError, match="2-d"):
        pack_token_vectors(np.zeros(3))
    with pytest.raises(InvalidInputError, match="base64"):
        unpack_token_vectors("not base64!", 4)
    with pytest.raises(InvalidInputError, match="multiple of"):
        unpack_token_vectors(pack_token_vectors(np.zeros((1, 3), dtype=np.float32)), 4)
    with pytest.raises(InvalidInputError, match="element_type"):
        pack_token_vectors(np.zeros((1, 3)), "half")
