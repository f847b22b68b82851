"""The query client on real engines: both rerank paths equal brute-force MaxSim; filters, pages, explain, errors."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from colsplade.config import Settings
from colsplade.engines import connect, spec_for
from colsplade.exceptions import (
    CodecMismatchError,
    EngineRefusedError,
    EngineUnreachableError,
    InvalidInputError,
    ModelVersionMismatchError,
)
from colsplade.ingest import Layout
from colsplade.mappings import FieldSpec, escape_impacts, index_body, pack_token_vectors, spec_from_meta
from colsplade.query import AsyncSearchClient, SearchClient
from colsplade.scoring import dequantize_int8, quantize_bits, quantize_int8

TEXTS = [
    ("cells and genes", "the gene expression of cancer cells in mice"),
    ("virus infection", "viral infection raises the immune response in patients"),
    ("heart disease", "drug therapy lowers the risk of heart disease"),
    ("dense retrieval", "dense vectors and sparse queries for neural search ranking"),
    ("brain", "the brain of the mouse has many neural cells"),
    ("liver", "liver and kidney function decrease with the dose of the drug"),
    ("dark night", "the moon and the stars light the dark night sky"),
    ("fish", "fish and birds live in the water near the earth"),
    ("protein binding", "protein binding to the receptor increases activity"),
    ("tumour growth", "tumor growth is slow in old mice with low dose therapy"),
    ("blood", "blood levels of the drug were high in the first trial"),
    ("search engine", "the search engine ranks documents by query tokens and scores"),
]
QUERIES = [
    "gene expression in cancer cells",
    "drug risk for heart",
    "neural search with sparse vectors",
    "dark sky",
]


def _everything(engine) -> dict:
    """A search body for every stored document with its vector fields (Elasticsearch 9.2+ leaves them
    out of ``_source`` unless asked)."""
    return {"query": {"match_all": {}}, "size": 100, "_source": engine.capabilities().source_with_vectors()}


@pytest.fixture(scope="module")
def encoder(tiny_joint_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint_model, variant="fp32")


def _index_corpus(engine, index, encoder, layout=None, model_version=None):
    """The corpus through the real ingest (the codec is fitted on it, or the model's is used)."""
    from colsplade.ingest import FieldMapping, ingest

    docs = [
        {"id": f"d{i}", "title": t, "text": x, "lang": "en" if i % 2 == 0 else "de"}
        for i, (t, x) in enumerate(TEXTS)
    ]
    summary = ingest(
        docs, engine, index, encoder, fields=FieldMapping(id_field="id"), layout=layout, progress=False
    )
    assert summary.indexed == len(TEXTS) and summary.dead_lettered == 0
    if model_version is not None:
        meta = engine.get_mapping(index)["_meta"]
        meta["colsplade"]["model_version"] = model_version
        engine.put_mapping(index, {"_meta": meta})
    return engine_spec(engine, index)


def engine_spec(engine, index):
    from colsplade.mappings import spec_from_meta

    return spec_from_meta(engine.get_mapping(index)["_meta"])


def _legacy_corpus(engine, index, encoder, element_type="float", packed=True):
    """An index in the schema-1 layout (nested vectors + packed copy in _source), written by hand."""
    config = encoder.config
    spec = FieldSpec(
        colbert_dim=config.colbert.dim,
        element_type=element_type,
        index_vectors=element_type != "bit",
        nested_vectors=True,
        codes_field=None,
        packed_field="colbert_packed",
    )
    body = index_body(
        engine.engine, spec_for(engine, spec), model_name=config.name, model_version=str(config.version)
    )
    body["mappings"]["_meta"]["colsplade"]["schema"] = 1
    body["mappings"].pop("_source", None)
    engine.create_index(index, body)
    encoded = encoder.encode_documents([f"{t}\n{x}" for t, x in TEXTS])
    vectors = {}
    for i, (title, text) in enumerate(TEXTS):
        v = encoded.colbert[i]
        stored = (
            quantize_int8(v)
            if element_type == "byte"
            else quantize_bits(v).view(np.int8)
            if element_type == "bit"
            else v
        )
        # as the reader gives them back: bytes dequantised, bits packed
        vectors[f"d{i}"] = (
            dequantize_int8(stored)
            if element_type == "byte"
            else stored.view(np.uint8)
            if element_type == "bit"
            else stored
        )
        engine.index_document(
            index,
            f"d{i}",
            {
                "title": title,
                "text": text,
                "lang": "en" if i % 2 == 0 else "de",
                "splade": escape_impacts(encoded.splade[i]),
                "colbert": [{"v": row.tolist()} for row in stored],
                **({"colbert_packed": pack_token_vectors(stored, element_type)} if packed else {}),
                "colsplade": {"model_name": config.name, "model_version": str(config.version)},
            },
        )
    engine.refresh(index)
    return spec_from_meta(engine.get_mapping(index)["_meta"]), vectors


def _stored_vectors(client: SearchClient, engine, index) -> dict[str, np.ndarray]:
    """Every document's token vectors as the index holds them (codes decoded)."""
    from colsplade.query._dsl import search_body, token_fetch

    spec = client.spec
    body = search_body({"match_all": {}}, 100, fetch=token_fetch(spec), source=token_fetch(spec)["_source"])
    return client._token_reader.read(engine.search(index, body)["hits"]["hits"])


def _brute_force(client: SearchClient, query: str, vectors, candidate_ids):
    _, qv = client.encode_query(query)
    scores = {}
    for doc_id in candidate_ids:
        scores[doc_id] = float(client._token_reader.similarities(qv, vectors[doc_id]).max(axis=1).sum())
    return sorted(scores, key=lambda d: -scores[d]), scores


def _candidates(client: SearchClient, query: str) -> list[str]:
    return [h.id for h in client.search(query, k=len(TEXTS), window=len(TEXTS), rerank="none").hits]


@pytest.mark.parametrize("storage", ["source", "stored", "doc_values"])
def test_compact_store_reranks_like_brute_force(engine, engine_index, encoder, storage):
    """The default layout: one blob per document, no vectors in _source; client MaxSim == numpy MaxSim over
    the decoded codes, and within the codec's error of the float MaxSim."""
    spec = _index_corpus(engine, engine_index, encoder, layout=Layout(codes_storage=storage))
    assert spec.codes_field == "colbert_codes" and not spec.nested_vectors and spec.codes_storage == storage
    mapping = engine.get_mapping(engine_index)
    assert "colbert" not in mapping["properties"] and mapping["_meta"]["colsplade"]["codec"]["hash"]
    raw = engine.search(engine_index, {"query": {"ids": {"values": ["d0"]}}})["hits"]["hits"][0]["_source"]
    assert "colbert" not in raw and "colbert_packed" not in raw
    assert ("colbert_codes" in raw) is (storage == "source")
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    assert client.resolve_rerank("auto") == "client"
    vectors = _stored_vectors(client, engine, engine_index)
    assert set(vectors) == {f"d{i}" for i in range(len(TEXTS))}
    floats = dict(
        zip(vectors, encoder.encode_documents([f"{t}\n{x}" for t, x in TEXTS]).colbert, strict=True)
    )
    for query in QUERIES:
        candidates = _candidates(client, query)
        assert candidates, query
        order, scores = _brute_force(client, query, vectors, candidates)
        result = client.search(query, k=len(candidates), window=len(TEXTS), rerank="client")
        assert result.ids() == order
        _, qv = client.encode_query(query)
        for hit in result.hits:
            assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-5, abs_tol=1e-5)
            assert hit.stage_scores["maxsim"] == hit.score and "first_stage" in hit.stage_scores
            exact = float((qv @ floats[hit.id].T).max(axis=1).sum())
            # the codec's documented error on MaxSim: a few % of the query's token count
            assert abs(hit.score - exact) <= 0.15 * len(qv)
    with pytest.raises(InvalidInputError, match="knn_k needs nested token vectors"):
        client.search(QUERIES[0], knn_k=3)


