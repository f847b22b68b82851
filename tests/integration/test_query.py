"""The query client on real engines: both rerank paths equal brute-force MaxSim; filters, pages, explain, errors."""

from __future__ import annotations

import asyncio
import math
import socket
import threading

import numpy as np
import pytest

from colsplade.config import Settings
from colsplade.engines import connect, create_index
from colsplade.exceptions import (
    EngineRefusedError,
    EngineUnreachableError,
    InvalidInputError,
    ModelVersionMismatchError,
)
from colsplade.mappings import FieldSpec, escape_impacts, pack_token_vectors
from colsplade.query import AsyncSearchClient, SearchClient
from colsplade.scoring import quantize_bits, quantize_int8

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


@pytest.fixture(scope="session")
def tiny_joint(tmp_path_factory):
    from colsplade.training import make_tiny_model_dir

    return make_tiny_model_dir("joint", tmp_path_factory.mktemp("models") / "joint", variants=("int8",))


@pytest.fixture(scope="session")
def encoder(tiny_joint):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint, variant="fp32")


def _index_corpus(engine, index, encoder, element_type="float", model_version=None, packed=True):
    config = encoder.config
    dim = config.colbert.dim
    spec = FieldSpec(colbert_dim=dim, element_type=element_type, index_vectors=element_type != "bit")
    spec = create_index(
        engine, index, spec, model_name=config.name, model_version=model_version or str(config.version)
    )["spec"]
    encoded = encoder.encode_documents([f"{t} {x}" for t, x in TEXTS])
    vectors = {}
    for i, (title, text) in enumerate(TEXTS):
        v = encoded.colbert[i]
        if element_type == "byte":
            stored = quantize_int8(v)
        elif element_type == "bit":
            stored = quantize_bits(v).view(np.int8)
        else:
            stored = v
        vectors[f"d{i}"] = stored
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
    return spec, vectors


def _brute_force(client: SearchClient, query: str, spec, vectors, candidate_ids):
    from colsplade.query._client import _doc_vectors, _maxsim

    _, qv = client.encode_query(query)
    scores = {}
    for doc_id in candidate_ids:
        nested = [{"v": row.tolist()} for row in vectors[doc_id]]
        scores[doc_id] = _maxsim(qv, _doc_vectors(nested, spec), spec)
    return sorted(scores, key=lambda d: -scores[d]), scores


def _candidates(client: SearchClient, query: str) -> list[str]:
    return [h.id for h in client.search(query, k=len(TEXTS), window=len(TEXTS), rerank="none").hits]


def test_rerank_paths_equal_brute_force(engine, engine_index, encoder):
    spec, vectors = _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    can_engine = engine.capabilities().painless
    for query in QUERIES:
        candidates = _candidates(client, query)
        assert candidates, query
        order, scores = _brute_force(client, query, spec, vectors, candidates)
        n = len(candidates)
        client_result = client.search(query, k=n, window=len(TEXTS), rerank="client")
        assert client_result.ids() == order
        for hit in client_result.hits:
            assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-5, abs_tol=1e-5)
            assert hit.stage_scores["maxsim"] == hit.score and "first_stage" in hit.stage_scores
        if can_engine:
            engine_result = client.search(query, k=n, window=len(TEXTS), rerank="engine")
            assert engine_result.ids() == order
            for hit in engine_result.hits:
                assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-4, abs_tol=1e-4)
    if can_engine:
        assert client.resolve_rerank("auto") == "engine"
    else:
        assert client.resolve_rerank("auto") == "client"
        with pytest.raises(InvalidInputError, match="in-engine rerank needs painless"):
            client.search(QUERIES[0], rerank="engine")


@pytest.mark.parametrize(("element_type", "packed"), [("byte", True), ("bit", True), ("float", False)])
def test_compact_vectors_rerank_like_numpy(engine, engine_index, encoder, element_type, packed):
    """Byte / bit vectors, and documents written without the packed copy (read from the nested field)."""
    spec, vectors = _index_corpus(engine, engine_index, encoder, element_type=element_type, packed=packed)
    client = SearchClient(engine_index, encoder, client=engine)
    if element_type != "float":
        assert client.resolve_rerank() == "client"
    for query in QUERIES[:2]:
        candidates = _candidates(client, query)
        order, scores = _brute_force(client, query, spec, vectors, candidates)
        result = client.search(query, k=len(candidates), window=len(TEXTS), rerank="client")
        assert result.ids() == order
        for hit in result.hits:
            assert math.isclose(hit.score, scores[hit.id], rel_tol=1e-5, abs_tol=1e-5)


