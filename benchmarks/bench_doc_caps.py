"""SPLADE's document-side expansion cap, chosen by measurement: what each cap costs in quality and buys in
engine time and index bytes.

Writes ``benchmarks/results/doc_caps.json`` (one engine a run; ``engines`` keeps the other engine's last run):

- ``quality``: per cap (a document keeps its ``cap`` heaviest terms), on the whole corpus (SciFact: 5,183
  abstracts) and its test queries, scored exactly in the client (``colsplade.evaluation.sparse_retrieve``, no
  engine): SPLADE nDCG@10 and recall@100, top-10 overlap with the uncapped documents, mean terms per document
  and posting entries. "Uncapped" is the model's own ``doc_top_k``: the impacts as ``ingest()`` indexed them.
- ``cost``: per cap in ``--cost-caps``, ``bench_scale.py``'s synthetic corpus (copies of the corpus, impacts
  perturbed, same text) grown to ``--docs`` on one node (1 shard, an index per cap), refreshed and
  flushed, then ``--queries`` test queries on an idle CPU once merges settle, the caps' indices taken in
  turn for each query: BM25 and SPLADE top-10 p50 (client; engine as the client's round trip, and BM25's
  ``took``), bytes per document, bulk docs/s. (The copies tie within noise, so top-10 overlap between the
  caps' indices says little here; ``quality`` has the overlap on the real corpus.)

    python benchmarks/bench_doc_caps.py --model MODEL_DIR --engine elasticsearch --docs 200000

The seed (the corpus encoded once through ``ingest()``) is ``bench_scale.py``'s, cached in ``--work``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_engine_parser, other_engines, percentile, wait_until_settled, write_report
from bench_scale import index_bytes, seed_corpus, synthetic

from colsplade.encoders import as_encoder, load_model_codec
from colsplade.engines import connect
from colsplade.evaluation import evaluate_run, load_beir, sparse_retrieve
from colsplade.ingest import Batching, Layout, ingest_encoded
from colsplade.local import start_node
from colsplade.query import QUERY_ENCODER_OPTIONS, SearchClient, top_terms


def capped(seeds: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """The seeds with each document's impacts cut to its ``cap`` heaviest terms."""
    return [{**s, "impacts": top_terms(s["impacts"], cap)} for s in seeds]


def quality(
    seeds: list[dict[str, Any]], query_impacts: dict[str, dict[str, float]], qrels: Any, caps: list[int]
) -> dict[str, Any]:
    """Exact SPLADE retrieval per cap, in the client: the quality side of the trade."""
    ids = [s["id"] for s in seeds]
    uncapped = sparse_retrieve(query_impacts, [s["impacts"] for s in seeds], ids, k=100)
    out: dict[str, Any] = {}
    for cap in caps:
        docs = [top_terms(s["impacts"], cap) for s in seeds]
        run = sparse_retrieve(query_impacts, docs, ids, k=100)
        overlap = [
            len(set(list(run[q])[:10]) & set(list(uncapped[q])[:10])) / max(min(10, len(uncapped[q])), 1)
            for q in query_impacts
        ]
        terms = [len(d) for d in docs]
        out[str(cap)] = {
            **{
                k: round(v, 4)
                for k, v in evaluate_run(qrels, run, {"ndcg@10": "nDCG@10", "recall@100": "R@100"}).items()
            },
            "top10_overlap_vs_uncapped": round(statistics.mean(overlap), 3),
            "terms_per_doc_mean": round(statistics.mean(terms), 1),
            "posting_entries": int(sum(terms)),
        }
    return out


