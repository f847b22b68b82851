"""Teacher scores from a trained model: ranked lists for MarginMSE / KL distillation.

A ColBERT model trained on the same data ranks the candidates of each training query (its positives and
its hard negatives) by MaxSim; written as ranked-list JSONL (see
:func:`colsplade.training.load_training_jsonl`) it is the teacher file of ``colsplade train splade
--triples FILE --loss marginmse``: the SPLADE student learns the teacher's score margins, not only
which document is the positive.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colsplade.exceptions import InvalidInputError
from colsplade.training._data import TrainExample

__all__ = ["teacher_rankings"]

logger = logging.getLogger(__name__)


def teacher_rankings(
    model_dir: str | os.PathLike[str],
    examples: Sequence[TrainExample],
    corpus: Mapping[str, str],
    *,
    out: str | os.PathLike[str] | None = None,
    depth: int | None = None,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """Score every example's positives and first ``depth`` negatives with the ColBERT head of
    ``model_dir`` (a colbert or joint model directory); returns (and with ``out`` writes as JSONL) one
    ranked-list record per query: ``{"query_id", "query", "positives", "ranking": [[doc_id, score], ...]}``,
    highest MaxSim first.
    """
    from colsplade.scoring import maxsim
    from colsplade.training._model_dir import load_model_dir

    if not any(e.negatives for e in examples):
        raise InvalidInputError("the examples have no negatives to score; mine them first (negatives='bm25')")
    model = load_model_dir(model_dir)
    if model.config.colbert is None:
        raise InvalidInputError(f"{model_dir} has no ColBERT head to score with (kind {model.config.kind})")
    candidates = [[*e.positives, *e.negatives[:depth]] for e in examples]
    doc_ids = list(dict.fromkeys(d for cands in candidates for d in cands))
    unknown = [d for d in doc_ids if d not in corpus]
    if unknown:
        raise InvalidInputError(f"{len(unknown)} candidate ids are not in the corpus, e.g. {unknown[:3]}")
    model.eval()
    with torch.inference_mode():
        doc_vectors = model.encode([corpus[d] for d in doc_ids], is_query=False, batch_size=batch_size)[
            "colbert"
        ]
        query_vectors = model.encode([e.query for e in examples], is_query=True, batch_size=batch_size)[
            "colbert"
        ]
    by_id = dict(zip(doc_ids, doc_vectors, strict=True))
    records = []
    for e, q, cands in zip(examples, query_vectors, candidates, strict=True):
        scores = {d: float(maxsim(np.asarray(q), by_id[d])) for d in cands}
        ranking = sorted(scores.items(), key=lambda kv: -kv[1])
        records.append(
            {"query_id": e.query_id, "query": e.query, "positives": list(e.positives), "ranking": ranking}
        )
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
        os.replace(tmp, path)
        logger.info("wrote teacher rankings of %d queries to %s", len(records), path)
    return records
