"""The trainer: SPLADE, ColBERT and joint models from a base model on BEIR data.

CPU or CUDA (mixed precision), gradient accumulation, seeded and resumable (a checkpoint holds the
weights, optimiser, scheduler, scaler, RNG states and the position inside the epoch, so an interrupted
run continues from it exactly), dev evaluation through ir-measures, and a model directory at the end
that ``colsplade export`` takes as is (the hyper-parameters are saved next to the weights).

This module is the loop and the model it trains; its parts live next to it: the settings in
:mod:`~colsplade.training._config`, the data and batches in :mod:`~colsplade.training._inputs`, the
checkpoints in :mod:`~colsplade.training._checkpoints`, the dev evaluation in
:mod:`~colsplade.training._dev_eval`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colsplade.exceptions import InvalidInputError
from colsplade.training._checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_state,
    latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from colsplade.training._config import TRAINING_CONFIG_FILE, TrainConfig
from colsplade.training._data import TrainExample, check_base_model
from colsplade.training._dev_eval import DevSet, dev_set, evaluate_dev, evaluate_model
from colsplade.training._inputs import Batch, load_data, make_batch
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

__all__ = [
    "TRAINING_CONFIG_FILE",
    "TrainConfig",
    "TrainResult",
    "calibrate_mlm_bias",
    "evaluate_model",
    "train",
]

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"


@dataclass
class TrainResult:
    """What :func:`train` produced: the model directory, optimisation steps, wall time, last dev metrics."""

    model_dir: Path
    steps: int
    wall_time_s: float
    dev_metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    losses: list[float] = field(default_factory=list)


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
    batch: Batch,
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


def _copies_mask(batch: Batch, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """(B, N) bool: the columns that hold another copy / positive of each row's query."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    for i, cols in enumerate(batch.false_negatives):
        if cols:
            mask[i, cols] = True
    return mask


def _step_loss(
    model: Any, batch: Batch, config: TrainConfig, reg: RegularizerSchedule, step: int, device: torch.device
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
    dev_set: DevSet = field(default_factory=DevSet)
    window_start: float = field(default_factory=time.perf_counter)  # of the queries/s figures
    corpus_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.corpus_ids = list(self.corpus)

    def evaluate_dev(self, log_file: Any) -> dict[str, float]:
        """Measure the model on the dev set now (the metrics are kept as the latest)."""
        self.dev_metrics = evaluate_dev(self.model, self.dev_set, self.step, log_file)
        return self.dev_metrics

    def state(self) -> dict[str, Any]:
        """The checkpoint of the run now."""
        return checkpoint_state(
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
    train_ex, dev, corpus = load_data(config, settings)
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
    run.dev_set = dev_set(dev, corpus, config.dev_corpus_size, config.seed)
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
    ckpt = latest_checkpoint(run.out) if run.config.resume else None
    if ckpt is None:
        return
    run.step, run.epoch, run.micro_done = restore_checkpoint(
        ckpt, run.device, run.model, run.optimizer, run.scheduler, run.scaler
    )
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
                    save_checkpoint(run.out, run.state())
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
        batch = make_batch(
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
