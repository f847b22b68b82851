"""The same colsplade on every engine version it supports (results/engine_matrix.json).

    python benchmarks/engine_matrix.py [--versions elasticsearch:8.19.21,elasticsearch:9.2.8,opensearch:2.19.1,opensearch:3.5.0]

For each engine and version, one at a time on this machine: a fresh local node (from Maven Central), the
quickstart's job on it (``--model``, default the cached quick model; the packaged SciFact sample: the same
index and query as ``colsplade quickstart``), the top 10 of the query under the default plan and under ``splade+colbert``
(which no analyser touches), every plan of ``colsplade eval`` on the sample's test queries (nDCG@10, p50),
the index's bytes per document, and what the engine offers (painless, k-NN, sparse ANN, security). Without
``--model``, the quick model is trained on the first run if it is not cached (needs the ``[train]`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

DEFAULT_MATRIX = "elasticsearch:8.19.21,elasticsearch:9.2.8,opensearch:2.19.1,opensearch:3.5.0"


def _client_version(engine: str) -> str:
    from importlib.metadata import version

    package = "elasticsearch" if engine == "elasticsearch" else "opensearch-py"
    return f"{package} {version(package)}"


def run_version(engine: str, version: str, model: Path | None) -> dict[str, Any]:
    from colsplade.cli._quickstart import quickstart, sample_dataset
    from colsplade.engines import connect
    from colsplade.evaluation import evaluate_on_engine
    from colsplade.local import start_node
    from colsplade.query import SearchClient

    t0 = time.monotonic()
    node = start_node(engine, version, name="engine-matrix", ephemeral=True)
    row: dict[str, Any] = {
        "engine": engine,
        "version": version,
        "start_seconds": round(time.monotonic() - t0, 1),
    }
    try:
        settings = node.settings()
        report = quickstart(settings, model=model, progress=False, say=lambda _: None)
        model = Path(report["model"])  # the quick model when none was given (trained once, cached)
        with connect(settings) as client:
            jvm = client.request("GET", "/_nodes/jvm", params={"filter_path": "nodes.*.jvm.version"})
            caps = client.capabilities()
            search = SearchClient(report["index"], model, client=client)
            top = {
                plan: [
                    [h.id, round(h.score, 4)]
                    for h in search.search(report["query"], k=10, plan=plan, source=False).hits
                ]
                for plan in (search.plan, "splade+colbert")
            }
            stats = client.request("GET", f"/{report['index']}/_stats/store,docs")["_all"]["primaries"]
            evaluated = evaluate_on_engine(
                client, sample_dataset(), model, index=report["index"], progress=False
            )
            row.update(
                {
                    "model": model.name,
                    "java": next(iter(jvm["nodes"].values()))["jvm"]["version"],
                    "client": _client_version(engine),
                    "default_plan": search.plan,
                    "bm25_analyzer": evaluated.get("bm25_analyzer"),
                    "quickstart_top10": top[search.plan],
                    "quickstart_top10_splade_colbert": top["splade+colbert"],
                    "eval_sample": {
                        "queries": evaluated.get("queries"),
                        "plans": {
                            name: {
                                "ndcg@10": round(r["ndcg@10"], 4),
                                "p50_ms": round(r["latency_ms"]["p50"], 2),
                            }
                            for name, r in evaluated["plans"].items()
                            if "ndcg@10" in r
                        },
                    },
                    "bytes_per_doc": round(
                        stats["store"]["size_in_bytes"] / max(1, stats["docs"]["count"]), 1
                    ),
                    "features": {
                        "painless": caps.painless,
                        "knn": caps.knn,
                        "sparse_ann": False,
                        "security": False,
                        "sparse_vector": caps.sparse_vector,
                        "language_analyzers": caps.language_analyzers,
                    },
                }
            )
    finally:
        node.stop()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", default=DEFAULT_MATRIX)
    parser.add_argument(
        "--model", help="joint model directory (default: the cached quick model, trained first if missing)"
    )
    parser.add_argument("--out", default="benchmarks/results/engine_matrix.json")
    args = parser.parse_args()
    model = Path(args.model) if args.model else None
    load_at_start = os.getloadavg()
    rows = []
    for item in args.versions.split(","):
        engine, version = item.split(":")
        row = run_version(engine, version, model)
        print(row, flush=True)
        rows.append(row)
    by_engine: dict[str, list[Any]] = {}
    for row in rows:
        by_engine.setdefault(row["engine"], []).append(row)
    same = {
        engine: {
            "default_plan_top10_identical": all(
                r["quickstart_top10"] == group[0]["quickstart_top10"] for r in group
            ),
            "splade_colbert_top10_identical": all(
                r["quickstart_top10_splade_colbert"] == group[0]["quickstart_top10_splade_colbert"]
                for r in group
            ),
        }
        for engine, group in by_engine.items()
    }
    ids = [[d for d, _ in r["quickstart_top10_splade_colbert"]] for r in rows]
    write_report(
        args.out,
        {
            "settings": {
                "versions": args.versions,
                "data": "the packaged SciFact sample (the quickstart's)",
                "model": rows[0].get("model") if rows else None,
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "rows": rows,
            "same_top10_across_versions": same,
            "splade_colbert_top10_ids_identical_across_all": all(i == ids[0] for i in ids),
        },
    )


if __name__ == "__main__":
    main()
