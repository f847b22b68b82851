"""The settings of a training run: :class:`TrainConfig`, read from a JSON / TOML file or flags, and checked.

Pure (no torch): the command line builds and validates a config before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colsplade._types import MODEL_KINDS, ModelKind
from colsplade.exceptions import InvalidInputError

__all__ = ["LOSSES", "TRAINING_CONFIG_FILE", "TrainConfig"]

#: the hyper-parameters of the run that produced a model directory.
TRAINING_CONFIG_FILE = "training_config.json"
LOSSES = ("infonce", "margin", "marginmse", "kl")


@dataclass
class TrainConfig:
    """Every setting of a training run (see ``colsplade train --help`` for the flags).

    Data: ``data`` a BEIR directory or a downloaded dataset's name (``split`` trains; ``dev_split``
    evaluates, else ``dev_queries`` are held out of the training split) or ``triples`` a JSONL file (see
    :func:`colsplade.training.load_training_jsonl`). ``negatives``: ``bm25`` (mined on the engine at
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
        """A config from plain values (a parsed file, flags); unknown settings are refused, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"unknown training settings {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (what ``training_config.json`` holds)."""
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