def test_filters_pages_and_sources(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
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
    assert "colbert" not in everything.hits[0].source and "title" in everything.hits[0].source


def test_explain_contributions_sum_to_scores(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
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


def test_knn_candidates_and_hybrid(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
    query = QUERIES[2]
    with_knn = client.search(query, k=5, window=12, knn_k=3)
    assert len(with_knn.hits) == 5
    scores = [h.score for h in with_knn.hits]
    assert scores == sorted(scores, reverse=True)
    ann_only = client.search(query, k=3, window=12, knn_k=4, splade=False)
    assert ann_only.hits and [h.score for h in ann_only.hits] == sorted(
        (h.score for h in ann_only.hits), reverse=True
    )
    with pytest.raises(InvalidInputError, match="no first-stage candidates"):
        client.search(query, splade=False)
    rrf = client.search(query, k=5, bm25_fields=["title", "text"], hybrid="rrf", rerank="none")
    assert [h.score for h in rrf.hits] == sorted((h.score for h in rrf.hits), reverse=True)
    assert all("rrf" in h.stage_scores for h in rrf.hits)
    reranked = client.search(query, k=5, bm25_fields=["title", "text"], hybrid="rrf")
    assert reranked.rerank in ("engine", "client") and len(reranked.hits) == 5
    summed = client.search(query, k=3, bm25_fields=["text"], hybrid="sum", rerank="none", highlight=["text"])
    assert summed.hits and any(h.highlight for h in summed.hits)


def test_async_client_matches_sync(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    sync = SearchClient(engine_index, encoder, client=engine)
    expected = [sync.search(q, k=5).ids() for q in QUERIES]

    async def run():
        async with AsyncSearchClient(engine_index, encoder, client=engine) as client:
            results = await asyncio.gather(*(client.search(q, k=5) for q in QUERIES * 3))
        return [r.ids() for r in results]

    assert asyncio.run(run()) == expected * 3


def test_bad_queries_and_indices(engine, engine_index, encoder):
    _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine)
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
    client = SearchClient(engine_index, encoder, client=engine)
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


def test_search_command(engine, engine_index, encoder, tiny_joint):
    import json as _json

    from click.testing import CliRunner

    from colsplade.cli import main

    _index_corpus(engine, engine_index, encoder)
    url = engine.settings.urls[0]
    args = ["--url", url, "search", QUERIES[0], "--index", engine_index, "--model", str(tiny_joint)]
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
    from colsplade.training import make_tiny_model_dir

    root = tmp_path_factory.mktemp("pair")
    return (
        make_tiny_model_dir("splade", root / "splade", variants=()),
        make_tiny_model_dir("colbert", root / "colbert", variants=(), dim=24),
    )


def test_separate_models_ingest_and_search_as_a_pair(engine, engine_index, tiny_pair):
    """Two model directories: ingest fills both fields with the pair, the client reranks like numpy."""
    from colsplade.encoders import load_encoder, load_encoder_pair
    from colsplade.ingest import FieldMapping, ingest
    from colsplade.mappings import unpack_token_vectors

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
    result = client.search(query, k=len(TEXTS), window=len(TEXTS), rerank="client")
    assert result.hits
    doc_vectors = colbert.encode_documents([f"{t} {x}" for t, x in TEXTS])
    expected = {f"d{i}": float((q_vectors @ v.T).max(axis=1).sum()) for i, v in enumerate(doc_vectors)}
    for hit in result.hits:
        assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-4, abs_tol=1e-4)
    assert result.ids() == sorted(result.ids(), key=lambda d: -expected[d])
    stored = engine.search(engine_index, {"query": {"ids": {"values": ["d0"]}}})["hits"]["hits"][0]["_source"]
    np.testing.assert_allclose(
        unpack_token_vectors(stored["colbert_packed"], 24, "float"), doc_vectors[0], atol=1e-6
    )
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
    spec, vectors = _index_corpus(engine, engine_index, encoder)
    client = SearchClient(engine_index, encoder, client=engine, first_stage_weight=0.5)
    for query in QUERIES[:3]:
        sparse = {h.id: h.score for h in client.search(query, k=12, window=12, rerank="none").hits}
        _, maxsims = _brute_force(client, query, spec, vectors, list(sparse))
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
