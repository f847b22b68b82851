"""Query latency and quality on SciFact: BM25 vs SPLADE vs SPLADE + MaxSim rerank (engine / client).

    python benchmarks/bench_query.py --model /path/to/joint-model [--engines elasticsearch,opensearch]
        [--queries 300] [--windows 50,100,200] [--concurrency 1,4,16] [--out benchmarks/results/query.json]

For each engine (local node unless COLSPLADE_URL is set): ingests SciFact once into ``scifact-<model>``
(reused when complete), then, after a warm-up, times every test query end to end (encoding included)
for (a) the engine's BM25 on title+text, (b) SPLADE only, (c) SPLADE + in-engine rerank (where painless
exists), (d) SPLADE + client rerank, at each window; reports p50/p95/p99, nDCG@10 / MRR@10 / Recall@100
(ir-measures) for each, the query encoding time, and QPS with 1/4/16 concurrent callers. All variants run
in the same process, interleaved per query, so ratios are comparable on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report


def load_test(data: Path, limit: int | None) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, rel = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(rel)
    queries = {}
    with open(data / "queries.jsonl") as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    ids = sorted(queries, key=lambda x: int(x) if x.isdigit() else x)[: limit or None]
    return {i: queries[i] for i in ids}, {i: qrels[i] for i in ids}


def metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    import ir_measures
    from ir_measures import RR, R, nDCG

    measures = [nDCG @ 10, RR @ 10, R @ 100]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    return {
        "ndcg@10": round(agg[nDCG @ 10], 4),
        "mrr@10": round(agg[RR @ 10], 4),
        "recall@100": round(agg[R @ 100], 4),
    }


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"p{p}": round(float(np.percentile(a, p)), 2) for p in (50, 95, 99)} | {"n": len(ms)}


def ensure_index(client, index: str, encoder, data: Path) -> dict:
    from colsplade.ingest import FieldMapping, ingest

    with open(data / "corpus.jsonl") as fh:
        n_docs = sum(1 for _ in fh)
    if client.index_exists(index) and client.count(index) == n_docs:
        return {"reused": True, "documents": n_docs}
    if client.index_exists(index):
        client.delete_index(index)
    summary = ingest(
        str(data / "corpus.jsonl"),
        client,
        index,
        encoder,
        fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
        progress=False,
    )
    client.refresh(index)
    return {"reused": False, **summary.as_dict()}


def bench_engine(engine: str, args: argparse.Namespace, queries: dict[str, str], qrels: dict) -> dict:
    from colsplade.config import load_settings
    from colsplade.engines import connect, start_node
    from colsplade.query import SearchClient

    settings = load_settings()
    node = None
    if not settings.urls:
        node = start_node(engine, name="bench")
        settings = settings.replace(urls=[node.url], engine=engine)
    client = connect(settings)
    index = f"scifact-{Path(args.model).name}".lower()
    out: dict = {"engine": engine, "version": client.capabilities().version, "index": index}
    from colsplade.encoders import load_encoder

    encoder = load_encoder(args.model, variant=args.variant)
    out["ingest"] = ensure_index(client, index, encoder, DATA)
    search = SearchClient(index, encoder, client=client, text_fields=("title", "text"))
    can_engine = client.capabilities().in_engine_rerank and search.spec.element_type == "float"
    variants: list[tuple[str, dict]] = [("bm25", {}), ("splade", {"rerank": "none"})]
    for window in args.windows:
        if can_engine:
            variants.append((f"engine_rerank_w{window}", {"rerank": "engine", "window": window}))
        variants.append((f"client_rerank_w{window}", {"rerank": "client", "window": window}))

    def bm25(text: str) -> list[tuple[str, float]]:
        body = {
            "query": {"multi_match": {"query": text, "fields": ["title", "text"]}},
            "size": 100,
            "_source": False,
        }
        return [(h["_id"], h["_score"]) for h in client.search(index, body)["hits"]["hits"]]

    def run_variant(name: str, kwargs: dict, text: str) -> list[tuple[str, float]]:
        if name == "bm25":
            return bm25(text)
        k = 100 if kwargs.get("rerank") == "none" else min(kwargs.get("window", 100), 100)
        result = search.search(text, k=k, window=max(kwargs.get("window", 100), k), rerank=kwargs["rerank"])
        return [(h.id, h.score) for h in result.hits]

    warm = list(queries.values())[:10]
    for text in warm:
        for name, kwargs in variants:
            run_variant(name, kwargs, text)
    latencies: dict[str, list[float]] = {name: [] for name, _ in variants}
    runs: dict[str, dict[str, dict[str, float]]] = {name: {} for name, _ in variants}
    encode_ms = []
    for qid, text in queries.items():
        t = time.perf_counter()
        search.encode_query(text)
        encode_ms.append((time.perf_counter() - t) * 1000)
        for name, kwargs in variants:  # interleaved: every variant sees the same machine state
            t = time.perf_counter()
            ranked = run_variant(name, kwargs, text)
            latencies[name].append((time.perf_counter() - t) * 1000)
            runs[name][qid] = {doc_id: float(score) for doc_id, score in ranked}
    out["query_encoding_ms"] = percentiles(encode_ms)
    out["variants"] = {
        name: {"latency_ms": percentiles(latencies[name]), **metrics(runs[name], qrels)}
        for name, _ in variants
    }
    default = "engine_rerank_w100" if can_engine else "client_rerank_w100"
    if default in out["variants"]:
        bm25_p50 = out["variants"]["bm25"]["latency_ms"]["p50"]
        target = 2 * bm25_p50 + out["query_encoding_ms"]["p50"]
        out["target_check"] = {
            "variant": default,
            "p50_ms": out["variants"][default]["latency_ms"]["p50"],
            "target_p50_ms": round(target, 2),
            "met": out["variants"][default]["latency_ms"]["p50"] <= target,
        }
    rerank_default = search.resolve_rerank("auto")
    texts = list(queries.values())
    qps = {}
    for callers in args.concurrency:
        n = max(len(texts), callers * 10)
        batch = (texts * (n // len(texts) + 1))[:n]
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=callers) as pool:
            list(pool.map(lambda q: search.search(q, k=10, rerank=rerank_default), batch))
        qps[str(callers)] = round(n / (time.perf_counter() - t), 2)
    out["qps_default_rerank"] = {"rerank": rerank_default, "window": 100, "by_callers": qps}
    search.close()
    client.close()
    if node is not None and not args.keep_nodes:
        node.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="joint model directory (with onnx/)")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--windows", default="50,100,200")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument(
        "--keep-nodes", action="store_true", help="leave the local nodes running (reuse the index)"
    )
    parser.add_argument("--out", default="benchmarks/results/query.json")
    args = parser.parse_args()
    args.windows = [int(w) for w in args.windows.split(",")]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    queries, qrels = load_test(DATA, args.queries)
    write_report(
        args.out,
        {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "engines": [bench_engine(e, args, queries, qrels) for e in args.engines.split(",")],
        },
    )


if __name__ == "__main__":
    main()
