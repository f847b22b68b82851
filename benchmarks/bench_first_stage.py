"""Issue 21's figure file (``results/first_stage.json``): colsplade against the BM25 a team actually runs.

On one engine (the English-analysed one: OpenSearch with analysis-common, ``english`` on title and text),
through the product (``evaluate_on_engine``: ingest with the int8 encoders into the default compact
layout, every plan through ``SearchClient``), for each given model: the engine's own English BM25 on the
same index and queries, SPLADE alone, every rerank plan, the fused plans (``bm25+colbert(fused)`` is the
default), and the fused weight's sensitivity (reported, never used to choose: the default weight is
fixed in advance). Next to it an independent English BM25 reference: ``bm25s`` with a Snowball English
stemmer and English stopwords over title + " " + text, top 100 (benchmark-only dependency).

    python benchmarks/bench_first_stage.py --supervised models/sup-joint --label-free models/lf-joint \
        --extra label_free_no_distil=models/lf-joint-nodistil --url http://127.0.0.1:9200

Each model's corpus is ingested once into its own index (reused on a rerun: ``--fresh`` re-ingests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import DATA, write_report

from colsplade.config import Settings
from colsplade.engines import connect, connect_default, scan_index
from colsplade.evaluation import evaluate_run, load_beir
from colsplade.evaluation._download import resolve_dataset
from colsplade.evaluation._engine_eval import Plan, evaluate_on_engine

#: the plans measured for every model; the default plan is among them
PLAN_NAMES = (
    "splade",
    "splade+colbert",
    "splade+colbert(fused)",
    "bm25+colbert",
    "bm25+colbert(fused)",
    "bm25+colbert(rrf)",
    "hybrid(bm25+splade)+colbert",
    "hybrid(bm25+splade)+colbert(fused)",
)
#: the fused weight's sensitivity (the default, 0.5, is fixed in advance; these never select it)
SENSITIVITY = (0.25, 1.0, 2.0)


def plans(window: int) -> list[Plan]:
    out = [Plan("bm25", None)]
    out += [Plan(name, {"plan": name, "window": window}) for name in PLAN_NAMES]
    out += [
        Plan(
            f"bm25+colbert(fused,w={w})",
            {"plan": "bm25+colbert(fused)", "window": window, "fusion_weight": w},
        )
        for w in SENSITIVITY
    ]
    return out


def bm25s_reference(data_dir: Path, split: str, k: int = 100) -> dict[str, Any]:
    """English BM25 outside the engine: bm25s, Snowball English stemmer, English stopwords, title + text."""
    import bm25s
    import Stemmer

    data = load_beir(data_dir, split)
    ids = list(data.corpus)
    texts = [data.corpus[d] for d in ids]  # title + " " + text (the BEIR loader joins them so)
    stemmer = Stemmer.Stemmer("english")
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    query_ids = list(data.queries)
    tokens = bm25s.tokenize(
        [data.queries[q] for q in query_ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    docs, scores = retriever.retrieve(tokens, k=min(k, len(ids)), show_progress=False)
    run = {
        q: {ids[int(d)]: float(s) for d, s in zip(docs[i], scores[i], strict=True)}
        for i, q in enumerate(query_ids)
    }
    metrics = evaluate_run({q: data.qrels[q] for q in query_ids}, run)
    return {
        "library": "bm25s",
        "version": bm25s.__version__,
        "stemmer": "snowball english (PyStemmer)",
        "stopwords": "en",
        "fields": "title + ' ' + text",
        **{key: round(v, 4) for key, v in metrics.items()},
        "seconds": round(time.perf_counter() - t, 1),
    }


def nnz(client: Any, index: str, encoder: Any, queries: list[str]) -> dict[str, float]:
    """SPLADE non-zeros per query (as sent: pruned) and per document (as stored)."""
    per_doc = [len(hit.source.get("splade") or {}) for hit in scan_index(client, index)]
    per_query = [len(e) for e in encoder.encode_queries(queries).splade]
    return {
        "nnz_query": round(statistics.fmean(per_query), 1),
        "nnz_query_max": max(per_query),
        "nnz_doc": round(statistics.fmean(per_doc), 1),
        "nnz_doc_max": max(per_doc),
    }


def bench_model(client: Any, data_dir: Path, model_dir: Path, label: str, args: argparse.Namespace) -> dict:
    from colsplade.encoders import load_encoder

    index = f"first-stage-{data_dir.name}-{label}".lower().replace("_", "-")
    encoder = load_encoder(model_dir, variant="int8")
    result = evaluate_on_engine(
        client,
        data_dir,
        encoder,
        index=index,
        plans=plans(args.window),
        reuse_index=not args.fresh,
        variant="int8",
        progress=not args.no_progress,
        analyzer=args.analyzer,
    )
    queries = load_beir(data_dir, "test").queries
    result["nnz"] = nnz(client, index, encoder, list(queries.values()))
    result["model_dir"] = str(model_dir)
    return result


def row(result: dict, plan: str) -> dict[str, Any]:
    r = result["plans"][plan]
    return {
        "ndcg@10": r["ndcg@10"],
        "mrr@10": r["mrr@10"],
        "recall@100": r["recall@100"],
        "p50_ms": r["latency_ms"].get("p50"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--supervised", type=Path, help="supervised joint model directory (exported, int8)")
    ap.add_argument("--label-free", type=Path, help="label-free joint model directory (exported, int8)")
    ap.add_argument(
        "--extra", action="append", default=[], metavar="LABEL=DIR", help="more models (ablations)"
    )
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--url", default=None, help="engine URL (default: COLSPLADE_URL, else the local node)")
    ap.add_argument("--analyzer", default="auto")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/first_stage.json")
    args = ap.parse_args()

    data_dir = resolve_dataset(args.data)
    models = {}
    if args.supervised:
        models["supervised"] = args.supervised
    if args.label_free:
        models["label_free"] = args.label_free
    for item in args.extra:
        label, _, path = item.partition("=")
        models[label] = Path(path)
    load = os.getloadavg()
    client = connect(Settings(urls=[args.url])) if args.url else connect_default()
    caps = client.capabilities()
    reference = bm25s_reference(data_dir, "test")
    results = {label: bench_model(client, data_dir, path, label, args) for label, path in models.items()}
    first = next(iter(results.values()))
    bm25 = row(first, "bm25")
    default = first["default_plan"]
    block: dict[str, Any] = {
        "queries": first["queries"],
        "bm25": {"analyzer": first["bm25_analyzer"], "engine": f"{caps.engine} {caps.version}", **bm25},
        "bm25_english_reference": reference,
        "splade": {
            label: {**row(r, "splade"), **r["nnz"]}
            for label, r in results.items()
            if label != "label_free_no_distil"
        },
        "default_plan": {
            "name": default,
            **{
                label: {**row(r, default), "vs_bm25": round(row(r, default)["ndcg@10"] - bm25["ndcg@10"], 4)}
                for label, r in results.items()
            },
        },
        "plans": {label: {name: row(r, name) for name in r["plans"]} for label, r in results.items()},
        "skipped": {label: r["skipped"] for label, r in results.items() if r["skipped"]},
        "models": {label: {**r["model"], "dir": r["model_dir"]} for label, r in results.items()},
        "ingest": {label: r["ingest"] for label, r in results.items()},
        "query_encoding_ms": {label: r["query_encoding_ms"] for label, r in results.items()},
    }
    if "inference_free" not in block["splade"]:
        block["splade"]["inference_free"] = None  # no inference-free model given (--extra inference_free=DIR)
    engine_bm25 = bm25["ndcg@10"]
    ref = reference["ndcg@10"]
    targets: dict[str, Any] = {}
    if "supervised" in results:
        sup = row(results["supervised"], default)["ndcg@10"]
        targets["supervised_default_plan >= bm25 + 0.09"] = [
            sup,
            round(engine_bm25 + 0.09, 4),
            sup >= engine_bm25 + 0.09,
        ]
        targets["supervised_default_plan > bm25s reference"] = [sup, ref, sup > ref]
        sp = row(results["supervised"], "splade")["ndcg@10"]
        targets["supervised_splade >= bm25"] = [sp, engine_bm25, sp >= engine_bm25]
    if "label_free" in results:
        lf = row(results["label_free"], default)["ndcg@10"]
        targets["label_free_default_plan >= bm25 + 0.05"] = [
            lf,
            round(engine_bm25 + 0.05, 4),
            lf >= engine_bm25 + 0.05,
        ]
        targets["label_free_default_plan > bm25s reference"] = [lf, ref, lf > ref]
    for label, r in results.items():
        targets[f"{label}: nnz doc <= 256, query <= 64 (max)"] = [
            r["nnz"]["nnz_doc_max"],
            r["nnz"]["nnz_query_max"],
            r["nnz"]["nnz_doc_max"] <= 256 and r["nnz"]["nnz_query_max"] <= 64,
        ]
    block["targets"] = targets
    write_report(
        args.out,
        {
            "load_average_at_start": [round(x, 2) for x in load],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "settings": {
                "window": args.window,
                "variant": "int8",
                "layout": "default (compact token store)",
                "analyzer": args.analyzer,
                "fusion_weight_default": 0.5,
                "sensitivity_weights": list(SENSITIVITY),
            },
            "engine": {"engine": caps.engine, "version": caps.version, "modules": list(caps.modules)},
            "git_status": subprocess.run(["git", "status", "--short"], capture_output=True, text=True).stdout,
            data_dir.name: block,
        },
    )


if __name__ == "__main__":
    main()
