"""The training data of a run: examples, corpus and negatives from the config's sources, and the batches.

:func:`load_data` assembles (train examples, dev examples, corpus) from a BEIR directory, a triples file or
label-free documents, with BM25 or file negatives and teacher scores attached; :func:`make_batch` draws one
micro-batch (a positive and negatives per query). No torch here: the loop turns a :class:`Batch` into tensors.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colsplade._jsonl import read_jsonl
from colsplade.exceptions import InvalidInputError
from colsplade.training._config import TrainConfig
from colsplade.training._data import (
    TrainExample,
    examples_from_beir,
    load_training_jsonl,
    split_dev,
    validate_examples,
)
from colsplade.training._negatives import load_negatives, mine_bm25_negatives, sample_negatives

__all__ = ["TEACHER_FILE", "Batch", "connect_engine", "load_data", "make_batch"]

logger = logging.getLogger(__name__)

#: the teacher's scores of the training candidates, cached in the output directory for a resumed run.
TEACHER_FILE = "teacher_rankings.jsonl"


def load_data(
    config: TrainConfig, settings: Any = None
) -> tuple[list[TrainExample], list[TrainExample], dict[str, str]]:
    """-> (train examples, dev examples, corpus), validated; negatives (and teacher scores) attached."""
    if config.label_free:
        from colsplade.training._label_free import label_free_data

        train_ex, dev, corpus = label_free_data(config, lambda: connect_engine(config, settings))
    else:
        train_ex, dev, corpus = _labelled_data(config, settings)
    if config.teacher:
        train_ex, dev = _attach_teacher(config, train_ex, dev, corpus)
    if config.loss in ("marginmse", "kl") and not all(e.teacher for e in train_ex):
        raise InvalidInputError(
            f"loss {config.loss} needs teacher scores for every query (a triples file with scores, or --teacher)"
        )
    return train_ex, dev, corpus


def _labelled_data(
    config: TrainConfig, settings: Any = None
) -> tuple[list[TrainExample], list[TrainExample], dict[str, str]]:
    """Queries and qrels of a BEIR directory or a triples file, with their BM25 or file negatives."""
    from colsplade.evaluation import load_beir, load_corpus, load_queries, resolve_dataset

    corpus: dict[str, str] = {}
    dev: list[TrainExample] = []
    if config.data:
        data_dir = resolve_dataset(config.data)  # a BEIR directory or a downloaded dataset's name
        data = load_beir(data_dir, config.split)
        corpus = data.corpus
        train_ex = examples_from_beir(data)
        if config.triples:
            train_ex = load_training_jsonl(
                config.triples,
                queries=load_queries(data_dir / "queries.jsonl"),
                qrels=data.qrels,
                corpus=corpus,
            )
        if config.dev_split:
            dev = examples_from_beir(load_beir(data_dir, config.dev_split, corpus=corpus))
    else:
        assert config.triples
        corpus_path = Path(config.triples).with_name("corpus.jsonl")
        corpus = load_corpus(corpus_path) if corpus_path.is_file() else {}
        train_ex = load_training_jsonl(config.triples, corpus=corpus)
    validate_examples(train_ex, corpus)
    if not dev and config.dev_queries:
        train_ex, dev = split_dev(train_ex, config.dev_queries, seed=config.seed)
    needs_mining = not any(e.negatives for e in train_ex)
    if config.negatives == "bm25" and needs_mining and config.n_negatives > 0:
        client = connect_engine(config, settings)
        index = (
            config.bm25_index
            or f"colsplade-bm25-{Path(config.data or config.triples or 'data').name}".lower()
        )
        mined = mine_bm25_negatives(
            client,
            index,
            [*train_ex, *dev],
            corpus,
            depth=config.negatives_depth,
            skip_top=config.negatives_skip_top,
        )
        train_ex, dev = mined[: len(train_ex)], mined[len(train_ex) :]
    elif config.negatives not in ("bm25", "none"):
        train_ex = load_negatives(config.negatives, train_ex, corpus)
    return train_ex, dev, corpus


def _attach_teacher(
    config: TrainConfig, train_ex: list[TrainExample], dev: list[TrainExample], corpus: Mapping[str, str]
) -> tuple[list[TrainExample], list[TrainExample]]:
    """Teacher scores from the model at ``config.teacher`` for each query's positives and first
    ``teacher_depth`` negatives (cached in the output directory, so a resumed run reuses them)."""
    from colsplade.training._teacher import teacher_rankings

    examples = [*train_ex, *dev]
    cache = Path(config.out) / TEACHER_FILE
    records: dict[str, Any] | None = None
    if cache.is_file():
        records = {r.get("query_id"): r for r in read_jsonl(cache)}
        if set(records) != {e.query_id for e in examples}:
            records = None  # another data set or split: score again
    if records is None:
        logger.info("scoring the training candidates with the teacher %s", config.teacher)
        scored = teacher_rankings(config.teacher, examples, corpus, out=cache, depth=config.teacher_depth)
        records = {r["query_id"]: r for r in scored}
    out = []
    for e in examples:
        scores = {str(d): float(s) for d, s in records[e.query_id]["ranking"]}
        # only scored negatives may be sampled: an unscored one would get a made-up teacher score
        negatives = [d for d in e.negatives if d in scores]
        out.append(TrainExample(e.query_id, e.query, list(e.positives), negatives, scores))
    return out[: len(train_ex)], out[len(train_ex) :]


def connect_engine(config: TrainConfig, settings: Any = None) -> Any:
    """The engine that mines BM25 negatives: ``settings`` (credentials, TLS; with ``config.engine_url`` as
    its URL when set), else ``config.engine_url``, else the configured engine or the local node."""
    from colsplade.engines import connect, resolve_settings

    if settings is not None:
        if config.engine_url:
            settings = settings.replace(urls=(config.engine_url,))
        return connect(resolve_settings(settings, autostart=True))
    if config.engine_url:
        return connect(url=config.engine_url)
    return connect(resolve_settings(autostart=True))


@dataclass
class Batch:
    """One micro-batch: its queries, and the documents every query is scored against (columns)."""

    queries: list[str]
    docs: list[str]
    labels: list[int]  # column of each query's positive in docs
    groups: list[list[int]]  # columns of each query's own candidates (positive first)
    false_negatives: list[list[int]]  # columns that hold another positive of the query
    teacher: list[list[float]] | None


def make_batch(
    examples: Sequence[TrainExample],
    corpus: Mapping[str, str],
    corpus_ids: Sequence[str],
    n_neg: int,
    rng: random.Random,
) -> Batch:
    """A positive (drawn among a query's positives) and ``n_neg`` negatives for each of ``examples``.

    ``rng`` draws both, so a stream keyed on the batch's position makes a resumed run draw the same batch.
    """
    docs: list[str] = []
    doc_ids: list[str] = []
    labels, groups, teacher = [], [], []
    for e in examples:
        pos = e.positives[rng.randrange(len(e.positives))]
        negs = sample_negatives(e, n_neg, rng, corpus_ids)
        start = len(docs)
        ids = [pos, *negs]
        doc_ids.extend(ids)
        docs.extend(corpus[d] for d in ids)
        labels.append(start)
        groups.append(list(range(start, start + len(ids))))
        if e.teacher is not None:
            teacher.append([e.teacher.get(d, 0.0) for d in ids])
    false_neg = [
        [j for j, d in enumerate(doc_ids) if d in set(e.positives) and j != labels[i]]
        for i, e in enumerate(examples)
    ]
    return Batch([e.query for e in examples], docs, labels, groups, false_neg, teacher or None)
