"""Quality and latency of every query plan, both engines, supervised and label-free model (issue 13).

Writes ``benchmarks/results/quality.json``::

    {"runs": {"<engine>": {"engine", "model", "plans": {name: {"ndcg@10", "recall@100", "p50_ms"}},
                           "default_plan", "bm25", "nnz", "target_ms", "best_plan_meeting_target",
                           "fusion_weight", "query_length": {"32": {...}, ...},
                           "label_free": {the same keys for the label-free model}}},
     "command", "commit", "machine", "versions", "settings"}

Everything goes through the product: a real engine, the ONNX int8 encoders, the default index layout
(compact token store), :class:`colsplade.query.SearchClient` plans evaluated by
:func:`colsplade.evaluation.evaluate_on_engine` (plans interleaved per query, the first ``--warmup``
queries run first and not timed). Each model encodes the corpus once: the first engine gets a real
ingest, the others the same encodings read back and written with :func:`colsplade.ingest.ingest_encoded`.

The fused plan's w (``score = MaxSim + w * SPLADE``) is chosen on the training queries the model's
training held out (``training_config.json``: ``dev_queries``, ``seed``), never on test. ``target_ms`` is
the serving target ``2 x BM25 p50 + query encoding p50``; ``best_plan_meeting_target`` the plan with the
best nDCG@10 whose p50 is within it (None when no reranking plan is).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import DATA, write_report

from colsplade.config import load_settings
from colsplade.encoders import as_encoder
from colsplade.engines import connect_default, scan_index
from colsplade.evaluation import load_beir
from colsplade.evaluation._download import resolve_dataset
from colsplade.evaluation._engine_eval import Plan, default_plans, ensure_dataset_index, evaluate_on_engine
from colsplade.ingest import EncodedDocument, ingest_encoded
from colsplade.mappings import unescape_impacts
from colsplade.query import DEFAULT_PLAN

#: first-stage weights tried for the fused plan, on held-out training queries
WEIGHTS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: the plans of the figure file (issue 13), by their evaluation names
PLAN_NAMES = (
    "bm25",
    "splade",
    "splade+colbert(client)",
    "bm25+colbert",
    "hybrid(bm25+splade)+colbert",
    "splade+colbert(weighted)",
)


def subset_dir(data_dir: Path, max_docs: int, work: Path) -> Path:
    """A BEIR copy of ``data_dir`` with ``max_docs`` documents (a quick run of the script): the documents
    relevant to test queries first, then the corpus's first others; the qrels keep only those documents,
    so the figures of such a run are only a smoke test."""
    out = work / f"{data_dir.name}-{max_docs}"
    if out.is_dir():
        return out
    shutil.copytree(data_dir, out, ignore=shutil.ignore_patterns("corpus.jsonl", "*.tsv"))
    test_qrels = data_dir / "qrels" / "test.tsv"
    relevant = [ln.split("\t")[1] for ln in test_qrels.read_text(encoding="utf-8").splitlines()[1:] if ln]
    lines = {}
    with open(data_dir / "corpus.jsonl", encoding="utf-8") as src:
        for line in src:
            if line.strip():
                lines[json.loads(line)["_id"]] = line
    keep = list(dict.fromkeys([d for d in relevant if d in lines] + list(lines)))[:max_docs]
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as dst:
        dst.writelines(lines[d] if lines[d].endswith("\n") else lines[d] + "\n" for d in keep)
    kept = set(keep)
    for qrels in (data_dir / "qrels").glob("*.tsv"):
        rows = qrels.read_text(encoding="utf-8").splitlines()
        body = [r for r in rows[1:] if r and r.split("\t")[1] in kept]
        (out / "qrels" / qrels.name).write_text("\n".join([rows[0], *body]) + "\n", encoding="utf-8")
    return out


def copy_index(source: Any, target: Any, index: str, model_dir: Path, variant: str) -> dict[str, Any]:
    """Write ``source``'s encoded documents (impacts, token codes, title, text) into ``target``'s engine."""
    if target.index_exists(index) and target.count(index) == source.count(index):
        return {"reused": True, "documents": target.count(index)}
    if target.index_exists(index):
        target.delete_index(index)
    docs = (
        EncodedDocument(
            hit.doc_id,
            unescape_impacts(hit.source["splade"]),
            base64.b64decode(hit.source["colbert_codes"]),
            fields={k: hit.source[k] for k in ("title", "text") if k in hit.source},
        )
        for hit in scan_index(source, index)
    )
    summary = ingest_encoded(docs, target, index, as_encoder(model_dir, variant=variant))
    return {"reused": False, "copied_from": source.engine, **summary.as_dict()}


def nnz(client: Any, index: str, encoder: Any, queries: list[str]) -> dict[str, float]:
    """SPLADE non-zeros per query (as sent: pruned) and per document (as stored)."""
    per_doc = [len(hit.source.get("splade") or {}) for hit in scan_index(client, index)]
    per_query = [len(e) for e in encoder.encode_queries(queries).splade]
    return {
        "per_query_mean": round(statistics.fmean(per_query), 1),
        "per_query_median": float(statistics.median(per_query)),
        "per_document_mean": round(statistics.fmean(per_doc), 1),
        "per_document_median": float(statistics.median(per_doc)),
    }


def held_out_queries(model_dir: Path, data_dir: Path) -> list[str]:
    """The training queries the model's training held out (same count and seed as its config)."""
    from colsplade.training._data import examples_from_beir, split_dev

    config_path = model_dir / "training_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    test = load_beir(data_dir, "test")
    train = load_beir(data_dir, "train", corpus=test.corpus)
    _, dev = split_dev(
        examples_from_beir(train), int(config.get("dev_queries") or 30), seed=int(config.get("seed", 42))
    )
    return [e.query_id for e in dev]


