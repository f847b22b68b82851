"""Training data: BEIR directories, triples / ranked-list JSONL, and validation before training starts.

A training set is a list of :class:`TrainExample` (a query, its positives, optional negatives with
optional teacher scores). Everything that can be wrong with the inputs is checked here, up front, so a
bad file fails in seconds with a message naming the ids, not an hour into training.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from colsplade._jsonl import read_jsonl
from colsplade._types import ModelKind
from colsplade.evaluation import BeirData
from colsplade.exceptions import InvalidInputError

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "TrainExample",
    "check_base_model",
    "examples_from_beir",
    "load_training_jsonl",
    "split_dev",
    "validate_examples",
]

logger = logging.getLogger(__name__)

#: encoder-only architectures with a BERT-like MLM head and fast WordPiece/BPE tokenizer that SPLADE,
#: ColBERT and joint models are built on (decoder-only LMs have no bidirectional token states).
SUPPORTED_MODEL_TYPES = (
    "bert",
    "distilbert",
    "modernbert",
    "roberta",
    "xlm-roberta",
    "electra",
    "camembert",
    "mpnet",
)


@dataclass
class TrainExample:
    """One training query.

    ``positives`` / ``negatives``: document ids into the corpus (or ``text:``-free raw texts when the
    example came from a JSONL file without a corpus; see :func:`load_training_jsonl`).
    ``teacher``: optional teacher scores, ``{doc_id: score}`` for distillation.
    """

    query_id: str
    query: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)
    teacher: dict[str, float] | None = None


def examples_from_beir(data: BeirData) -> list[TrainExample]:
    """One example per judged query of ``data`` (positives = rel > 0; no negatives yet)."""
    return [TrainExample(query_id=q, query=data.queries[q], positives=data.positives(q)) for q in data.qrels]


def validate_examples(examples: Sequence[TrainExample], corpus: dict[str, str] | None = None) -> None:
    """Raise :class:`InvalidInputError` naming the offending queries if any example is unusable.

    Checks: at least one example; no empty query; at least one positive per query; every document id
    known to ``corpus`` (when given); no positive also listed as a negative of the same query;
    teacher scores for every positive and negative when any teacher scores are given.
    """
    if not examples:
        raise InvalidInputError("no training queries: the split or file is empty")
    problems: dict[str, list[str]] = {}

    def add(kind: str, qid: str) -> None:
        problems.setdefault(kind, []).append(qid)

    with_teacher = sum(e.teacher is not None for e in examples)
    for e in examples:
        if not e.query.strip():
            add("empty query text", e.query_id)
        if not e.positives:
            add("no positive document", e.query_id)
        if corpus is not None and any(d not in corpus for d in (*e.positives, *e.negatives)):
            add("document id not in the corpus", e.query_id)
        if set(e.positives) & set(e.negatives):
            add("a positive also listed as a negative", e.query_id)
        if with_teacher and (
            e.teacher is None or any(d not in e.teacher for d in (*e.positives, *e.negatives))
        ):
            add("missing teacher scores", e.query_id)
    if problems:
        lines = [f"{kind}: {len(ids)} query(ies), e.g. {ids[:5]}" for kind, ids in problems.items()]
        raise InvalidInputError("invalid training data:\n  " + "\n  ".join(lines))


def split_dev(
    examples: Sequence[TrainExample], n_dev: int, seed: int = 0
) -> tuple[list[TrainExample], list[TrainExample]]:
    """Hold ``n_dev`` queries out of ``examples`` (deterministic for ``seed``) -> (train, dev)."""
    if n_dev <= 0:
        return list(examples), []
    if n_dev >= len(examples):
        raise InvalidInputError(f"cannot hold out {n_dev} dev queries from {len(examples)} training queries")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    dev = set(order[:n_dev])
    return [e for i, e in enumerate(examples) if i not in dev], [
        e for i, e in enumerate(examples) if i in dev
    ]


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise InvalidInputError(f"expected a string or a list of strings, got {type(value).__name__}")


def load_training_jsonl(
    path: str | os.PathLike[str],
    *,
    queries: dict[str, str] | None = None,
    qrels: dict[str, dict[str, int]] | None = None,
    corpus: dict[str, str] | None = None,
) -> list[TrainExample]:
    """Read triples or ranked lists from JSONL (one query per line); validated with :func:`validate_examples`.

    Accepted records (ids refer to ``corpus``; with no corpus, ``positives`` / ``negatives`` are texts and
    get synthetic ids added to ``corpus`` if it is a dict you pass in)::

        {"query": "text" | "query_id": "q1", "positives": ["d1"], "negatives": ["d7", "d9"],
         "scores": {"d1": 9.1, "d7": 3.2, "d9": 1.0}}                      # triples, optional teacher
        {"query_id": "q1", "ranking": [["d3", 12.0], ["d1", 11.5], ...]}  # ranked list + teacher scores

    In a ranked list, positives come from ``qrels`` (or a ``positives`` field) and every other ranked
    document is a negative; the scores become teacher scores. ``positive`` / ``negative`` (singular) work too.
    """
    p = Path(path)
    examples: list[TrainExample] = []
    for line_no, r in read_jsonl(p, line_numbers=True):
        qid = str(r.get("query_id", r.get("qid", f"line{line_no}")))
        text = r.get("query")
        if text is None:
            if queries is None or qid not in queries:
                raise InvalidInputError(f"{p}:{line_no}: no 'query' text and query id {qid!r} is unknown")
            text = queries[qid]
        positives = _as_list(r.get("positives", r.get("positive")))
        negatives = _as_list(r.get("negatives", r.get("negative")))
        teacher: dict[str, float] | None = None
        if "ranking" in r:
            ranking = r["ranking"]
            if not isinstance(ranking, list) or not all(isinstance(x, list) and len(x) == 2 for x in ranking):
                raise InvalidInputError(f"{p}:{line_no}: 'ranking' must be a list of [doc_id, score] pairs")
            teacher = {str(d): float(s) for d, s in ranking}
            if not positives and qrels is not None:
                positives = [d for d, rel in qrels.get(qid, {}).items() if rel > 0]
            positives = [d for d in positives if d in teacher] or positives
            negatives = [d for d in teacher if d not in set(positives)]
        elif "scores" in r:
            if not isinstance(r["scores"], dict):
                raise InvalidInputError(f"{p}:{line_no}: 'scores' must map document ids to teacher scores")
            teacher = {str(d): float(s) for d, s in r["scores"].items()}
        if (
            corpus is not None
            and not all(d in corpus for d in (*positives, *negatives))
            and "ranking" not in r
        ):
            # texts rather than ids: give them stable synthetic ids in the caller's corpus
            positives = [_intern(corpus, d) for d in positives]
            negatives = [_intern(corpus, d) for d in negatives]
        examples.append(TrainExample(qid, str(text), positives, negatives, teacher))
    validate_examples(examples, corpus)
    logger.info("read %d training queries from %s", len(examples), p)
    return examples


def _intern(corpus: dict[str, str], value: str) -> str:
    if value in corpus:
        return value
    import hashlib

    # a content hash, not hash(): stable across processes, so a resumed run sees the same ids
    key = "text:" + hashlib.sha1(value.encode("utf-8")).hexdigest()[:16]
    corpus[key] = value
    return key


def check_base_model(base: str | os.PathLike[str], kind: ModelKind) -> str:
    """Check that ``base`` can be turned into a ``kind`` model before any training; returns its path/id.

    Raises :class:`InvalidInputError` for an unknown ``kind``, an unreadable base, an architecture that is
    not an encoder with a token-level output (e.g. GPT-2, T5), or one without a fast tokenizer.
    """
    from transformers import AutoConfig

    from colsplade.training._model_dir import resolve_base_model

    if kind not in ("splade", "colbert", "joint"):
        raise InvalidInputError(f"model kind must be splade, colbert or joint, not {kind!r}")
    source = resolve_base_model(base)
    path = Path(source)
    if path.is_dir() and (path / "colsplade.json").is_file():
        return source  # an existing colsplade model directory: continue training it
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the base model {source!r}: {exc}") from exc
    model_type = getattr(config, "model_type", "?")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InvalidInputError(
            f"base model {source!r} is a {model_type!r} model; SPLADE / ColBERT need a bidirectional "
            f"encoder with an MLM vocabulary, one of {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if path.is_dir() and not (path / "tokenizer.json").is_file():
        raise InvalidInputError(f"base model {source!r} has no fast tokenizer (tokenizer.json)")
    return source


def iter_texts(ids: Iterable[str], corpus: dict[str, str]) -> list[str]:
    """The texts of document ``ids``."""
    return [corpus[d] for d in ids]
