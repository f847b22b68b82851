"""colsplade.evaluation: BEIR loading, ir-measures metrics, exhaustive sparse / MaxSim retrieval (torch-free)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import colsplade
from colsplade.evaluation import (
    doc_text,
    evaluate_run,
    load_beir,
    maxsim_rerank,
    maxsim_retrieve,
    sparse_retrieve,
    sparsity,
)
from colsplade.scoring import maxsim

#: the SciFact sample shipped in the package (50 test claims, 559 abstracts)
SCIFACT_SAMPLE = Path(colsplade.__file__).parent / "data" / "scifact_sample"


def test_metrics_hand_computed():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run = {"q1": {"x": 3.0, "a": 2.0}, "q2": {"b": 1.0}}
    m = evaluate_run(qrels, run)
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q2 = 1.0 / (1.0 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert m["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["recall@100"] == pytest.approx((1.0 + 0.5) / 2)


def test_missing_query_counts_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    assert evaluate_run(qrels, {"q1": {"a": 1.0}})["ndcg@10"] == pytest.approx(0.5)


def test_sparse_retrieve_matches_dot_products():
    docs = [{"a": 1.0, "b": 2.0}, {"c": 5.0}, {"a": 3.0}]
    run = sparse_retrieve({"q": {"a": 1.0, "b": 1.0, "zzz": 9.0}}, docs, ["d0", "d1", "d2"], k=2)
    assert list(run["q"]) == ["d0", "d2"] and run["q"]["d0"] == pytest.approx(3.0)


def test_maxsim_retrieve_matches_scoring_maxsim():
    rng = np.random.default_rng(0)

    def unit(n):
        v = rng.normal(size=(n, 8)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    docs = [unit(n) for n in (3, 1, 7, 4)]
    queries = {"q0": unit(5), "q1": unit(2)}
    run = maxsim_retrieve(queries, docs, ["a", "b", "c", "d"], k=4)
    for q, qv in queries.items():
        for i, d in enumerate("abcd"):
            assert run[q][d] == pytest.approx(maxsim(qv, docs[i]), rel=1e-5)
        assert list(run[q].values()) == sorted(run[q].values(), reverse=True)
    reranked = maxsim_rerank({"q0": {"a": 9.0, "b": 8.0}}, queries, dict(zip("abcd", docs, strict=True)), k=2)
    assert set(reranked["q0"]) == {"a", "b"}


def test_sparsity():
    s = sparsity([{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 2.0, "c": 1.0}], vocab_size=10)
    assert s["avg_nnz"] == 2.0 and s["max_nnz"] == 3.0 and s["nnz_ratio"] == pytest.approx(0.2)


def test_doc_text():
    # joined as ingest joins title and text, so evaluation retrieves over the text an index encodes
    assert doc_text({"title": "T", "text": "body"}) == "T\nbody"
    assert doc_text({"title": "", "text": "body"}) == "body"


def test_scifact_sample_test_split():
    data = load_beir(SCIFACT_SAMPLE, "test")
    assert len(data.queries) == 50 and len(data.corpus) == 559
    oracle = {q: dict.fromkeys(docs, 1.0) for q, docs in data.qrels.items()}
    assert evaluate_run(data.qrels, oracle)["ndcg@10"] == pytest.approx(1.0)


def test_evaluation_is_torch_free():
    import subprocess

    code = "import sys, colsplade.evaluation; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_results_markdown_names_bytes_per_token_only_when_it_is_known():
    from colsplade.evaluation import results_markdown

    result = {
        "engine": "elasticsearch",
        "engine_version": "9.2.8",
        "dataset": "d",
        "split": "test",
        "queries": 2,
        "model": {"name": "m", "version": "1", "variant": "int8"},
        "query_encoding_ms": {"p50": 3.0},
        "default_plan": "bm25",
        "plans": {
            "bm25": {
                "ndcg@10": 0.5,
                "mrr@10": 0.5,
                "recall@100": 0.9,
                "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
            }
        },
        "index_size": {"store_bytes": 1000, "bytes_per_document": 10.0, "bytes_per_token": None},
    }
    compact = results_markdown(result)
    assert "Index: 1000 bytes, 10.0 per document." in compact and "None" not in compact
    result["index_size"]["bytes_per_token"] = 16.2
    assert "10.0 per document, 16.2 per ColBERT token." in results_markdown(result)


class _FakeEngine:
    """Records the search requests; answers every one with the same two hits."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []

    def search(self, index: str, body: dict) -> dict:
        self.requests.append((index, body))
        return {"hits": {"hits": [{"_id": "a", "_score": 2.0}, {"_id": "b", "_score": 1.0}]}}


class _FakeSearch:
    index = "docs"

    def encode_query(self, text: str) -> None:
        pass


def test_the_engines_own_bm25_plan_runs_the_shared_request() -> None:
    from colsplade.evaluation import Plan, evaluate_plans
    from colsplade.query import bm25_clause, search_body

    engine = _FakeEngine()
    out = evaluate_plans(
        engine, _FakeSearch(), {"q1": "vitamin c"}, {"q1": {"a": 1}}, [Plan("bm25", None)],
        bm25_index="team-docs", bm25_fields=("title", "text"), warmup=0, progress=False,
    )  # fmt: skip
    assert engine.requests == [("team-docs", search_body(bm25_clause("vitamin c", ["title", "text"]), 100))]
    assert engine.requests[0][1]["_source"] is False and out["plans"]["bm25"]["ndcg@10"] == 1.0


def test_evaluate_on_engine_query_ids() -> None:
    from colsplade.evaluation._engine_eval import _query_ids

    queries = {"q1": "a", "q2": "b", "q3": "c"}
    assert _query_ids(queries, "test", None, None) == ["q1", "q2", "q3"]
    assert _query_ids(queries, "test", 2, None) == ["q1", "q2"]
    assert _query_ids(queries, "test", 2, ["q3"]) == ["q3"]
    with pytest.raises(colsplade.InvalidInputError, match=r"1 query ids are not test queries, e\.g\. 'q9'"):
        _query_ids(queries, "test", None, ["q1", "q9"])