def figures(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {
        name: {
            "ndcg@10": r["ndcg@10"],
            "recall@100": r["recall@100"],
            "p50_ms": r["latency_ms"].get("p50"),
        }
        for name, r in result["plans"].items()
    }


def bench_model(
    key: str, model_dir: Path, data_dir: Path, clients: dict[str, Any], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """One model on every engine: fusion weight, every plan, the query-length effect."""
    encoder = as_encoder(model_dir, variant=args.variant)
    # the model and the corpus size in the name: a smoke run's index is never reused by a full one
    index = f"bench-quality-{key}-{encoder.config.name}-{args.max_docs or 'all'}".lower()
    index = index.replace("_", "-").replace("+", "-")
    engines = list(clients)
    ingests = {
        engines[0]: ensure_dataset_index(clients[engines[0]], index, encoder, data_dir, reuse=not args.fresh)
    }
    for engine in engines[1:]:
        ingests[engine] = copy_index(clients[engines[0]], clients[engine], index, model_dir, args.variant)
    # the model directory, not the open encoder: the query-length runs reopen it at each length
    common = {"model": model_dir, "index": index, "variant": args.variant, "progress": False, "ingest": False}
    # w on held-out training queries, once per model (every engine holds the same encodings)
    dev = held_out_queries(model_dir, data_dir)
    sweep = evaluate_on_engine(
        clients[engines[0]],
        data_dir,
        split="train",
        query_ids=dev,
        warmup=0,
        plans=[
            Plan(f"w={w}", {"plan": "splade+colbert", "window": args.window, "first_stage_weight": w})
            for w in WEIGHTS
        ],
        **common,
    )
    best_w = max(WEIGHTS, key=lambda w: sweep["plans"][f"w={w}"]["ndcg@10"])
    wanted = [p for p in default_plans(window=args.window, first_stage_weight=best_w) if p.name in PLAN_NAMES]
    test_queries = list(load_beir(data_dir, "test").queries)
    out: dict[str, dict[str, Any]] = {}
    for engine, client in clients.items():
        result = evaluate_on_engine(
            client,
            data_dir,
            plans=wanted,
            max_queries=args.queries or None,
            warmup=args.warmup,
            **common,
        )
        plans = figures(result)
        bm25_p50 = plans["bm25"]["p50_ms"] or 0.0
        target = 2 * bm25_p50 + (result["query_encoding_ms"].get("p50") or 0.0)
        meeting = [
            n for n, f in plans.items() if n not in ("bm25", "splade") and (f["p50_ms"] or 0.0) <= target
        ]
        lengths = {}
        for length in args.lengths:
            r = evaluate_on_engine(
                client,
                data_dir,
                plans=[p for p in wanted if p.name == result["default_plan_result"]],
                max_queries=args.queries or None,
                warmup=args.warmup,
                max_query_length=length,
                **common,
            )
            lengths[str(length)] = {
                **next(iter(figures(r).values()), {}),
                "query_encoding_p50_ms": r["query_encoding_ms"].get("p50"),
            }
        out[engine] = {
            "engine": f"{result['engine']} {result['engine_version']}",
            "model": f"{result['model']['name']} v{result['model']['version']} ({result['model']['variant']})",
            "plans": plans,
            "default_plan": result["default_plan_result"] or result["default_plan"],
            "bm25": plans["bm25"],
            "nnz": nnz(
                client, index, encoder, [load_beir(data_dir, "test").queries[q] for q in test_queries]
            ),
            "query_encoding_p50_ms": result["query_encoding_ms"].get("p50"),
            "target_ms": round(target, 2),
            "best_plan_meeting_target": max(meeting, key=lambda n: plans[n]["ndcg@10"] or 0.0)
            if meeting
            else None,
            "fusion_weight": {
                "chosen": best_w,
                "held_out_train_queries": len(dev),
                "ndcg@10_by_w": {str(w): sweep["plans"][f"w={w}"]["ndcg@10"] for w in WEIGHTS},
            },
            "query_length": lengths,
            "queries": result["queries"],
            "skipped": result["skipped"],
            "ingest": ingests[engine],
        }
        print(key, engine, json.dumps(out[engine]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="supervised joint model directory (ONNX int8 exported)")
    ap.add_argument("--label-free-model", help="label-free joint model directory (key label_free)")
    ap.add_argument("--data", default=DATA, help="BEIR dataset name or directory")
    ap.add_argument("--engines", default="elasticsearch,opensearch")
    ap.add_argument("--variant", default="int8")
    ap.add_argument("--queries", type=int, default=0, help="first N test queries (0: all)")
    ap.add_argument("--warmup", type=int, default=10, help="queries run first, untimed")
    ap.add_argument("--max-docs", type=int, default=0, help="first N documents only (smoke test; 0: all)")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--lengths", default="32,64,128", help="max_query_length values of the default plan")
    ap.add_argument("--fresh", action="store_true", help="re-ingest even if the index is complete")
    ap.add_argument("--out", default="benchmarks/results/quality.json")
    args = ap.parse_args()
    args.lengths = [int(x) for x in args.lengths.split(",") if x]
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    data_dir = resolve_dataset(args.data)
    if args.max_docs:
        data_dir = subset_dir(data_dir, args.max_docs, work)
    runs: dict[str, dict[str, Any]] = {}
    try:
        with contextlib.ExitStack() as stack:
            clients = {
                e: stack.enter_context(
                    contextlib.closing(connect_default(load_settings(engine=e), autostart=True))
                )
                for e in args.engines.split(",")
            }
            for engine, figs in bench_model("supervised", Path(args.model), data_dir, clients, args).items():
                runs[engine] = figs
            if args.label_free_model:
                lf = bench_model("label_free", Path(args.label_free_model), data_dir, clients, args)
                for engine, figs in lf.items():
                    runs[engine]["label_free"] = figs
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(
        args.out,
        {
            "settings": {
                "model": Path(args.model).name,
                "label_free_model": Path(args.label_free_model).name if args.label_free_model else None,
                "variant": args.variant,
                "data": args.data,
                "split": "test",
                "queries": args.queries or "all",
                "warmup": args.warmup,
                "max_docs": args.max_docs or "all",
                "window": args.window,
                "query_lengths": args.lengths,
                "fusion_weights": list(WEIGHTS),
                "library_default_plan": DEFAULT_PLAN,
                "layout": "default (compact token store)",
                "load_average_at_end": os.getloadavg(),
            },
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