def test_nested_layout_engine_and_client_rerank_agree(engine, engine_index, encoder):
    """Opt-in nested float vectors (out of _source, decoded from the codes): the engine's painless rescore
    and the client's MaxSim give the same order and scores."""
    spec = _index_corpus(engine, engine_index, encoder, layout=Layout(nested_vectors=True))
    assert spec.nested_vectors and spec.codes_field
    raw = engine.search(engine_index, {"query": {"ids": {"values": ["d0"]}}})["hits"]["hits"][0]["_source"]
    # (Elasticsearch 9.2+ keeps the nested objects' places as empty objects, without their vectors)
    floats = [t for t in raw.get("colbert") or [] if t.get(spec.vector_field)]
    assert not floats and "colbert_codes" in raw, "no float copy of the vectors in _source"
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    vectors = _stored_vectors(client, engine, engine_index)
    can_engine = engine.capabilities().painless
    for query in QUERIES:
        candidates = _candidates(client, query)
        order, scores = _brute_force(client, query, vectors, candidates)
        n = len(candidates)
        client_result = client.search(query, k=n, window=len(TEXTS), rerank="client")
        assert client_result.ids() == order
        if can_engine:
            engine_result = client.search(query, k=n, window=len(TEXTS), rerank="engine")
            assert engine_result.ids() == order
            for hit in engine_result.hits:
                assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-4, abs_tol=1e-4)
    if can_engine:
        # a pruned first stage rescored exactly, then MaxSim + w x first stage: the engine chains its two
        # rescorers, the client adds the rescored first-stage scores; both give the same scores
        from colsplade.query import SparsePruning

        pruned = SparsePruning(top_k=1, rescore_window=len(TEXTS))
        options = {"k": 5, "window": len(TEXTS), "first_stage_weight": 0.5, "sparse_pruning": pruned}
        in_engine = client.search(QUERIES[0], rerank="engine", **options)
        in_client = client.search(QUERIES[0], rerank="client", **options)
        assert in_engine.hits and in_engine.round_trips == 1
        assert in_engine.ids() == in_client.ids()
        for a, b in zip(in_engine.hits, in_client.hits, strict=True):
            assert math.isclose(a.score, b.score, rel_tol=1e-3, abs_tol=1e-3), (a, b)
        assert client.resolve_rerank("auto") == "engine"
    else:
        assert client.resolve_rerank("auto") == "client"
        with pytest.raises(InvalidInputError, match="in-engine rerank needs painless"):
            client.search(QUERIES[0], rerank="engine")
    with_knn = client.search(QUERIES[2], k=5, window=12, knn_k=3)
    assert len(with_knn.hits) == 5
    ann_only = client.search(QUERIES[2], k=3, window=12, knn_k=4, splade=False)
    assert ann_only.hits


@pytest.mark.parametrize(("element_type", "packed"), [("byte", True), ("bit", True), ("float", False)])
def test_schema_one_indices_still_rerank_like_numpy(engine, engine_index, encoder, element_type, packed):
    """Indices written before the compact store: the packed copy, or the nested numbers without it."""
    caps = engine.capabilities()
    if not packed and caps.engine == "opensearch" and caps.version_tuple[:1] >= (3,):
        # OpenSearch 3 rebuilds knn_vector values in _source from the index (derived source) and hands
        # nested ones back in another shape; such an index can only have been written on OpenSearch 2
        pytest.skip("schema-1 nested vectors read from _source: indices of OpenSearch 2 only")
    spec, vectors = _legacy_corpus(engine, engine_index, encoder, element_type=element_type, packed=packed)
    assert spec.codes_field is None and spec.nested_vectors
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    if element_type != "float":
        assert client.resolve_rerank() == "client"
    for query in QUERIES[:2]:
        candidates = _candidates(client, query)
        order, scores = _brute_force(client, query, vectors, candidates)
        result = client.search(query, k=len(candidates), window=len(TEXTS), rerank="client")
        assert result.ids() == order
        for hit in result.hits:
            assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-5, abs_tol=1e-5)


def test_schema_one_index_migrates_behind_its_alias(engine, engine_index, encoder):
    from colsplade.engines._scan import alias_indices, switch_alias
    from colsplade.ingest import reindex

    old = engine_index + "-old"
    alias = engine_index
    _legacy_corpus(engine, old, encoder, element_type="float", packed=True)
    switch_alias(engine, alias, old)
    try:
        before = SearchClient(alias, encoder, client=engine).search(QUERIES[0], k=5, rerank="none").ids()
        summary = reindex(engine, alias, encoder, reencode=True, progress=False)
        assert summary.alias_switched and summary.indexed == len(TEXTS) and summary.dead_lettered == 0
        (target,) = alias_indices(engine, alias)
        assert target != old
        spec = engine_spec(engine, target)
        assert spec.codes_field == "colbert_codes" and not spec.nested_vectors
        src = engine.search(target, {"query": {"ids": {"values": ["d3"]}}})["hits"]["hits"][0]["_source"]
        assert {"title", "text", "lang", "colbert_codes"} <= set(src)
        assert "colbert" not in src and "colbert_packed" not in src
        migrated = SearchClient(alias, encoder, client=engine)
        # the same SPLADE impacts: the same first stage; the rerank now reads the codes
        assert migrated.search(QUERIES[0], k=5, rerank="none").ids() == before
        after = migrated.search(QUERIES[0], k=5)
        assert len(after.hits) == 5 and after.rerank == "client"
        assert all("maxsim" in h.stage_scores for h in after.hits)
        assert engine.count(target) == len(TEXTS)
    finally:
        for name in alias_indices(engine, alias):
            engine.delete_index(name)
        if engine.index_exists(old):
            engine.delete_index(old)


