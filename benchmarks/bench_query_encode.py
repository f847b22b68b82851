"""Single-query encoding latency of a joint model, the ways a query client can run it, in one process.

    python benchmarks/bench_query_encode.py --model MODEL_DIR [--variant int8] [--queries 300]

Interleaved per query after warm-up (so machine drift hits every way alike), p50 / p95 / p99 in ms of
``encode_queries([q])`` for: the whole joint graph (SPLADE terms + ColBERT vectors) and the ColBERT-only
graph (``sparse=False``, what a plan without SPLADE candidates runs), each with one intra-op thread per
core and with one thread per call (``intra_op_threads=1``: what :class:`~colsplade.query.SearchClient`
opens by default), spinning off for both. Also a breakdown of one joint
query: tokenizer alone, and the SPLADE post-processing (dict of the top terms) alone. And micro-batching
(``batched_1_thread``): the per-query p50 of one run over ``--batch-sizes`` queries at once, one thread, joint
and ColBERT-only, the sizes taking turns: whether encoding concurrent callers' queries together would save CPU.
Writes ``benchmarks/results/query_encode.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report

from colsplade.encoders import colbert_only_key, load_encoder
from colsplade.evaluation import load_beir


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="joint model directory (exported)")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--data", default=DATA, help="BEIR dataset name or directory (its test queries)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--batch-sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2, 4, 8, 16],
        help="queries per encoder run for the micro-batching figures (1 thread)",
    )
    parser.add_argument("--batch-rounds", type=int, default=60, help="runs per batch size (3 warm-up)")
    parser.add_argument("--out", default="benchmarks/results/query_encode.json")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    queries = list(load_beir(args.data, "test").queries.values())[: args.queries]
    # spinning off for both: a pool spinning after its run would steal the core the next way needs
    pool = load_encoder(args.model, variant=args.variant, intra_op_threads=os.cpu_count(), spin=False)
    single = load_encoder(args.model, variant=args.variant, intra_op_threads=1, spin=False)
    has_colbert_only = colbert_only_key(args.variant) in pool.config.onnx
    ways: dict[str, Any] = {
        "joint, one thread per core": lambda q: pool.encode_queries([q]),
        "joint, 1 thread": lambda q: single.encode_queries([q]),
        "colbert only, one thread per core": lambda q: pool.encode_queries([q], sparse=False),
        "colbert only, 1 thread": lambda q: single.encode_queries([q], sparse=False),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i, query in enumerate(queries[: args.warmup] + queries):
        for name, way in ways.items():
            t0 = time.perf_counter()
            way(query)
            if i >= args.warmup:
                times[name].append((time.perf_counter() - t0) * 1000)
    # micro-batching: would encoding concurrent callers' queries in one run save CPU per query? The batch
    # sizes take turns round by round (the machine's speed drifts within minutes)
    per_query: dict[tuple[int, bool], list[float]] = {
        (size, sparse): [] for size in args.batch_sizes for sparse in (True, False)
    }
    keys = list(per_query)
    for round_ in range(args.batch_rounds):
        for j in range(len(keys)):
            size, sparse = keys[(round_ + j) % len(keys)]
            start = (round_ * size) % max(len(queries) - size, 1)
            t0 = time.perf_counter()
            single.encode_queries(queries[start : start + size], sparse=sparse)
            per_query[(size, sparse)].append((time.perf_counter() - t0) * 1000 / size)
    batched = {
        f"{'joint' if sparse else 'colbert only'}, batch {size}": {
            "per_query_p50_ms": round(statistics.median(values[3:]), 3),
            "runs": len(values) - 3,
        }
        for (size, sparse), values in per_query.items()
    }
    tokenize = []
    for query in queries:
        t0 = time.perf_counter()
        single.tokenizer.tokenize([query], is_query=True)
        tokenize.append((time.perf_counter() - t0) * 1000)
    write_report(
        args.out,
        {
            "settings": {
                "model": Path(args.model).name,
                "variant": args.variant,
                "queries": len(queries),
                "warmup": args.warmup,
                "colbert_only_graph": has_colbert_only,
                "max_query_length": pool.config.max_query_length,
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "latency": {name: _stats(values) for name, values in times.items()},
            "tokenizer_p50_ms": round(statistics.median(tokenize), 3),
            "batched_1_thread": batched,
        },
    )


if __name__ == "__main__":
    main()
