"""Query latency and quality on SciFact: BM25 vs SPLADE vs SPLADE + MaxSim rerank (engine / client).

    python benchmarks/bench_query.py --model /path/to/joint-model [--engines elasticsearch,opensearch]
        [--queries 300] [--windows 50,100,200] [--concurrency 1,4,16] [--out benchmarks/results/query.json]

For each engine (local node unless COLSPLADE_URL is set) it runs colsplade's engine evaluation
(:func:`colsplade.evaluation._engine_eval.evaluate_on_engine`: SciFact ingested once into an index that
is reused, every plan timed end to end, encoding included, interleaved per query) with plans (a) BM25,
(b) SPLADE only, (c) SPLADE + in-engine rerank and (d) SPLADE + client rerank at each window; then QPS of
the default plan with 1/4/16 concurrent callers. It checks the target (c) p50 <= 2 x BM25 p50 + encoding.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report


def bench_engine(engine: str, args: argparse.Namespace) -> dict:
    from colsplade.config import load_settings
    from colsplade.encoders import load_encoder
    from colsplade.engines import connect
    from colsplade.evaluation import load_beir
    from colsplade.evaluation._engine_eval import Plan, evaluate_on_engine
    from colsplade.local import start_node
    from colsplade.query import SearchClient

    settings = load_settings()
    node = None
    if not settings.urls:
        node = start_node(engine, name="bench")
        settings = settings.replace(urls=[node.url], engine=engine)
    client = connect(settings)
    encoder = load_encoder(args.model, variant=args.variant)
    plans = [Plan("bm25", None), Plan("splade", {"rerank": "none", "window": 100})]
    for window in args.windows:
        plans.append(Plan(f"engine_rerank_w{window}", {"rerank": "engine", "window": window}))
        plans.append(Plan(f"client_rerank_w{window}", {"rerank": "client", "window": window}))
    result = evaluate_on_engine(
        client, DATA, encoder, plans=plans, max_queries=args.queries, warmup=10, progress=False
    )
    default = f"{result['default_rerank']}_rerank_w100"
    if default in result["plans"]:
        bm25_p50 = result["plans"]["bm25"]["latency_ms"]["p50"]
        target = 2 * bm25_p50 + result["query_encoding_ms"]["p50"]
        p50 = result["plans"][default]["latency_ms"]["p50"]
        result["target_check"] = {
            "plan": default,
            "p50_ms": p50,
            "target_p50_ms": round(target, 2),
            "met": p50 <= target,
        }
    search = SearchClient(result["index"], encoder, client=client, plan="splade+colbert")
    texts = list(load_beir(DATA, "test").queries.values())[: args.queries]
    qps = {}
    for callers in args.concurrency:
        n = max(len(texts), callers * 10)
        batch = (texts * (n // len(texts) + 1))[:n]
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=callers) as pool:
            list(pool.map(lambda q: search.search(q, k=10), batch))
        qps[str(callers)] = round(n / (time.perf_counter() - t), 2)
    result["qps_default_plan"] = {"rerank": result["default_rerank"], "window": 100, "by_callers": qps}
    client.close()
    if node is not None and not args.keep_nodes:
        node.stop()
    return result


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
    write_report(
        args.out,
        {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "engines": [bench_engine(e, args) for e in args.engines.split(",")],
        },
    )


if __name__ == "__main__":
    main()