def cost(
    args: argparse.Namespace, client: Any, encoder: Any, seeds: list[dict[str, Any]], queries: list[str]
) -> dict[str, Any]:
    """Engine time and bytes per cap at ``--docs`` documents: one index per cap, all written first, then
    timed side by side (per query, every cap's index in turn, the order rotating), so a cold JVM or page
    cache favours none of them."""
    n_centroids = load_model_codec(encoder).n_centroids
    caps = sorted((int(c) for c in args.cost_caps.split(",")), reverse=True)
    out: dict[str, Any] = {}
    indices = {cap: f"bench-doc-cap-{cap}" for cap in caps}
    try:
        for cap, index in indices.items():
            if client.index_exists(index):
                client.delete_index(index)
            t0 = time.monotonic()
            summary = ingest_encoded(
                synthetic(capped(seeds, cap), 0, args.docs, n_centroids),
                client,
                index,
                encoder,
                layout=Layout(shards=1, replicas=0),
                batching=Batching(bulk_docs=500),
                refresh=True,
            )
            seconds = time.monotonic() - t0
            if summary.dead_lettered:
                raise SystemExit(f"{summary.dead_lettered} documents dead-lettered: {summary.reasons}")
            sizes = index_bytes(client, index)
            out[str(cap)] = {
                "docs": sizes["docs"],
                "bulk_docs_per_s": round(summary.indexed / seconds, 1),
                "index_bytes_per_doc": round(sizes["primary_store_bytes"] / sizes["docs"], 1),
            }
        settled = wait_until_settled(client)
        searches = {
            cap: SearchClient(index, encoder, client=client, plan="splade") for cap, index in indices.items()
        }
        timings: dict[int, dict[str, list[float]]] = {
            cap: {"bm25": [], "bm25_took": [], "splade": [], "splade_engine": []} for cap in caps
        }
        warm = 20
        for i, query in enumerate(queries[:warm] + queries):
            for cap in caps[i % len(caps) :] + caps[: i % len(caps)]:
                t = time.perf_counter()
                body = {"query": {"match": {"text": query}}, "size": 10, "_source": False}
                answer = client.search(indices[cap], body)
                ms = (time.perf_counter() - t) * 1000
                result = searches[cap].search(query, k=10)
                if i < warm:
                    continue
                timings[cap]["bm25"].append(ms)
                timings[cap]["bm25_took"].append(float(answer.get("took", float("nan"))))
                timings[cap]["splade"].append(result.timings_ms["total"])
                timings[cap]["splade_engine"].append(result.timings_ms["engine"])
        for cap in caps:
            t = timings[cap]
            out[str(cap)] |= {
                "bm25_p50_ms": percentile(t["bm25"], 50),
                "bm25_engine_p50_ms": percentile(t["bm25_took"], 50),
                "splade_p50_ms": percentile(t["splade"], 50),
                "splade_engine_p50_ms": percentile(t["splade_engine"], 50),
            }
            print(f"cap {cap}: {out[str(cap)]}", flush=True)
        out["settled"] = settled
    finally:
        for index in indices.values():
            if client.index_exists(index):
                client.delete_index(index)
    return out


def main() -> None:
    parser = model_engine_parser(__doc__)
    parser.add_argument("--caps", default="256,192,128,96,64,48,32", help="caps scored for quality")
    parser.add_argument("--cost-caps", default="256,128,64", help="caps indexed at --docs for cost")
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=100, help="test queries timed per cap")
    parser.add_argument("--work", default="/tmp/colsplade-bench-scale")
    parser.add_argument("--out", default="benchmarks/results/doc_caps.json")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = load_beir(args.data, "test")
    encoder = as_encoder(args.model, variant="int8", **QUERY_ENCODER_OPTIONS)
    node = start_node(args.engine, name="bench-doc-caps", heap="1g")
    try:
        client = connect(url=node.url, engine=args.engine)
        seeds = seed_corpus(client, encoder, data, work)
        qids = list(data.queries)
        texts = [data.queries[q] for q in qids]
        query_impacts = dict(zip(qids, encoder.encode_queries(texts).splade, strict=True))
        caps = [int(c) for c in args.caps.split(",")]
        report: dict[str, Any] = {
            "settings": {
                "engine": args.engine,
                "engine_version": client.capabilities().version,
                "model": Path(args.model).name,
                "variant": "int8",
                "data": Path(str(args.data)).name,
                "corpus_docs": len(seeds),
                "test_queries": len(qids),
                "cost_docs": args.docs,
                "cost_queries": args.queries,
                "load_average_at_start": load_at_start,
                "quality": "exact sparse dot product in the client over the whole corpus; no engine rounding "
                "beyond the stored impacts' (seeds are read back from the index)",
                "cost": "bench_scale's synthetic copies (same text, impacts perturbed), one node, 1 shard, "
                "refreshed + flushed, not force-merged; an index per cap, timed side by side",
            },
            "quality": quality(seeds, query_impacts, data.qrels, caps),
        }
        report["cost"] = cost(args, client, encoder, seeds, texts[: args.queries])
        report["settings"]["load_average_at_end"] = os.getloadavg()
        report["engines"] = other_engines(args.out, args.engine) | {
            args.engine: {k: report[k] for k in ("settings", "quality", "cost")}
        }
        write_report(args.out, report)
        client.close()
    finally:
        node.stop()


if __name__ == "__main__":
    main()