def test_codec_mismatch_is_refused(engine, engine_index, encoder, tiny_joint_model, tmp_path, monkeypatch):
    """The index's codec is found by its hash (model directory, then the cache); a reader that has it
    nowhere is refused rather than decoding with another codec's centroids."""
    import shutil

    from colsplade.encoders import CODEC_FILE, load_encoder
    from colsplade.scoring import fit_codec

    _index_corpus(engine, engine_index, encoder)
    monkeypatch.setenv("COLSPLADE_CACHE", str(tmp_path / "empty-cache"))
    other_dir = tmp_path / "other"
    shutil.copytree(tiny_joint_model, other_dir)
    rng = np.random.default_rng(3)
    other_codec = fit_codec(rng.standard_normal((400, encoder.config.colbert.dim)), n_centroids=8, seed=3)
    (other_dir / CODEC_FILE).write_bytes(other_codec.to_bytes())
    other = load_encoder(other_dir, variant="fp32")
    with pytest.raises(CodecMismatchError, match="codec"):
        SearchClient(engine_index, other, client=engine).search(QUERIES[0])
    from colsplade.ingest import ingest

    with pytest.raises(CodecMismatchError):
        ingest([{"id": "x", "title": "a", "text": "more cells"}], engine, engine_index, other, progress=False)
    (other_dir / CODEC_FILE).unlink()
    with pytest.raises(CodecMismatchError):
        SearchClient(engine_index, load_encoder(other_dir, variant="fp32"), client=engine).search(QUERIES[0])


def _set_codes(engine, index, doc_id, codes):
    engine.request("POST", f"/{index}/_update/{doc_id}", body={"doc": {"colbert_codes": codes}})


def test_corrupted_blob_falls_back_to_first_stage(engine, engine_index, encoder, caplog):
    import base64

    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    query = QUERIES[0]
    candidates = _candidates(client, query)
    assert len(candidates) >= 3
    victim, cut = candidates[0], candidates[1]
    good = engine.search(engine_index, {"query": {"ids": {"values": [victim]}}})["hits"]["hits"][0]["_source"]
    blob = bytearray(base64.b64decode(good["colbert_codes"]))
    blob[-1] ^= 0xFF  # a flipped byte: the checksum catches it
    _set_codes(engine, engine_index, victim, base64.b64encode(bytes(blob)).decode())
    truncated = engine.search(engine_index, {"query": {"ids": {"values": [cut]}}})["hits"]["hits"][0][
        "_source"
    ]
    _set_codes(engine, engine_index, cut, truncated["colbert_codes"][:12])
    engine.refresh(engine_index)
    with caplog.at_level(logging.WARNING, logger="colsplade"):
        result = client.search(query, k=len(candidates), window=len(TEXTS), rerank="client")
    assert set(result.ids()) == set(candidates)
    assert set(result.ids()[-2:]) == {victim, cut}, "unreadable hits rank after the reranked ones"
    for hit in result.hits[-2:]:
        assert "maxsim" not in hit.stage_scores and hit.score == hit.stage_scores["first_stage"]
    assert all("maxsim" in h.stage_scores for h in result.hits[:-2])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert victim in logged and cut in logged and "checksum" in logged


