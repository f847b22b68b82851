"""Dev evaluation during training: exhaustive retrieval over a small dev corpus with the torch model.

:func:`dev_set` picks the dev documents (every positive and hard negative of the dev queries, topped up
with random ones); :func:`evaluate_dev` measures the model on them as it will be used (inference lengths)
and logs the metrics; :func:`evaluate_model` is the measurement itself (also public).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from colsplade.training._data import TrainExample

__all__ = ["DevSet", "dev_set", "evaluate_dev", "evaluate_model"]

logger = logging.getLogger(__name__)


@dataclass
class DevSet:
    """The dev queries of a run, their judgements and the documents they are retrieved from."""

    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    corpus: dict[str, str] = field(default_factory=dict)


def dev_set(dev: Sequence[TrainExample], corpus: Mapping[str, str], size: int, seed: int) -> DevSet:
    """The dev set of ``dev`` examples over at most about ``size`` documents of ``corpus`` (seeded)."""
    if not dev:
        return DevSet()
    return DevSet(
        {e.query_id: e.query for e in dev},
        {e.query_id: dict.fromkeys(e.positives, 1) for e in dev},
        _dev_corpus(dev, corpus, size, seed),
    )


@torch.no_grad()
def evaluate_model(
    model: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    corpus: Mapping[str, str],
    *,
    k: int = 100,
    batch_size: int = 32,
) -> dict[str, float]:
    """Exhaustive retrieval over ``corpus`` with ``model`` (torch), metrics through ir-measures.

    SPLADE (and joint): ``splade_*`` metrics + ``query_nnz`` / ``doc_nnz``; ColBERT (and joint):
    ``colbert_*``; joint also ``rerank_*`` (SPLADE top ``k`` reranked by MaxSim).
    """
    from colsplade.evaluation import (
        evaluate_run,
        maxsim_rerank,
        maxsim_retrieve,
        sparse_retrieve,
        sparsity,
    )

    was_training = model.training
    model.eval()
    doc_ids = list(corpus)
    qids = list(queries)
    splade_cfg = model.config.splade
    # the model directory's pruning applies, as in the ONNX encoders
    d_enc = model.encode(
        [corpus[d] for d in doc_ids],
        is_query=False,
        batch_size=batch_size,
        top_k=splade_cfg.doc_top_k if splade_cfg else None,
    )
    q_enc = model.encode(
        [queries[q] for q in qids],
        is_query=True,
        batch_size=batch_size,
        top_k=splade_cfg.query_top_k if splade_cfg else None,
    )
    out: dict[str, float] = {}
    run = None
    if "splade" in d_enc:
        qv = dict(zip(qids, q_enc["splade"], strict=True))
        run = sparse_retrieve(qv, d_enc["splade"], doc_ids, k=k)
        out.update({f"splade_{m}": v for m, v in evaluate_run(qrels, run).items()})
        out["query_nnz"] = sparsity(q_enc["splade"])["avg_nnz"]
        out["doc_nnz"] = sparsity(d_enc["splade"])["avg_nnz"]
    if "colbert" in d_enc:
        qv = dict(zip(qids, q_enc["colbert"], strict=True))
        crun = maxsim_retrieve(qv, d_enc["colbert"], doc_ids, k=k)
        out.update({f"colbert_{m}": v for m, v in evaluate_run(qrels, crun).items()})
        if run is not None:
            dv = dict(zip(doc_ids, d_enc["colbert"], strict=True))
            out.update(
                {f"rerank_{m}": v for m, v in evaluate_run(qrels, maxsim_rerank(run, qv, dv, k)).items()}
            )
    model.train(was_training)
    return out


def _dev_corpus(
    dev: Sequence[TrainExample], corpus: Mapping[str, str], size: int, seed: int
) -> dict[str, str]:
    """The dev documents: all positives and hard negatives of the dev queries, topped up with random ones."""
    keep = {d for e in dev for d in (*e.positives, *e.negatives)}
    rest = [d for d in corpus if d not in keep]
    random.Random(seed).shuffle(rest)
    keep.update(rest[: max(0, size - len(keep))])
    return {d: corpus[d] for d in corpus if d in keep}


def evaluate_dev(model: Any, dev: DevSet, step: int, log_file: Any) -> dict[str, float]:
    """Measure ``model`` on ``dev`` at its inference lengths; the metrics go to ``log_file`` and the log."""
    t = time.perf_counter()
    train_cfg = model.text_tokenizer.config
    model.text_tokenizer.config = model.config  # evaluate as the model will be used: inference lengths
    try:
        metrics = evaluate_model(model, dev.queries, dev.qrels, dev.corpus)
    finally:
        model.text_tokenizer.config = train_cfg
    log_file.write(json.dumps({"step": step, "dev": metrics, "eval_s": time.perf_counter() - t}) + "\n")
    log_file.flush()
    logger.info("dev at step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
    return metrics
