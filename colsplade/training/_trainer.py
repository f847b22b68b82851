"""The trainer: SPLADE, ColBERT and joint models from a base model on BEIR data.

CPU or CUDA (mixed precision), gradient accumulation, seeded and resumable (a checkpoint holds the
weights, optimiser, scheduler, scaler, RNG states and the position inside the epoch, so an interrupted
run continues from it exactly), dev evaluation through ir-measures, and a model directory at the end
that ``colsplade export`` takes as is (the hyper-parameters are saved next to the weights).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colsplade._types import MODEL_KINDS, ModelKind
from colsplade.exceptions import InvalidInputError
from colsplade.training._data import (
    TrainExample,
    check_base_model,
    examples_from_beir,
    load_training_jsonl,
    split_dev,
    validate_examples,
)
from colsplade.training._losses import (
    RegularizerSchedule,
    colbert_scores,
    flops_regularizer,
    info_nce_loss,
    kl_distillation_loss,
    l1_regularizer,
    listwise_distillation_loss,
    margin_mse_loss,
    margin_ranking_loss,
    sparsity_stats,
    splade_scores,
    teacher_false_negatives,
)
from colsplade.training._negatives import load_negatives, mine_bm25_negatives, sample_negatives

__all__ = [
    "TRAINING_CONFIG_FILE",
    "TrainConfig",
    "TrainResult",
    "calibrate_mlm_bias",
    "evaluate_model",
    "train",
]

logger = logging.getLogger(__name__)

#: the hyper-parameters of the run that produced a model directory.
TRAINING_CONFIG_FILE = "training_config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "train_log.jsonl"
TEACHER_FILE = "teacher_rankings.jsonl"
LOSSES = ("infonce", "margin", "marginmse", "kl")


@dataclass
class TrainConfig:
    """Every setting of a training run (see ``colsplade train --help`` for the flags).

    Data: ``data`` a BEIR directory or a downloaded dataset's name (``split`` trains; ``dev_split``
    evaluates, else ``dev_queries`` are held out of the training split) or ``triples`` a JSONL file (see
    :func:`colsplade.training._data.load_training_jsonl`). ``negatives``: ``bm25`` (mined on the engine at
    ``engine_url``, or the local node), ``none`` (in-batch only), or a negatives JSONL path.
    Loss: ``infonce`` (+ ``in_batch_negatives``), ``margin``, ``marginmse`` / ``kl`` (need teacher scores:
    from the triples file, or ``teacher`` = a trained ColBERT / joint model directory that scores each
    query's positives and first ``teacher_depth`` hard negatives before training).
    SPLADE sparsity: ``regularizer`` flops | l1 | none with ``lambda_query`` / ``lambda_doc`` warmed up
    quadratically over ``reg_warmup_ratio`` of the steps; ``train_max_doc_length`` truncates documents
    harder while training than the model directory's ``max_doc_length`` does at inference (on a CPU it
    halves the cost of a step); ``init_doc_nnz`` calibrates the MLM bias of a
    fresh head so documents start with about that many active terms (None: leave the bias).
    Label-free (``label_free``): no queries, no qrels; pseudo-queries made from the documents of
    ``from_index`` (an index on the engine) or ``corpus`` (a JSONL file, or a BEIR directory / dataset name
    whose ``corpus.jsonl`` alone is read; ``data`` serves the same way when neither is given), read from
    ``title_field`` and ``text_fields``: title -> body, a sentence -> the rest (inverse cloze), random
    crops (``pseudo_kinds``; at most ``max_pairs``); BM25 negatives on that index (or a BM25 index of the
    corpus) without near-duplicates of the positive (word 3-gram Jaccard >= ``near_duplicate_threshold``).
    ``base`` may be a trained colsplade model directory (domain transfer). See
    :mod:`colsplade.training._label_free`.
    ``holdout_ids``: documents kept out of label-free training altogether (no pair, no negative): an
    evaluation set the model never saw (``colsplade upgrade`` measures its gate on them).
    ``time_budget_s``: stop after this many seconds of optimisation steps in this process, even short
    of ``max_steps`` (the model is saved as usual; the schedule was planned for ``max_steps``).
    Identity: ``name`` goes into ``colsplade.json`` (default: the output directory's name) and the
    version is the first 12 hex digits of the weights' SHA-256, so indexes tell trained models apart.
    """

    kind: ModelKind = "splade"
    out: str = ""
    data: str | None = None
    base: str = "minilm"
    split: str = "train"
    dev_split: str | None = None
    dev_queries: int = 0
    dev_corpus_size: int = 1000
    triples: str | None = None
    negatives: str = "bm25"
    engine_url: str | None = None
    bm25_index: str | None = None
    negatives_depth: int = 30
    negatives_skip_top: int = 0
    n_negatives: int = 1
    teacher: str | None = None
    teacher_depth: int = 20
    loss: str = "infonce"
    in_batch_negatives: bool = True
    temperature: float = 1.0
    margin: float = 1.0
    splade_weight: float = 1.0
    colbert_weight: float = 1.0
    sparse_query: str = "encoder"
    splade_distill_weight: float = 0.0
    distill_temperature: float = 1.0
    teacher_filter: bool = False
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    head_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_query_length: int = 32
    max_doc_length: int = 256
    train_max_doc_length: int | None = None
    dim: int = 128
    pooling: str = "max"
    regularizer: str = "flops"
    lambda_query: float = 5e-4
    lambda_doc: float = 3e-4
    reg_warmup_ratio: float = 0.33
    init_doc_nnz: int | None = 256
    query_top_k: int | None = None
    doc_top_k: int | None = None
    seed: int = 42
    device: str = "auto"
    amp: bool = True
    num_threads: int | None = None
    eval_steps: int = 0
    save_steps: int = 100
    log_steps: int = 10
    progress: bool = True
    resume: bool = True
    keep_checkpoints: bool = False
    name: str | None = None
    label_free: bool = False
    from_index: str | None = None
    corpus: str | None = None
    title_field: str | None = "title"
    text_fields: list[str] = field(default_factory=lambda: ["text"])
    pseudo_kinds: list[str] = field(default_factory=lambda: ["title", "ict", "crop"])
    max_pairs: int | None = None
    near_duplicate_threshold: float = 0.6
    holdout_ids: list[str] = field(default_factory=list)
    time_budget_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """Read a JSON or TOML config file; ``overrides`` (e.g. command-line flags) win over it."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"config file {p} does not exist")
        if p.suffix == ".toml":
            import tomllib

            values = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            try:
                values = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{p}: not JSON ({exc.msg}); use .json or .toml") from exc
        return cls.from_dict({**values, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"unknown training settings {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _validate_label_free(self) -> None:
        if not (self.from_index or self.corpus or self.data):
            raise InvalidInputError("--label-free reads documents: give --from-index INDEX or --corpus FILE")
        if self.from_index and self.corpus:
            raise InvalidInputError("give --from-index or --corpus, not both")
        if self.triples:
            raise InvalidInputError("--label-free makes its own pairs; --triples are labelled data")
        if not self.text_fields and not self.title_field:
            raise InvalidInputError("--label-free needs at least one text field (--text-field)")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise InvalidInputError("near_duplicate_threshold must be in (0, 1]")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise InvalidInputError("max_pairs must be positive")

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` for settings that cannot work together."""
        if self.kind not in MODEL_KINDS:
            raise InvalidInputError(f"kind must be splade, colbert or joint, not {self.kind!r}")
        if not self.out:
            raise InvalidInputError("an output directory is needed (--out)")
        if self.label_free:
            self._validate_label_free()
        elif self.from_index or self.corpus:
            raise InvalidInputError("--from-index / --corpus are the documents of --label-free training")
        elif not self.data and not self.triples:
            raise InvalidInputError(
                "training data is needed: --data (BEIR directory), --triples (JSONL), or --label-free with "
                "--from-index INDEX / --corpus FILE (documents only)"
            )
        if self.loss not in LOSSES:
            raise InvalidInputError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.regularizer not in ("flops", "l1", "none"):
            raise InvalidInputError(f"regularizer must be flops, l1 or none, not {self.regularizer!r}")
        if self.loss in ("margin", "marginmse", "kl") and self.n_negatives < 1:
            raise InvalidInputError(f"loss {self.loss} needs n_negatives >= 1")
        if self.teacher and not Path(self.teacher).is_dir():
            raise InvalidInputError(f"teacher {self.teacher!r} is not a model directory")
        if self.teacher and self.negatives == "none" and not self.triples:
            raise InvalidInputError(
                "a teacher scores hard negatives; use negatives='bm25' or a negatives file"
            )
        if self.sparse_query not in ("encoder", "inference-free"):
            raise InvalidInputError(
                f"sparse_query must be 'encoder' or 'inference-free', not {self.sparse_query!r}"
            )
        if self.sparse_query == "inference-free" and self.kind == "colbert":
            raise InvalidInputError(
                "sparse_query='inference-free' is a SPLADE query side: train splade or joint"
            )
        if self.splade_distill_weight < 0 or not self.distill_temperature > 0:
            raise InvalidInputError("splade_distill_weight must be >= 0 and distill_temperature > 0")
        if (self.splade_distill_weight > 0 or self.teacher_filter) and self.kind != "joint":
            raise InvalidInputError(
                "splade_distill_weight / teacher_filter take the joint model's ColBERT side as the teacher "
                "of its SPLADE side; for a separate SPLADE model give --teacher COLBERT_DIR with loss kl"
            )
        if self.teacher_filter and not (self.loss == "infonce" and self.in_batch_negatives):
            raise InvalidInputError("teacher_filter masks in-batch negatives: it needs loss infonce")
        if self.holdout_ids and not self.label_free:
            raise InvalidInputError("holdout_ids are documents kept out of --label-free training")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InvalidInputError("time_budget_s must be positive")
        if self.batch_size < 1 or self.grad_accum < 1 or self.epochs <= 0:
            raise InvalidInputError("batch_size, grad_accum and epochs must be positive")


@dataclass
class TrainResult:
    """What :func:`train` produced: the model directory, optimisation steps, wall time, last dev metrics."""

    model_dir: Path
    steps: int
    wall_time_s: float
    dev_metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    losses: list[float] = field(default_factory=list)


# -- data --------------------------------------------------------------------------------------------


def _load_data(
    config: TrainConfig, settings: Any = None
) -> tuple[list[TrainExample], list[TrainExample], dict[str, str]]:
    """-> (train examples, dev examples, corpus), validated; negatives (and teacher scores) attached."""
    if config.label_free:
        from colsplade.training._label_free import label_free_data

        train_ex, dev, corpus = label_free_data(config, lambda: _connect(config, settings))
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
        client = _connect(config, settings)
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
        with cache.open(encoding="utf-8") as fh:
            records = {r["query_id"]: r for r in map(json.loads, fh)}
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


def _connect(config: TrainConfig, settings: Any = None) -> Any:
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
class _Batch:
    queries: list[str]
    docs: list[str]
    labels: list[int]  # column of each query's positive in docs
    groups: list[list[int]]  # columns of each query's own candidates (positive first)
    false_negatives: list[list[int]]  # columns that hold another positive of the query
    teacher: list[list[float]] | None


def _make_batch(
    examples: Sequence[TrainExample],
    corpus: Mapping[str, str],
    corpus_ids: Sequence[str],
    n_neg: int,
    rng: random.Random,
) -> _Batch:
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
    return _Batch([e.query for e in examples], docs, labels, groups, false_neg, teacher or None)


# -- model ------------------------------------------------------------------------------------------


@torch.no_grad()
def calibrate_mlm_bias(model: Any, texts: Sequence[str], target_nnz: int) -> float:
    """Shift the MLM decoder bias so ``texts`` (documents) start with about ``target_nnz`` active terms.

    A head grown from tied embeddings (all-MiniLM-L6-v2 has none) makes nearly every term positive under
    max pooling, and from a fully dense start the FLOPS regulariser has to fight the ranking loss for
    every term. A single scalar shift keeps the head's term ranking and only moves the cut. Returns it.
    """
    bias = model.backbone.get_output_embeddings().bias
    if bias is None:
        logger.warning("the MLM head has no bias; cannot calibrate its sparsity")
        return 0.0
    model.eval()
    ids, mask = model.tokenize(list(texts), is_query=False)
    hidden = model.backbone.base_model(input_ids=ids, attention_mask=mask)[0]
    from colsplade.training._models import _mlm_head

    logits = _mlm_head(model.backbone)(hidden)  # (B, seq, V)
    pooled = (logits.float() - (1 - mask.unsqueeze(-1).float()) * 1e4).max(dim=1).values  # (B, V)
    lo, hi = -float(pooled.max()) - 1, -float(pooled.min()) + 1
    for _ in range(40):  # bisect the shift b with mean #(pooled + b > 0) == target
        mid = (lo + hi) / 2
        if float((pooled + mid > 0).sum(dim=1).float().mean()) > target_nnz:
            hi = mid
        else:
            lo = mid
    bias.add_(lo)
    logger.info("MLM bias shifted by %.3f so documents start with ~%d active terms", lo, target_nnz)
    return lo


def _prepare_model(config: TrainConfig, corpus: Mapping[str, str], device: torch.device) -> Any:
    from colsplade.encoders import CONFIG_FILE, read_model_config
    from colsplade.training._model_dir import init_model_dir, load_model_dir

    out = Path(config.out)
    source = check_base_model(config.base, config.kind)
    fresh = not (out / CONFIG_FILE).is_file()
    if fresh and (Path(source) / CONFIG_FILE).is_file():
        shutil.copytree(source, out, dirs_exist_ok=True)  # continue training an existing model directory
        fresh = False
    elif fresh:
        init_model_dir(
            config.kind,
            out,
            base=config.base,
            dim=config.dim,
            pooling=config.pooling,
            max_query_length=config.max_query_length,
            max_doc_length=config.max_doc_length,
            seed=config.seed,
            query_encoder="inference_free" if config.sparse_query == "inference-free" else "model",
        )
    existing = read_model_config(out)
    if existing.kind != config.kind:
        raise InvalidInputError(
            f"{out} holds a {existing.kind} model, not {config.kind}; choose another --out"
        )
    from colsplade.encoders import sparse_query_mode

    mode = sparse_query_mode(existing)
    if mode is not None and mode != config.sparse_query:
        raise InvalidInputError(
            f"{out} holds a model with {mode} sparse queries, not {config.sparse_query}; choose another "
            "--out, or a --base of the same query side"
        )
    model = load_model_dir(out, device=str(device))
    if fresh and config.kind != "colbert" and config.init_doc_nnz:
        sample = list(corpus.values())[:: max(1, len(corpus) // 32)][:32]
        calibrate_mlm_bias(model, sample, config.init_doc_nnz)
    if fresh and model.query_weights is not None:
        with torch.no_grad():
            model.query_weights.copy_(corpus_idf(model.text_tokenizer, corpus.values()))
    return model


def corpus_idf(text_tokenizer: Any, texts: Iterable[str]) -> torch.Tensor:
    """(vocab,) BM25's IDF of every vocabulary token over ``texts`` (as documents are tokenized):
    ``log(1 + (N - df + 0.5) / (df + 0.5))``; special tokens 0. The inference-free query side starts
    from it, so an untrained table already ranks like BM25 over the model's vocabulary."""
    texts = list(texts)
    df = np.zeros(text_tokenizer.vocab_size, dtype=np.float64)
    for start in range(0, len(texts), 256):
        tok = text_tokenizer.tokenize(texts[start : start + 256], is_query=False)
        for seq in tok.ids:
            ids = np.unique(np.asarray(seq, dtype=np.int64))
            df[ids[ids < len(df)]] += 1
    n = max(len(texts), 1)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    idf[[i for i in text_tokenizer.special_ids if i < len(idf)]] = 0.0
    return torch.from_numpy(idf.astype(np.float32))


def _optimizer(model: Any, config: TrainConfig) -> torch.optim.Optimizer:
    head_lr = config.head_lr or config.lr
    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("linear.") or name == "query_weights":
            head.append(p)  # freshly initialised: may learn faster than the pretrained backbone
        elif p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay, "lr": config.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": config.lr},
        {"params": head, "weight_decay": 0.0, "lr": head_lr},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


# -- losses -----------------------------------------------------------------------------------------


def _ranking_loss(
    scores: torch.Tensor,
    batch: _Batch,
    config: TrainConfig,
    device: torch.device,
    extra_false_negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """``scores`` (B, N) of every query against every document of the batch -> the configured loss.

    ``extra_false_negatives`` (B, N) bool: more in-batch columns kept out of a row's negatives (the
    teacher's filter)."""
    own = torch.stack([scores[i, g] for i, g in enumerate(batch.groups)])  # (B, 1 + k), positive first
    if config.loss == "infonce":
        if not config.in_batch_negatives:
            return info_nce_loss(
                own, torch.zeros(len(own), dtype=torch.long, device=device), config.temperature
            )
        # another copy / another positive of the same query is not a negative
        masked = scores.masked_fill(_copies_mask(batch, scores.shape, device), float("-inf"))
        if extra_false_negatives is not None:
            masked = masked.masked_fill(extra_false_negatives, float("-inf"))
        return info_nce_loss(masked, torch.tensor(batch.labels, device=device), config.temperature)
    if config.loss == "margin":
        return margin_ranking_loss(own[:, 0], own[:, 1:], config.margin)
    assert batch.teacher is not None
    teacher = torch.tensor(batch.teacher, device=device, dtype=torch.float32)
    if config.loss == "marginmse":
        return margin_mse_loss(own[:, 0], own[:, 1:], teacher[:, 0], teacher[:, 1:])
    return kl_distillation_loss(own, teacher, config.temperature)


def _copies_mask(batch: _Batch, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """(B, N) bool: the columns that hold another copy / positive of each row's query."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    for i, cols in enumerate(batch.false_negatives):
        if cols:
            mask[i, cols] = True
    return mask


def _step_loss(
    model: Any, batch: _Batch, config: TrainConfig, reg: RegularizerSchedule, step: int, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    q_ids, q_mask = model.tokenize(batch.queries, is_query=True)
    d_ids, d_mask = model.tokenize(batch.docs, is_query=False)
    q_out = model(q_ids, q_mask)
    d_out = model(d_ids, d_mask)
    loss = torch.zeros((), device=device)
    logs: dict[str, float] = {}
    teacher: torch.Tensor | None = None  # the ColBERT side's scores, teacher of the SPLADE side
    if "colbert" in q_out:
        scores = colbert_scores(
            q_out["colbert"].float(), q_out["colbert_mask"], d_out["colbert"].float(), d_out["colbert_mask"]
        )
        rank = _ranking_loss(scores, batch, config, device)
        weight = config.colbert_weight if config.kind == "joint" else 1.0
        loss = loss + weight * rank
        logs["colbert_loss"] = float(rank.detach())
        teacher = scores.detach()
    if "splade" in q_out:
        if model.query_weights is not None:  # inference-free: the query's own tokens, learnt weights
            qs = model.inference_free_queries(q_ids, q_mask).float()
        else:
            qs = q_out["splade"].float()
        ds = d_out["splade"].float()
        sparse_scores = splade_scores(qs, ds)
        filtered = None
        if config.teacher_filter and teacher is not None:
            labels = torch.tensor(batch.labels, device=device)
            filtered = teacher_false_negatives(teacher, labels)
            logs["teacher_filtered"] = float(filtered.sum()) / len(batch.labels)
        rank = _ranking_loss(sparse_scores, batch, config, device, filtered)
        lam_q, lam_d = reg.lambdas(step)
        if config.regularizer == "flops":
            sparse = lam_q * flops_regularizer(qs) + lam_d * flops_regularizer(ds)
        elif config.regularizer == "l1":
            sparse = lam_q * l1_regularizer(qs) + lam_d * l1_regularizer(ds)
        else:
            sparse = torch.zeros((), device=device)
        weight = config.splade_weight if config.kind == "joint" else 1.0
        loss = loss + weight * rank + sparse
        if config.splade_distill_weight > 0 and teacher is not None:
            # listwise: every in-batch document is a candidate of every query, copies of its positive aside
            distill = listwise_distillation_loss(
                sparse_scores, teacher, config.distill_temperature, _copies_mask(batch, teacher.shape, device)
            )
            loss = loss + config.splade_distill_weight * distill
            logs["distill_loss"] = float(distill.detach())
        logs.update(splade_loss=float(rank.detach()), reg=float(sparse.detach()), **sparsity_stats(qs, ds))
    logs["loss"] = float(loss.detach())
    return loss, logs


# -- evaluation -------------------------------------------------------------------------------------


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


# -- checkpoints ------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(out: Path, state: dict[str, Any]) -> Path:
    ckpt_dir = out / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"step-{state['step']:07d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-write never leaves a half checkpoint as the latest
    for old in sorted(ckpt_dir.glob("step-*.pt"))[:-1]:
        old.unlink()
    return path


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / CHECKPOINT_DIR).glob("step-*.pt"))
    return found[-1] if found else None


# -- the loop ---------------------------------------------------------------------------------------


def _device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _autocast_dtype(amp: bool, device: torch.device) -> tuple[bool, torch.dtype]:
    """-> (use autocast, its dtype). CUDA: bf16 where supported, else fp16 with a grad scaler. CPU: bf16
    only where the CPU computes it natively (AVX512-BF16 / AMX; 1.5x faster steps on a 2-core EPYC),
    since emulated bf16 is slower than fp32. The weights and optimiser state stay fp32 either way."""
    if not amp:
        return False, torch.float32
    if device.type == "cuda":
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        try:
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            native = False
        return native, torch.bfloat16
    return False, torch.float32


@dataclass
class _Run:
    """One training run between its stages: what :func:`_setup` builds and the loop advances."""

    config: TrainConfig
    out: Path
    device: torch.device
    train_ex: list[TrainExample]
    dev: list[TrainExample]
    corpus: dict[str, str]
    model: Any
    inference_cfg: Any  # the model directory's lengths, restored before saving
    optimizer: Any
    scheduler: Any
    scaler: Any
    reg: RegularizerSchedule
    use_amp: bool
    amp_dtype: torch.dtype
    total_steps: int
    step: int = 0
    epoch: int = 0
    micro_done: int = 0  # micro-batches of the current epoch already trained
    resumed_from: int | None = None
    seen: int = 0  # training queries since the start (of this process)
    losses: list[float] = field(default_factory=list)
    dev_metrics: dict[str, float] = field(default_factory=dict)
    dev_queries: dict[str, str] = field(default_factory=dict)
    dev_qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    dev_corpus: dict[str, str] = field(default_factory=dict)
    window_start: float = field(default_factory=time.perf_counter)  # of the queries/s figures
    corpus_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.corpus_ids = list(self.corpus)

    def evaluate_dev(self, log_file: Any) -> dict[str, float]:
        self.dev_metrics = _evaluate_dev(
            self.model, self.dev_queries, self.dev_qrels, self.dev_corpus, self.step, log_file
        )
        return self.dev_metrics

    def state(self) -> dict[str, Any]:
        return _state(
            self.model, self.optimizer, self.scheduler, self.scaler, self.step, self.epoch, self.micro_done
        )


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    settings: Any = None,
) -> TrainResult:
    """Train a ``config.kind`` model and write it to ``config.out`` (a complete model directory).

    All inputs are validated before the first step. With ``config.resume`` an interrupted run in the same
    ``out`` continues from its last checkpoint (same data order, same negatives, same RNG streams).
    ``on_step(step, logs)`` is called after every optimisation step (tests use it to interrupt a run).
    ``settings`` (:class:`colsplade.config.Settings`): the engine that mines BM25 negatives, with its
    credentials and TLS options; they are never written into the model directory.

    The stages: :func:`_setup` (data, model, optimiser, resume), :func:`_train_loop` (epochs of
    :func:`_optimizer_step`), :func:`_finish` (the model directory and the summary).
    """
    started = time.perf_counter()
    run = _setup(config, settings)
    with (run.out / LOG_FILE).open("a", encoding="utf-8") as log_file:
        _train_loop(run, log_file, on_step)
        if run.dev:
            run.evaluate_dev(log_file)
    return _finish(run, started)


def _setup(config: TrainConfig, settings: Any = None) -> _Run:
    """Validate, load and seed, build the model and its optimiser, and resume from the last checkpoint."""
    config.validate()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = _device(config)
    out = Path(config.out)
    check_base_model(config.base, config.kind)  # fail on a wrong architecture before loading data
    train_ex, dev, corpus = _load_data(config, settings)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    model, inference_cfg = _training_model(config, corpus, device)
    optimizer = _optimizer(model, config)
    micro_per_epoch = math.ceil(len(train_ex) / config.batch_size)
    steps_per_epoch = max(1, micro_per_epoch // config.grad_accum)
    total_steps = config.max_steps or max(1, round(steps_per_epoch * config.epochs))
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    reg = RegularizerSchedule(
        config.lambda_query, config.lambda_doc, int(config.reg_warmup_ratio * total_steps)
    )
    use_amp, amp_dtype = _autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    run = _Run(
        config, out, device, train_ex, dev, corpus, model, inference_cfg, optimizer, scheduler, scaler,
        reg, use_amp, amp_dtype, total_steps,
    )  # fmt: skip
    _resume(run)
    (out / TRAINING_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    if dev:
        run.dev_corpus = _dev_corpus(dev, corpus, config.dev_corpus_size, config.seed)
    run.dev_qrels = {e.query_id: dict.fromkeys(e.positives, 1) for e in dev}
    run.dev_queries = {e.query_id: e.query for e in dev}
    logger.info(
        "training %s on %d queries (%d dev), %d steps of %d x %d, %d negatives, device %s",
        config.kind,
        len(train_ex),
        len(dev),
        total_steps,
        config.batch_size,
        config.grad_accum,
        config.n_negatives,
        device,
    )
    return run


def _training_model(config: TrainConfig, corpus: Mapping[str, str], device: torch.device) -> tuple[Any, Any]:
    """-> (the model in training mode, with training lengths; the inference lengths to restore)."""
    model = _prepare_model(config, corpus, device)
    model.train()
    if model.config.splade is not None and (config.query_top_k or config.doc_top_k):
        # inference-time pruning caps, stored in colsplade.json (dev evaluation applies them too)
        model.config = dataclasses.replace(
            model.config,
            splade=dataclasses.replace(
                model.config.splade, query_top_k=config.query_top_k, doc_top_k=config.doc_top_k
            ),
        )
        model.text_tokenizer.config = model.config
    inference_cfg = model.text_tokenizer.config
    if config.train_max_doc_length:
        model.text_tokenizer.config = dataclasses.replace(
            inference_cfg, max_doc_length=config.train_max_doc_length
        )
    return model, inference_cfg


def _resume(run: _Run) -> None:
    """Continue from the latest checkpoint in ``out`` (weights, optimiser, scheduler, scaler, position, RNG)."""
    ckpt = _latest_checkpoint(run.out) if run.config.resume else None
    if ckpt is None:
        return
    state = torch.load(ckpt, map_location=run.device, weights_only=False)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.step, run.epoch, run.micro_done = state["step"], state["epoch"], state["micro_done"]
    _set_rng_state(state["rng"])
    run.resumed_from = run.step
    logger.info("resumed from %s (step %d, epoch %d)", ckpt, run.step, run.epoch)


def _train_loop(run: _Run, log_file: Any, on_step: Callable[[int, dict[str, float]], None] | None) -> None:
    """Epochs of shuffled micro-batches until ``total_steps``; evaluation and checkpoints on schedule."""
    from tqdm.auto import tqdm

    config = run.config
    run.window_start = time.perf_counter()
    deadline = run.window_start + config.time_budget_s if config.time_budget_s else None
    bar = tqdm(
        total=run.total_steps,
        initial=run.step,
        disable=not config.progress,
        desc=f"train {config.kind}",
        unit="step",
    )
    try:
        while run.step < run.total_steps:
            order = list(range(len(run.train_ex)))
            random.Random(config.seed * 1000 + run.epoch).shuffle(order)
            batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
            while run.micro_done + config.grad_accum <= len(batches) and run.step < run.total_steps:
                logs = _optimizer_step(run, batches)
                _after_step(run, logs, log_file, bar)
                if on_step is not None:
                    on_step(run.step, logs)
                if config.eval_steps and run.dev and run.step % config.eval_steps == 0:
                    run.evaluate_dev(log_file)
                if config.save_steps and run.step % config.save_steps == 0 and run.step < run.total_steps:
                    _save_checkpoint(run.out, run.state())
                if deadline is not None and time.perf_counter() >= deadline and run.step < run.total_steps:
                    logger.info(
                        "time budget of %.0f s spent at step %d of %d: stopping here",
                        config.time_budget_s,
                        run.step,
                        run.total_steps,
                    )
                    run.total_steps = run.step
            if run.micro_done + config.grad_accum > len(batches):
                run.epoch += 1
                run.micro_done = 0
                if run.dev and not config.eval_steps and run.step < run.total_steps:
                    run.evaluate_dev(log_file)
    finally:
        bar.close()


def _optimizer_step(run: _Run, batches: Sequence[Sequence[int]]) -> dict[str, float]:
    """One optimisation step over ``grad_accum`` micro-batches; -> the step's logs (means)."""
    config = run.config
    acc_logs: dict[str, float] = {}
    for a in range(config.grad_accum):
        idx = run.micro_done + a
        # negatives drawn from a stream keyed on (seed, epoch, batch): a resumed run draws the same
        rng = random.Random(hash((config.seed, run.epoch, idx)) & 0xFFFFFFFF)
        batch = _make_batch(
            [run.train_ex[i] for i in batches[idx]], run.corpus, run.corpus_ids, config.n_negatives, rng
        )
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            loss, logs = _step_loss(run.model, batch, config, run.reg, run.step, run.device)
        run.scaler.scale(loss / config.grad_accum).backward()
        for key, v in logs.items():
            acc_logs[key] = acc_logs.get(key, 0.0) + v / config.grad_accum
        run.seen += len(batch.queries)
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.step += 1
    run.micro_done += config.grad_accum
    run.losses.append(acc_logs["loss"])
    return acc_logs


def _after_step(run: _Run, logs: Mapping[str, float], log_file: Any, bar: Any) -> None:
    """Progress bar, and every ``log_steps`` a line in the log file and the log."""
    elapsed = time.perf_counter() - run.window_start
    bar.set_postfix(
        loss=f"{logs['loss']:.3f}",
        q_s=f"{run.seen / max(elapsed, 1e-9):.1f}",
        **({"nnz_d": f"{logs['doc_nnz']:.0f}"} if "doc_nnz" in logs else {}),
    )
    bar.update(1)
    if run.step % run.config.log_steps == 0 or run.step == run.total_steps:
        record = {
            "step": run.step,
            "epoch": run.epoch,
            "lr": run.scheduler.get_last_lr()[0],
            "queries_per_s": run.seen / max(elapsed, 1e-9),
            **logs,
        }
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        logger.info(
            "step %d %s", run.step, {k: float(f"{v:.4g}") for k, v in record.items() if isinstance(v, float)}
        )


def _finish(run: _Run, started: float) -> TrainResult:
    """Write the model directory (inference lengths, named and versioned) and the run's summary."""
    from colsplade.training._model_dir import save_model_dir

    config, out, model = run.config, run.out, run.model
    model.text_tokenizer.config = run.inference_cfg
    model.eval()
    save_model_dir(model, out)
    _stamp_identity(out, config.name)
    wall = time.perf_counter() - started
    summary = {
        "steps": run.step,
        "wall_time_s": wall,
        "dev": run.dev_metrics,
        "resumed_from": run.resumed_from,
        "train_queries": len(run.train_ex),
        "dev_queries": len(run.dev),
        "device": str(run.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    logger.info("trained %s in %.0f s (%d steps); model directory %s", config.kind, wall, run.step, out)
    return TrainResult(out, run.step, wall, run.dev_metrics, run.resumed_from, run.losses)


def _stamp_identity(out: Path, name: str | None) -> None:
    """Name the trained model (``name``, else its directory's name) and version it by its weights.

    An index records the model name and version that encoded it and a query with another model is
    refused; two runs both called ``colsplade-splade-model`` v0 could not be told apart.
    """
    import hashlib

    from colsplade.encoders import read_model_config, write_model_config
    from colsplade.training._model_dir import WEIGHTS_FILE

    digest = hashlib.sha256()
    with (out / WEIGHTS_FILE).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    model_config = read_model_config(out)
    model_config.name = name or out.resolve().name
    model_config.version = digest.hexdigest()[:12]
    write_model_config(out, model_config)


def _state(
    model: Any, optimizer: Any, scheduler: Any, scaler: Any, step: int, epoch: int, micro_done: int
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "epoch": epoch,
        "micro_done": micro_done,
        "rng": _rng_state(),
    }


def _evaluate_dev(
    model: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    corpus: Mapping[str, str],
    step: int,
    log_file: Any,
) -> dict[str, float]:
    t = time.perf_counter()
    train_cfg = model.text_tokenizer.config
    model.text_tokenizer.config = model.config  # evaluate as the model will be used: inference lengths
    try:
        metrics = evaluate_model(model, queries, qrels, corpus)
    finally:
        model.text_tokenizer.config = train_cfg
    log_file.write(json.dumps({"step": step, "dev": metrics, "eval_s": time.perf_counter() - t}) + "\n")
    log_file.flush()
    logger.info("dev at step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
    return metrics
