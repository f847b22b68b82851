"""SciFact figure run for issue 4: train from all-MiniLM-L6-v2 on SciFact train, evaluate on SciFact test.

Reports, on the 300 test queries: nDCG@10 / MRR@10 / Recall@100 of SPLADE alone (exhaustive sparse dot),
ColBERT alone (exhaustive MaxSim), SPLADE top-100 reranked by ColBERT, and the engine's BM25 on the same
queries (same run); average non-zeros per query / document; training and evaluation wall times.

    python benchmarks/train_scifact.py --config benchmarks/configs/scifact-joint.json \
        --out models/scifact-joint [--url http://127.0.0.1:9200] [--skip-train]
    python benchmarks/train_scifact.py --splade DIR --colbert DIR --skip-train   # two separate models

The engine is the one at --url, else a local Elasticsearch node (colsplade.local.start_node).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine, versions

logger = logging.getLogger("train_scifact")
#: first-stage weights tried on the held-out training queries (never on test) for the fused rerank
FUSION_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _git_commit() -> str | None:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


CACHE_DIR: Path | None = None


@functools.lru_cache(maxsize=1)  # a model dir's documents, queries and dev queries are encoded in a row
def _model(model_dir: str):
    from colsplade.training import load_model_dir

    return load_model_dir(model_dir)


def encode(model_dir: str, texts: list[str], is_query: bool, batch_size: int = 32) -> tuple[dict, float]:
    """Torch encoding with the model directory's pruning (as the ONNX encoders apply it).

    With --cache, encodings are kept per (weights, settings, texts) so evaluating a pair after its
    halves does not encode the corpus again; the recorded time is the original encoding's.
    """
    import hashlib
    import pickle

    import torch

    key = None
    if CACHE_DIR is not None:
        h = hashlib.sha256()
        for name in ("model.safetensors", "colsplade.json"):
            h.update((Path(model_dir) / name).read_bytes())
        h.update(repr((is_query, texts)).encode())
        key = CACHE_DIR / f"{h.hexdigest()[:24]}.pkl"
        if key.is_file():
            return pickle.loads(key.read_bytes())
    model = _model(model_dir)
    s = model.config.splade
    top_k = (s.query_top_k if is_query else s.doc_top_k) if s is not None else None
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.encode(texts, is_query=is_query, batch_size=batch_size, top_k=top_k)
    result = (out, time.perf_counter() - t)
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(pickle.dumps(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="training settings JSON (colsplade train --config)")
    ap.add_argument("--out", help="model directory to train into / evaluate (joint or single model)")
    ap.add_argument("--splade", help="evaluate this SPLADE model directory")
    ap.add_argument("--colbert", help="evaluate this ColBERT model directory")
    ap.add_argument("--data", default=str(DATA), help="BEIR directory or downloaded dataset name [scifact]")
    ap.add_argument(
        "--dev-queries",
        type=int,
        default=30,
        help="training queries held out (as the training configs do, same seed) to choose the fusion weight",
    )
    ap.add_argument("--url", help="engine URL (default: a local Elasticsearch node)")
    ap.add_argument("--bm25-index", default="scifact-bm25")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/train_scifact.json")
    ap.add_argument("--cache", help="directory keeping encodings between runs (keyed by weights and texts)")
    args = ap.parse_args()
    global CACHE_DIR
    CACHE_DIR = Path(args.cache) if args.cache else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("elastic_transport.transport", "httpx", "colsplade.encoders._tokenize"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import torch

    torch.set_num_threads(args.threads)
    from colsplade.engines import connect
    from colsplade.evaluation import (
        evaluate_run,
        load_beir,
        maxsim_rerank,
        maxsim_retrieve,
        sparse_retrieve,
        sparsity,
    )
    from colsplade.local import start_node
    from colsplade.training._negatives import bm25_search, index_corpus_text
    from colsplade.training._trainer import TrainConfig, train

    url = args.url or start_node("elasticsearch", name="train4").url
    client = connect(url=url)
    result: dict = {
        "benchmark": "train_scifact",
        "command": "python " + " ".join(sys.argv),
        "git_commit": _git_commit(),
        "machine": machine(),
        "versions": versions("torch", "transformers", "ir-measures"),
        "engine": {
            "url": url,
            "engine": client.capabilities().engine,
            "version": client.capabilities().version,
        },
    }
    test = load_beir(args.data, "test")
    index_corpus_text(client, args.bm25_index, test.corpus)
    t = time.perf_counter()
    bm25 = bm25_search(client, args.bm25_index, test.queries, k=100)
    result["bm25"] = {**evaluate_run(test.qrels, bm25), "query_s": time.perf_counter() - t}
    logger.info("BM25: %s", result["bm25"])

    splade_dir, colbert_dir = args.splade or args.out, args.colbert or args.out
    if args.config and not args.skip_train:
        config = TrainConfig.from_file(args.config, out=args.out, engine_url=url, bm25_index=args.bm25_index)
        trained = train(config)
        result["training"] = {
            "wall_time_s": trained.wall_time_s,
            "steps": trained.steps,
            "dev": trained.dev_metrics,
        }
    result["settings"] = {}
    for d in {splade_dir, colbert_dir}:
        if d and (Path(d) / "training_config.json").is_file():
            result["settings"][d] = json.loads((Path(d) / "training_config.json").read_text())
        if d and (Path(d) / "training_summary.json").is_file():
            result.setdefault("training_summaries", {})[d] = json.loads(
                (Path(d) / "training_summary.json").read_text()
            )

    doc_ids = list(test.corpus)
    docs = [test.corpus[d] for d in doc_ids]
    qids = list(test.queries)
    queries = [test.queries[q] for q in qids]
    encoded: dict[str, tuple[dict, dict]] = {}
    timings = {}
    # the training queries the training configs held out (same split, same seed): they choose the fusion
    # weight, so no test query tunes anything
    from colsplade.training._data import examples_from_beir, split_dev

    train_split = load_beir(args.data, "train", corpus=test.corpus)
    _, dev_examples = split_dev(examples_from_beir(train_split), args.dev_queries, seed=42)
    dev_qids = [e.query_id for e in dev_examples]
    dev_queries = [e.query for e in dev_examples]
    dev_qrels = {e.query_id: dict.fromkeys(e.positives, 1) for e in dev_examples}
    dev_encoded: dict[str, dict] = {}
    for d in dict.fromkeys(x for x in (splade_dir, colbert_dir) if x):
        d_enc, d_s = encode(d, docs, is_query=False)
        q_enc, q_s = encode(d, queries, is_query=True)
        encoded[d] = (q_enc, d_enc)
        dev_encoded[d] = encode(d, dev_queries, is_query=True)[0]
        timings[d] = {"docs_s": d_s, "docs_per_s": len(docs) / d_s, "queries_s": q_s}
    result["encode_timings"] = timings
    figures: dict = {}
    srun = None
    if splade_dir and "splade" in encoded[splade_dir][1]:
        q_enc, d_enc = encoded[splade_dir]
        # top 200 once: the top-100 figures read its first 100, the window-200 figure all of it
        srun = sparse_retrieve(dict(zip(qids, q_enc["splade"], strict=True)), d_enc["splade"], doc_ids, k=200)
        figures["splade"] = evaluate_run(test.qrels, srun)
        figures["splade"]["query_nnz"] = sparsity(q_enc["splade"])["avg_nnz"]
        figures["splade"]["doc_nnz"] = sparsity(d_enc["splade"])["avg_nnz"]
    if colbert_dir and "colbert" in encoded[colbert_dir][1]:
        q_enc, d_enc = encoded[colbert_dir]
        qv = dict(zip(qids, q_enc["colbert"], strict=True))
        dv = dict(zip(doc_ids, d_enc["colbert"], strict=True))
        figures["colbert"] = evaluate_run(test.qrels, maxsim_retrieve(qv, d_enc["colbert"], doc_ids, k=100))
        figures["colbert"]["avg_doc_tokens"] = float(np.mean([len(v) for v in d_enc["colbert"]]))
        figures["bm25_then_colbert"] = evaluate_run(test.qrels, maxsim_rerank(bm25, qv, dv, k=100))
        if srun is not None:
            figures["splade_then_colbert"] = evaluate_run(test.qrels, maxsim_rerank(srun, qv, dv, k=100))
            # context for the window setting: the same rerank over SPLADE's top 200 (SearchClient window=200)
            figures["splade_top200_then_colbert"] = evaluate_run(
                test.qrels, maxsim_rerank(srun, qv, dv, k=200)
            )
            # fused rerank (SearchClient first_stage_weight): w chosen on the held-out training queries
            s_dev = dev_encoded[splade_dir]["splade"]
            c_dev = dict(zip(dev_qids, dev_encoded[colbert_dir]["colbert"], strict=True))
            dev_run = sparse_retrieve(
                dict(zip(dev_qids, s_dev, strict=True)), encoded[splade_dir][1]["splade"], doc_ids, k=100
            )
            grid = {
                w: evaluate_run(dev_qrels, maxsim_rerank(dev_run, c_dev, dv, k=100, first_stage_weight=w))[
                    "ndcg@10"
                ]
                for w in FUSION_GRID
            }
            best = max(grid, key=lambda w: (grid[w], -w))
            figures["splade_then_colbert_fused"] = {
                **evaluate_run(test.qrels, maxsim_rerank(srun, qv, dv, k=100, first_stage_weight=best)),
                "first_stage_weight": best,
                "dev_ndcg@10_by_weight": grid,
                "dev_queries": len(dev_qids),
            }
    result["figures"] = figures
    result["bar"] = {
        "splade_ge_bm25": bool(figures.get("splade", {}).get("ndcg@10", 0) >= result["bm25"]["ndcg@10"]),
        "nnz_within_256_64": bool(
            figures.get("splade", {}).get("doc_nnz", 1e9) <= 256
            and figures.get("splade", {}).get("query_nnz", 1e9) <= 64
        ),
        "rerank_ge_0.78": bool(figures.get("splade_then_colbert", {}).get("ndcg@10", 0) >= 0.78),
        "fused_rerank_ge_0.78": bool(figures.get("splade_then_colbert_fused", {}).get("ndcg@10", 0) >= 0.78),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    logger.info("figures: %s", json.dumps(figures, indent=1))
    logger.info("bm25: %s; bar: %s; wrote %s", result["bm25"], result["bar"], args.json)


if __name__ == "__main__":
    main()