def test_query_without_candidates_is_an_empty_result_with_a_reason(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    result = client.search(QUERIES[0], splade=False)
    assert result.hits == [] and "no first-stage candidates" in result.reason
    emoji = client.search("\U0001f600\U0001f680")
    if not emoji.query_terms:
        assert emoji.hits == [] and "all pruned" in emoji.reason
    assert client.search(QUERIES[0]).reason is None


def test_filters_pages_and_sources(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    query = QUERIES[0]
    filtered = client.search(query, k=5, filters={"term": {"lang": "en"}}, source=["title", "lang"])
    assert filtered.hits and all(h.source["lang"] == "en" for h in filtered.hits)
    assert all(set(h.source) == {"title", "lang"} for h in filtered.hits)
    full = client.search(query, k=6, window=12)
    page1 = client.search(query, k=3, offset=0, window=12)
    page2 = client.search(query, k=3, offset=3, window=12)
    assert page1.ids() + page2.ids() == full.ids()
    assert full.hits[0].source is None
    with pytest.raises(InvalidInputError, match="past the rerank window"):
        client.search(query, k=5, offset=98)
    everything = client.search(query, k=2, source=True)
    assert "title" in everything.hits[0].source
    assert not {"colbert", "colbert_codes", "splade"} & set(everything.hits[0].source)


def test_explain_contributions_sum_to_scores(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    result = client.search(QUERIES[1], k=4, explain=True)
    sparse = {h.id: h.score for h in client.search(QUERIES[1], k=12, window=12, rerank="none").hits}
    for hit in result.hits:
        ex = hit.explanation
        assert ex is not None and ex.tokens and ex.terms
        assert math.isclose(sum(t.contribution for t in ex.tokens), hit.score, rel_tol=1e-4, abs_tol=1e-4)
        assert math.isclose(ex.maxsim_score, hit.score, rel_tol=1e-4, abs_tol=1e-4)
        # Stored impacts keep 9 significant bits in the engine: the exact sum is within 1 %.
        assert math.isclose(ex.sparse_score, sparse[hit.id], rel_tol=0.01)
        assert all(t.doc_token for t in ex.tokens), "document tokens are named from the re-tokenised text"
        assert all(c.contribution == pytest.approx(c.query_weight * c.doc_weight) for c in ex.terms)


def test_hybrid_candidates(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    query = QUERIES[2]
    rrf = client.search(query, k=5, bm25_fields=["title", "text"], hybrid="rrf", rerank="none")
    assert [h.score for h in rrf.hits] == sorted((h.score for h in rrf.hits), reverse=True)
    assert all("rrf" in h.stage_scores for h in rrf.hits)
    reranked = client.search(query, k=5, bm25_fields=["title", "text"], hybrid="rrf")
    assert reranked.rerank in ("engine", "client") and len(reranked.hits) == 5
    summed = client.search(query, k=3, bm25_fields=["text"], hybrid="sum", rerank="none", highlight=["text"])
    assert summed.hits and any(h.highlight for h in summed.hits)
    bm25_only = client.search(query, k=3, bm25_fields=["text"], splade=False)
    assert bm25_only.hits and all("maxsim" in h.stage_scores for h in bm25_only.hits)


def test_named_plans_and_the_default(engine, engine_index, encoder):
    """The default plan reranks BM25's candidates by MaxSim fused with BM25's own score; every named plan
    runs; a plan needing BM25 falls back to the SPLADE plan on an index without text fields."""
    from colsplade.query import DEFAULT_PLAN, FALLBACK_PLAN, QUERY_PLANS

    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    query = QUERIES[2]
    default = client.search(query, k=5, window=len(TEXTS))
    assert default.plan == DEFAULT_PLAN == client.resolve_plan() == "bm25+colbert(fused)"
    assert default.rerank == "client" and len(default.hits) == 5
    assert all({"fused", "maxsim", "first_stage"} <= set(h.stage_scores) for h in default.hits)
    # the default plan is the explicit fused BM25 call, hit for hit
    explicit = client.search(
        query,
        k=5,
        window=len(TEXTS),
        bm25_fields=["title", "text"],
        splade=False,
        hybrid="sum",
        fusion="zscore",
    )
    assert explicit.plan is None and explicit.ids() == default.ids()
    for name in QUERY_PLANS:
        result = client.search(query, k=3, window=len(TEXTS), plan=name)
        assert result.plan == name and result.hits, name
        assert ("maxsim" in result.hits[0].stage_scores) is ("+colbert" in name), name
        assert ("fused" in result.hits[0].stage_scores) is ("(fused)" in name or "(rrf)" in name), name
    bm25 = {
        h["_id"]
        for h in engine.search(
            engine_index,
            {"query": {"multi_match": {"query": query, "fields": ["title", "text"]}}, "size": 100},
        )["hits"]["hits"]
    }
    assert set(client.search(query, k=5, window=len(TEXTS), plan="bm25+colbert").ids()) <= bm25
    # no text field among text_fields: the fallback, and 'bm25' named outright is refused
    bare = SearchClient(engine_index, encoder, client=engine, text_fields=("body",))
    assert bare.resolve_plan() == FALLBACK_PLAN == "splade+colbert(fused)"
    assert bare.search(query, k=3).plan == FALLBACK_PLAN
    with pytest.raises(InvalidInputError, match="plan 'bm25' needs text fields"):
        bare.search(query, plan="bm25")


def test_async_client_matches_sync(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    sync = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    expected = [sync.search(q, k=5).ids() for q in QUERIES]

    async def run():
        async with AsyncSearchClient(engine_index, encoder, client=engine, plan="splade+colbert") as client:
            results = await asyncio.gather(*(client.search(q, k=5) for q in QUERIES * 3))
        return [r.ids() for r in results]

    assert asyncio.run(run()) == expected * 3


def test_bad_queries_and_indices(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    for bad in ("", "   \n\t", "x" * 10_000, b"\xff\xfe"):
        with pytest.raises(InvalidInputError):
            client.search(bad)
    with pytest.raises(InvalidInputError, match="rerank must be"):
        client.search("cells", rerank="sideways")
    missing = SearchClient(engine_index + "-missing", encoder, client=engine)
    with pytest.raises(EngineRefusedError) as info:
        missing.search("cells")
    assert info.value.status == 404
    plain = engine_index + "-plain"
    engine.create_index(plain, {"mappings": {"properties": {"title": {"type": "text"}}}})
    try:
        with pytest.raises(InvalidInputError, match="has no colsplade fields"):
            SearchClient(plain, encoder, client=engine).search("cells")
    finally:
        engine.delete_index(plain)


def test_model_version_mismatch_is_refused(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder, model_version="older")
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert")
    with pytest.raises(ModelVersionMismatchError, match="re-encode"):
        client.search("cells")
    relaxed = SearchClient(engine_index, encoder, client=engine, check_model_version=False)
    assert relaxed.search("cells", k=2).hits


def test_engine_down_or_slow_is_a_typed_error_not_a_hang(encoder):
    down = SearchClient(
        "x", encoder, settings=Settings(urls=("http://127.0.0.1:9",), engine="opensearch", max_retries=0)
    )
    with pytest.raises(EngineUnreachableError):
        down.search("cells")
    # A listener that accepts and never answers: the request timeout must end the wait.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        settings = Settings(
            urls=(f"http://127.0.0.1:{port}",), engine="elasticsearch", request_timeout=1.0, max_retries=0
        )
        slow = SearchClient("x", encoder, client=connect(settings))
        with pytest.raises(EngineUnreachableError):
            slow.search("cells")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_search_command(engine, engine_index, encoder, tiny_joint_model):
    import json as _json

    from click.testing import CliRunner

    from colsplade.cli import main

    _index_corpus(engine, engine_index, encoder)
    url = engine.settings.urls[0]
    args = ["--url", url, "search", QUERIES[0], "--index", engine_index, "--model", str(tiny_joint_model)]
    shown = CliRunner().invoke(
        main, [*args, "--variant", "fp32", "-k", "3", "--explain", "--source", "title"]
    )
    assert shown.exit_code == 0, shown.output
    assert "3 hits" in shown.output and "MaxSim" in shown.output and "SPLADE" in shown.output
    as_json = CliRunner().invoke(main, [*args, "--variant", "fp32", "-k", "2", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert len(_json.loads(as_json.output)["hits"]) == 2
    bad = CliRunner().invoke(main, [*args, "--filter", "{not json"])
    assert bad.exit_code == 2 and "--filter must be a JSON" in bad.output


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    from colsplade.testing import make_tiny_model_dir

    root = tmp_path_factory.mktemp("pair")
    return (
        make_tiny_model_dir("splade", root / "splade", variants=()),
        make_tiny_model_dir("colbert", root / "colbert", variants=(), dim=24),
    )


def test_separate_models_ingest_and_search_as_a_pair(engine, engine_index, tiny_pair):
    """Two model directories: ingest fills both fields with the pair, the client reranks like numpy."""
    from colsplade.encoders import CODEC_FILE, load_encoder, load_encoder_pair
    from colsplade.ingest import FieldMapping, ingest

    splade_dir, colbert_dir = tiny_pair
    pair = load_encoder_pair(splade_dir, colbert_dir, variant="fp32")
    docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate(TEXTS)]
    summary = ingest(docs, engine, engine_index, pair, fields=FieldMapping(id_field="id"), progress=False)
    assert summary.indexed == len(TEXTS) and summary.dead_lettered == 0
    engine.refresh(engine_index)
    client = SearchClient(
        engine_index,
        splade_model=splade_dir,
        colbert_model=colbert_dir,
        client=engine,
        encoder_options={"variant": "fp32"},
    )
    assert client.spec.colbert_dim == 24
    colbert = load_encoder(colbert_dir, variant="fp32")
    splade = load_encoder(splade_dir, variant="fp32")
    query = QUERIES[0]
    q_impacts, q_vectors = client.encode_query(query)
    assert q_impacts == splade.encode_queries([query])[0]
    np.testing.assert_allclose(q_vectors, colbert.encode_queries([query])[0], atol=1e-6)
    result = client.search(query, k=len(TEXTS), window=len(TEXTS), rerank="client", plan="splade+colbert")
    assert result.hits
    doc_vectors = colbert.encode_documents([f"{t}\n{x}" for t, x in TEXTS])
    decoded = _stored_vectors(client, engine, engine_index)
    expected = {d: float((q_vectors @ v.T).max(axis=1).sum()) for d, v in decoded.items()}
    for hit in result.hits:
        assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-4, abs_tol=1e-4)
    assert result.ids() == sorted(result.ids(), key=lambda d: -expected[d])
    # the codec belongs to the ColBERT side of the pair, and decodes close to the model's own vectors
    assert (colbert_dir / CODEC_FILE).is_file() and not (splade_dir / CODEC_FILE).exists()
    # pooled by 3 (the default codec): every document token has a close stored vector
    assert decoded["d0"].shape == (-(-len(doc_vectors[0]) // 3), 24)
    assert (doc_vectors[0] @ decoded["d0"].T).max(axis=1).mean() > 0.5
    stored = engine.search(engine_index, {"query": {"ids": {"values": ["d0"]}}})["hits"]["hits"][0]["_source"]
    # a joint model's client may not read the pair's index, and the pair's identity is what the index holds
    assert stored["colsplade"]["model_name"] == pair.config.name == client.model_name


def test_cli_ingest_and_search_with_a_pair(engine, engine_index, tiny_pair, tmp_path):
    import json
    import subprocess
    import sys

    splade_dir, colbert_dir = tiny_pair
    base = [
        sys.executable,
        "-m",
        "colsplade.cli",
        "--url",
        engine.settings.urls[0],
        "--engine",
        engine.engine,
    ]
    lines = "".join(
        json.dumps({"id": f"d{i}", "title": t, "text": x}) + "\n" for i, (t, x) in enumerate(TEXTS)
    )
    pair_flags = ["--splade-model", str(splade_dir), "--colbert-model", str(colbert_dir), "--variant", "fp32"]
    done = subprocess.run(
        [*base, "ingest", "-", "--index", engine_index, *pair_flags, "--json"],
        input=lines, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["indexed"] == len(TEXTS)
    done = subprocess.run(
        [*base, "search", QUERIES[0], "--index", engine_index, *pair_flags, "--first-stage-weight", "0.2", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    hits = json.loads(done.stdout)["hits"]
    assert hits and {h["id"] for h in hits} <= {f"d{i}" for i in range(len(TEXTS))}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    half = subprocess.run(
        [*base, "ingest", "-", "--index", engine_index, "--splade-model", str(splade_dir)],
        input=lines, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert half.returncode != 0 and "give both --splade-model and --colbert-model" in half.stderr


def test_first_stage_weight_fuses_scores_on_both_paths(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder, layout=Layout(nested_vectors=True))
    client = SearchClient(engine_index, encoder, client=engine, plan="splade+colbert", first_stage_weight=0.5)
    vectors = _stored_vectors(client, engine, engine_index)
    for query in QUERIES[:3]:
        sparse = {h.id: h.score for h in client.search(query, k=12, window=12, rerank="none").hits}
        _, maxsims = _brute_force(client, query, vectors, list(sparse))
        expected = {d: maxsims[d] + 0.5 * sparse[d] for d in sparse}
        fused = client.search(query, k=len(sparse), window=12, rerank="client")
        assert fused.ids() == sorted(sparse, key=lambda d: -expected[d])
        for hit in fused.hits:
            assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-4, abs_tol=1e-4)
            assert math.isclose(hit.stage_scores["maxsim"], maxsims[hit.id], rel_tol=1e-5, abs_tol=1e-5)
        if engine.capabilities().painless:
            in_engine = client.search(query, k=len(sparse), window=12, rerank="engine")
            assert in_engine.ids() == fused.ids()
            for hit in in_engine.hits:
                assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-3, abs_tol=1e-3)
        pure = client.search(query, k=len(sparse), window=12, rerank="client", first_stage_weight=0)
        assert [h.score for h in pure.hits] == pytest.approx(sorted(maxsims.values(), reverse=True), abs=1e-4)
    with pytest.raises(InvalidInputError, match="first_stage_weight"):
        client.search(QUERIES[0], first_stage_weight=-1)


def _bm25_scores(engine, index, query, fields=("title", "text")):
    body = {"query": {"multi_match": {"query": query, "fields": list(fields)}}, "size": 100}
    return {h["_id"]: float(h["_score"]) for h in engine.search(index, body)["hits"]["hits"]}


def _z(scores: dict[str, float]) -> dict[str, float]:
    values = np.array(list(scores.values()), dtype=np.float64)
    std = values.std()
    return {d: (v - values.mean()) / std if std > 1e-12 else 0.0 for d, v in scores.items()}


def test_fused_plans_keep_the_first_stage_evidence(engine, engine_index, encoder):
    """bm25+colbert(fused) orders BM25's window by z(MaxSim) + w z(BM25) and (rrf) by reciprocal rank of
    both orders, computed here by hand from the engine's own BM25 scores and numpy MaxSim; the hybrid
    fused plan keeps BM25 and SPLADE apart; fusion needs the client rerank."""
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    vectors = _stored_vectors(client, engine, engine_index)
    for query in QUERIES[:3]:
        bm25 = _bm25_scores(engine, engine_index, query)
        _, maxsims = _brute_force(client, query, vectors, list(bm25))
        for w in (0.5, 2.0):
            zb, zm = _z(bm25), _z(maxsims)
            expected = {d: zm[d] + w * zb[d] for d in bm25}
            fused = client.search(query, k=len(bm25), window=len(TEXTS), fusion_weight=w)
            assert fused.plan == "bm25+colbert(fused)"
            assert fused.ids() == sorted(bm25, key=lambda d: -expected[d])
            for hit in fused.hits:
                assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-3, abs_tol=1e-3)
                assert math.isclose(hit.stage_scores["first_stage"], bm25[hit.id], rel_tol=1e-4)
        bm25_rank = {d: r for r, d in enumerate(sorted(bm25, key=lambda d: -bm25[d]), start=1)}
        maxsim_rank = {d: r for r, d in enumerate(sorted(maxsims, key=lambda d: -maxsims[d]), start=1)}
        rrf = {d: 1 / (60 + bm25_rank[d]) + 1 / (60 + maxsim_rank[d]) for d in bm25}
        ranked = client.search(query, k=len(bm25), window=len(TEXTS), plan="bm25+colbert(rrf)")
        assert [round(h.score, 9) for h in ranked.hits] == [round(rrf[d], 9) for d in ranked.ids()]
        assert sorted(ranked.ids(), key=lambda d: -rrf[d]) == ranked.ids()
        # w = 0: MaxSim's order over BM25's candidates, exactly
        pure = client.search(query, k=len(bm25), window=len(TEXTS), fusion_weight=0.0)
        assert pure.ids() == sorted(bm25, key=lambda d: -maxsims[d])
        hybrid = client.search(query, k=5, window=len(TEXTS), plan="hybrid(bm25+splade)+colbert(fused)")
        assert hybrid.hits and all("fused" in h.stage_scores for h in hybrid.hits)
        assert any("bm25" in h.stage_scores for h in hybrid.hits)
    filtered = client.search(QUERIES[0], k=3, filters=[{"term": {"lang": "en"}}])
    assert filtered.hits and all(int(h.id[1:]) % 2 == 0 for h in filtered.hits)
    with pytest.raises(InvalidInputError, match="fusion_weight must be"):
        client.search(QUERIES[0], fusion_weight=-1.0)
    with pytest.raises(InvalidInputError, match="fusion must be one of"):
        client.search(QUERIES[0], fusion="max")
    with pytest.raises(InvalidInputError, match="fuses scores in the client"):
        client.search(QUERIES[0], rerank="none", fusion="zscore")
    unranked = client.search(QUERIES[0], k=3, rerank="none")  # the plan's fusion needs a rerank: dropped
    assert unranked.rerank == "none" and all("fused" not in h.stage_scores for h in unranked.hits)
    off = client.search(QUERIES[0], k=3, fusion="none")
    assert off.hits and all("fused" not in h.stage_scores for h in off.hits)


@pytest.fixture(scope="module")
def inference_free_model(tmp_path_factory):
    """A tiny joint model whose SPLADE query side is inference-free (a per-term weight table)."""
    pytest.importorskip("torch")
    from colsplade.testing import make_tiny_model_dir

    out = tmp_path_factory.mktemp("inference-free") / "joint-if"
    return make_tiny_model_dir("joint", out, variants=("int8",), query_encoder="inference_free")


def test_inference_free_queries_on_the_engine(
    engine, engine_index, inference_free_model, tmp_path, monkeypatch
):
    """Encode (the query's own tokens, weighed by the table), ingest (the index records the mode), search
    (SPLADE scores = the dot product with the stored impacts; the SPLADE plan runs no transformer), and
    the other mode refused both ways."""
    import json
    import shutil

    from colsplade.encoders import load_encoder
    from colsplade.exceptions import ModelVersionMismatchError
    from colsplade.ingest import FieldMapping, ingest
    from colsplade.mappings import unescape_impacts

    encoder = load_encoder(inference_free_model, variant="int8")
    spec = _index_corpus(engine, engine_index, encoder)
    assert spec.sparse_query == "inference-free"
    client = SearchClient(engine_index, encoder, client=engine)
    table = np.load(inference_free_model / "query_weights.npy")
    for query in QUERIES:
        impacts, _ = client.encode_query(query)
        ids = set(encoder.tokenizer.tokenize([query], is_query=True).ids[0])
        own = {encoder.tokenizer.id_to_token(i): float(table[i]) for i in ids}
        assert impacts and all(math.isclose(w, own[t], rel_tol=1e-6) for t, w in impacts.items())
        sparse = client.search(query, k=5, window=len(TEXTS), plan="splade")
        assert sparse.hits
        if query == QUERIES[0]:
            sparse_ids = sparse.ids()
        docs = {
            h["_id"]: unescape_impacts(h["_source"]["splade"])
            for h in engine.search(engine_index, _everything(engine))["hits"]["hits"]
        }
        for hit in sparse.hits:  # rank_features keep 9 significant bits
            expected = sum(w * docs[hit.id].get(t, 0.0) for t, w in impacts.items())
            assert math.isclose(hit.score, expected, rel_tol=1e-2, abs_tol=1e-4)
        assert client.search(query, k=3).hits  # the default (fused) plan runs on it too
    # a SPLADE plan that does not rerank needs no query vectors: a tokenizer call and a lookup
    passes: list[object] = []
    forward = encoder._forward
    monkeypatch.setattr(encoder, "_forward", lambda *a, **kw: passes.append(kw["want"]) or forward(*a, **kw))
    bare = client.search(QUERIES[0], k=5, window=len(TEXTS), plan="splade")
    assert passes == [] and bare.ids() == sparse_ids
    assert client.search(QUERIES[0], k=5, plan="bm25").hits and passes == []  # BM25 alone encodes nothing
    assert client.search(QUERIES[0], k=5, window=len(TEXTS), plan="splade+colbert").hits
    assert passes == [["colbert"]]  # reranking reads the vectors: the ColBERT graph runs
    # the same model with the encoder query side: refused against the index, by search and by ingest
    other = Path(shutil.copytree(inference_free_model, tmp_path / "other"))
    config = json.loads((other / "colsplade.json").read_text())
    config["splade"]["query_encoder"] = "model"
    (other / "colsplade.json").write_text(json.dumps(config))
    other_encoder = load_encoder(other, variant="int8")
    with pytest.raises(ModelVersionMismatchError, match="inference-free sparse queries"):
        SearchClient(engine_index, other_encoder, client=engine).search(QUERIES[0])
    with pytest.raises(ModelVersionMismatchError, match="encoder sparse queries"):
        ingest(
            [{"id": "x", "title": "t", "text": "the brain"}],
            engine,
            engine_index,
            other_encoder,
            fields=FieldMapping(id_field="id"),
            progress=False,
        )


HYBRID = "hybrid(bm25+splade)+colbert(fused)"


def test_every_plan_is_one_round_trip_and_the_hybrid_matches_three_requests(engine, engine_index, encoder):
    """The hybrid sends its SPLADE and BM25 lists in one _msearch, each with the window's token data: the
    same hits and scores as the three requests it replaced (SPLADE list, BM25 list, fetch of the fused
    ids by id), rebuilt here by hand from the engine's answers. Every named plan takes one round trip."""
    from colsplade.query import QUERY_PLANS, bm25_clause, first_stage_query, rrf_fuse
    from colsplade.query._dsl import search_body, token_fetch
    from colsplade.scoring import fuse_scores

    spec = _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    window = 8  # fewer than the union of both lists: the rank-fusion cut matters
    fetch = token_fetch(spec)
    for query in QUERIES:
        impacts, qv = client.encode_query(query)
        sparse = engine.search(engine_index, search_body(first_stage_query(impacts, spec), window))
        bm25 = engine.search(engine_index, search_body(bm25_clause(query, ["title", "text"]), window))
        splade_scores = {h["_id"]: h["_score"] for h in sparse["hits"]["hits"]}
        bm25_scores = {h["_id"]: h["_score"] for h in bm25["hits"]["hits"]}
        fused_ids = [d for d, _ in rrf_fuse([list(splade_scores), list(bm25_scores)])[:window]]
        body = search_body({"ids": {"values": fused_ids}}, window, fetch=fetch, source=fetch["_source"])
        raw = engine.search(engine_index, body)["hits"]["hits"]
        maxsims, ok = client._token_reader.maxsim(qv, raw)
        assert ok.all()
        ids = [h["_id"] for h in raw]
        expected = dict(
            zip(
                ids,
                fuse_scores(
                    {
                        "maxsim": maxsims,
                        "bm25": np.array([bm25_scores.get(d, np.nan) for d in ids]),
                        "splade": np.array([splade_scores.get(d, np.nan) for d in ids]),
                    },
                    {"maxsim": 1.0, "bm25": 0.5, "splade": 0.5},
                ),
                strict=True,
            )
        )
        result = client.search(query, k=window, window=window, plan=HYBRID)
        assert result.round_trips == 1 and result.candidates == len(fused_ids)
        assert result.ids() == sorted(expected, key=lambda d: -expected[d])
        for hit in result.hits:
            assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-4, abs_tol=1e-4)
            assert hit.stage_scores.get("bm25") == bm25_scores.get(hit.id)
        unranked = client.search(query, k=window, window=window, plan="hybrid(bm25+splade)")
        assert unranked.round_trips == 1 and unranked.ids() == fused_ids
    for name in QUERY_PLANS:
        result = client.search(QUERIES[0], k=3, plan=name)
        assert result.round_trips == 1, name
    explained = client.search(QUERIES[0], k=2, plan=HYBRID, explain=True)
    assert explained.round_trips == 2 and all(h.explanation for h in explained.hits)


def test_default_plan_encodes_no_sparse_query(engine, engine_index, encoder):
    """A plan without SPLADE candidates leaves the SPLADE query side out (ColBERT-only graph where the
    export wrote one): same ranking, no query terms reported unless explain asks for them."""
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    default = client.search(QUERIES[1], k=5)
    assert default.plan == "bm25+colbert(fused)" and default.query_terms == {}
    full_vectors = encoder.encode_queries([QUERIES[1]]).colbert[0]
    assert np.allclose(encoder.encode_queries([QUERIES[1]], sparse=False).colbert[0], full_vectors, atol=1e-6)
    explained = client.search(QUERIES[1], k=5, explain=True)
    assert explained.query_terms and explained.ids() == default.ids()


def test_default_plan_encodes_while_the_engine_searches(engine, engine_index, encoder):
    """The default plan's BM25 request needs only the text: it is sent before the query is encoded and
    the two overlap. Same hits and scores as encoding first, one round trip; an engine refusal comes back
    typed and an encoder failure is raised once the request has returned, without a stray thread."""
    _index_corpus(engine, engine_index, encoder)
    overlapped = SearchClient(engine_index, encoder, client=engine)
    serial = SearchClient(engine_index, encoder, client=engine, overlap_encoding=False)
    for query in QUERIES:
        a, b = overlapped.search(query, k=5), serial.search(query, k=5)
        assert a.plan == b.plan == "bm25+colbert(fused)" and a.round_trips == b.round_trips == 1
        assert a.ids() == b.ids()
        assert [round(h.score, 5) for h in a.hits] == [round(h.score, 5) for h in b.hits]
        assert a.hits[0].stage_scores == b.hits[0].stage_scores
        assert a.timings_ms["encode"] > 0 and a.timings_ms["engine"] > 0
    with pytest.raises(EngineRefusedError):
        overlapped.search(QUERIES[0], filters=[{"no_such_query": {"lang": "en"}}])

    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_queries(self, texts, *, sparse=True):
            raise InvalidInputError("the encoder failed")

    broken = SearchClient(engine_index, Broken(encoder), client=engine, check_model_version=False)
    with pytest.raises(InvalidInputError, match="the encoder failed"):
        broken.search(QUERIES[0], k=3)
    broken.close()
    overlapped.close()
    assert overlapped._pool is None


def test_hybrid_corrupt_blob_and_failed_sub_search(engine, engine_index, encoder, caplog):
    """In the one-request hybrid, a corrupt blob still falls back to its first-stage score per hit, and a
    sub-search the engine refuses inside _msearch raises the typed engine error."""
    import base64

    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan=HYBRID)
    query = QUERIES[0]
    before = client.search(query, k=len(TEXTS), window=len(TEXTS))
    victim = before.ids()[0]
    good = engine.search(engine_index, {"query": {"ids": {"values": [victim]}}})["hits"]["hits"][0]["_source"]
    blob = bytearray(base64.b64decode(good["colbert_codes"]))
    blob[-1] ^= 0xFF
    _set_codes(engine, engine_index, victim, base64.b64encode(bytes(blob)).decode())
    engine.refresh(engine_index)
    with caplog.at_level(logging.WARNING, logger="colsplade"):
        after = client.search(query, k=len(TEXTS), window=len(TEXTS))
    assert after.round_trips == 1 and set(after.ids()) == set(before.ids())
    assert after.ids()[-1] == victim and "maxsim" not in after.hits[-1].stage_scores
    assert victim in " ".join(r.getMessage() for r in caplog.records)
    # one bad sub-search in a hand-made _msearch: its own typed error, not a missing key
    with pytest.raises(EngineRefusedError) as refused:
        engine.msearch(engine_index, [{"query": {"match_all": {}}}, {"query": {"no_such_query": {}}}])
    assert refused.value.status == 400
    # through the client: a filter the engine cannot parse fails both sub-searches of the hybrid
    with pytest.raises(EngineRefusedError):
        client.search(query, filters=[{"no_such_query": {"lang": "en"}}])
    assert engine.msearch(engine_index, []) == []


def test_partial_answer_of_the_hybrid_is_flagged(engine, engine_index, encoder):
    """An alias over two indices whose shards of one fail the filter (a date field given a word): the
    one-request hybrid comes back flagged partial with the failures, and strict raises."""
    from colsplade.exceptions import PartialResultError

    _index_corpus(engine, engine_index, encoder)
    mapping = engine.get_mapping(engine_index)
    mapping["properties"]["lang"] = {"type": "date"}
    other = f"{engine_index}-dates"
    engine.create_index(
        other, {"settings": {"number_of_shards": 1, "number_of_replicas": 0}, "mappings": mapping}
    )
    alias = f"{engine_index}-all"
    try:
        engine.request(
            "POST",
            "/_aliases",
            body={
                "actions": [
                    {"add": {"index": engine_index, "alias": alias}},
                    {"add": {"index": other, "alias": alias}},
                ]
            },
        )
        client = SearchClient(alias, encoder, client=engine, plan=HYBRID)
        result = client.search(QUERIES[0], k=3, filters=[{"term": {"lang": "en"}}])
        assert result.round_trips == 1 and result.partial and result.shards.failed >= 1, result.shards
        assert result.hits and all(int(h.id[1:]) % 2 == 0 for h in result.hits)
        with pytest.raises(PartialResultError):
            client.search(QUERIES[0], k=3, filters=[{"term": {"lang": "en"}}], strict=True)
    finally:
        engine.delete_index(other)


def test_sparse_pruning_on_both_engines(engine, engine_index, encoder):
    """Client pruning drops light query terms on either engine (the heaviest always stays, so a query
    keeps candidates); Elasticsearch's own pruning runs on its sparse_vector field, and a rank_features
    index refuses it with what to do instead."""
    from colsplade.query import SparsePruning

    spec = _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, plan="splade")
    query = QUERIES[0]
    exact = client.search(query, k=len(TEXTS), window=len(TEXTS))
    one = client.search(query, k=len(TEXTS), window=len(TEXTS), sparse_pruning=SparsePruning(top_k=1))
    assert one.hits and set(one.ids()) <= set(exact.ids())
    # one term left: exactly the documents holding it, each scored by its weight x the stored impact
    from colsplade.mappings import unescape_impacts

    heaviest = max(exact.query_terms, key=exact.query_terms.get)
    stored = {
        h["_id"]: unescape_impacts(h["_source"].get(spec.splade_field) or {})
        for h in engine.search(engine_index, _everything(engine))["hits"]["hits"]
    }
    expected = {
        d: exact.query_terms[heaviest] * imp[heaviest] for d, imp in stored.items() if heaviest in imp
    }
    assert set(one.ids()) == set(expected)
    for hit in one.hits:
        assert math.isclose(hit.score, expected[hit.id], rel_tol=0.01)
    # the same candidates, rescored in the same request with the dropped terms: the exact query's scores
    # and order among them
    exact_scores = {h.id: h.score for h in exact.hits}
    rescored = client.search(
        query,
        k=len(TEXTS),
        window=len(TEXTS),
        sparse_pruning=SparsePruning(top_k=1, rescore_window=len(TEXTS)),
    )
    assert rescored.round_trips == 1 and set(rescored.ids()) == set(expected)
    assert len(exact.query_terms) > 1  # so the rescore had terms to add back
    for hit in rescored.hits:
        assert math.isclose(hit.score, exact_scores[hit.id], rel_tol=1e-4), (hit.id, hit.score)
    assert rescored.ids() == [d for d in exact.ids() if d in expected]
    # a hybrid by rank: the SPLADE list of the one _msearch is rescored, its stage scores are the exact ones
    hybrid = SearchClient(engine_index, encoder, client=engine, plan=HYBRID).search(
        query, k=5, window=len(TEXTS), sparse_pruning=SparsePruning(top_k=1, rescore_window=len(TEXTS))
    )
    assert hybrid.round_trips == 1 and hybrid.hits
    splade_stage = [(h.id, h.stage_scores["first_stage"]) for h in hybrid.hits if h.id in expected]
    assert splade_stage
    for doc_id, score in splade_stage:
        assert math.isclose(score, exact_scores[doc_id], rel_tol=1e-4), (doc_id, score)
    pruned_client = SearchClient(
        engine_index,
        encoder,
        client=engine,
        plan="splade+colbert(fused)",
        sparse_pruning=SparsePruning(weight_ratio=0.3, rescore_window=50),
    )
    assert pruned_client.search(query, k=3).hits
    engine_side = SparsePruning(engine=True, freq_ratio=1.0, weight_threshold=1.0)
    if spec.splade_type == "sparse_vector":
        result = client.search(query, k=5, sparse_pruning=engine_side)
        assert result.hits and result.round_trips == 1
        # the engine's pruning, then the tokens it pruned scored back on its top hits
        engine_exact = SparsePruning(engine=True, freq_ratio=1.0, weight_threshold=1.0, rescore_window=50)
        restored = client.search(query, k=len(TEXTS), window=len(TEXTS), sparse_pruning=engine_exact)
        assert restored.hits
        for hit in restored.hits:
            assert math.isclose(hit.score, exact_scores[hit.id], rel_tol=1e-4), (hit.id, hit.score)
    else:
        with pytest.raises(InvalidInputError, match="sparse_vector field"):
            client.search(query, k=5, sparse_pruning=engine_side)
    with pytest.raises(InvalidInputError, match="SparsePruning"):
        client.search(query, sparse_pruning={"top_k": 3})
