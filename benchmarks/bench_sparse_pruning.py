"""SPLADE query-term pruning: cost against exactness, per setting, on both engines in one run.

    python benchmarks/bench_sparse_pruning.py --model MODEL_DIR [--index bench-serving-{engine}]

Runs on an index colsplade already filled (``bench_serving.py`` leaves ``bench-serving-<engine>``) with the
test queries of ``--data``. For every :class:`~colsplade.query.SparsePruning` setting (none = the exact
SPLADE dot product; client top-k; client weight ratio; Elasticsearch's ``sparse_vector`` pruning, on its
``sparse_vector`` field only), interleaved per query after warm-up: the SPLADE top 10 (``plan="splade"``)
p50 wall and engine time, its top-10 overlap with the exact query's, the query terms kept, and the nDCG@10
of the SPLADE top 10 and of ``splade+colbert(fused)`` with that first stage. Writes
``benchmarks/results/sparse_pruning.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report

from colsplade.config import load_settings
from colsplade.engines import connect_default
from colsplade.evaluation import evaluate_run, load_beir
from colsplade.query import QUERY_ENCODER_OPTIONS, SearchClient, SparsePruning

#: name -> setting (None: exact); the engine settings run on Elasticsearch's sparse_vector field only
SETTINGS: dict[str, SparsePruning | None] = {
    "exact": None,
    "top_k=16": SparsePruning(top_k=16),
    "top_k=8": SparsePruning(top_k=8),
    "weight_ratio=0.2": SparsePruning(weight_ratio=0.2),
    "weight_ratio=0.4": SparsePruning(weight_ratio=0.4),
    "engine(5, 0.4)": SparsePruning(engine=True),
    "engine(3, 0.2)": SparsePruning(engine=True, freq_ratio=3.0, weight_threshold=0.2),
}


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    data = load_beir(args.data, "test")
    qids = list(data.queries)[: args.queries]
    qrels = {q: data.qrels[q] for q in qids}
    index = args.index.format(engine=engine)
    with contextlib.closing(connect_default(load_settings(engine=engine), autostart=True)) as client:
        search = SearchClient(
            index,
            args.model,
            client=client,
            encoder_options={"variant": args.variant, **QUERY_ENCODER_OPTIONS},
        )
        settings = {
            name: p
            for name, p in SETTINGS.items()
            if p is None or not p.engine or search.spec.splade_type == "sparse_vector"
        }
        wall: dict[str, list[float]] = {n: [] for n in settings}
        engine_ms: dict[str, list[float]] = {n: [] for n in settings}
        terms: dict[str, list[int]] = {n: [] for n in settings}
        runs: dict[str, dict[str, dict[str, float]]] = {n: {} for n in settings}
        fused: dict[str, dict[str, dict[str, float]]] = {n: {} for n in settings}
        for warm, qid in [(True, q) for q in qids[:10]] + [(False, q) for q in qids]:
            query = data.queries[qid]
            impacts, _ = search.encode_query(query)
            for name, pruning in settings.items():
                t0 = time.perf_counter()
                result = search.search(query, plan="splade", sparse_pruning=pruning)
                ms = (time.perf_counter() - t0) * 1000
                if warm:
                    continue
                wall[name].append(ms)
                engine_ms[name].append(result.timings_ms["engine"])
                terms[name].append(len(pruning.apply(impacts)) if pruning is not None else len(impacts))
                runs[name][qid] = {h.id: h.score for h in result.hits}
                reranked = search.search(query, plan="splade+colbert(fused)", sparse_pruning=pruning)
                fused[name][qid] = {h.id: h.score for h in reranked.hits}
        exact = runs["exact"]
        report = {}
        for name in settings:
            overlap = [
                len(set(runs[name][q]) & set(exact[q])) / max(1, len(exact[q])) for q in qids if exact[q]
            ]
            report[name] = {
                "splade_top10_p50_ms": round(statistics.median(wall[name]), 2),
                "engine_p50_ms": round(statistics.median(engine_ms[name]), 2),
                "top10_overlap_vs_exact": round(statistics.mean(overlap), 4),
                "query_terms_mean": round(statistics.mean(terms[name]), 1),
                "splade_ndcg@10": round(evaluate_run(qrels, runs[name])["ndcg@10"], 4),
                "splade+colbert(fused)_ndcg@10": round(evaluate_run(qrels, fused[name])["ndcg@10"], 4),
            }
        return {
            "index": index,
            "docs": client.count(index),
            "splade_type": search.spec.splade_type,
            "settings": report,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the joint model directory the index was filled with")
    parser.add_argument("--index", default="bench-serving-{engine}", help="index name ({engine} is replaced)")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/sparse_pruning.json")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    results = {engine: bench_engine(engine, args) for engine in args.engines.split(",")}
    write_report(
        args.out,
        {
            "settings": {
                "model": Path(args.model).name,
                "variant": args.variant,
                "data": args.data,
                "queries": args.queries,
                "pruning": {name: (p.__dict__ if p else None) for name, p in SETTINGS.items()},
                "corpus": "SciFact as it is (no synthetic growth): the scale curve to 1M documents is not measured here",
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "engines": results,
        },
    )


if __name__ == "__main__":
    main()
