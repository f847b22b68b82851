"""Training of SPLADE, ColBERT and joint retrievers (needs the [train] extra: torch, transformers).

This part holds the models and their directories: :class:`ColspladeModel`, :func:`init_model_dir`
(an untrained starting point from a base model), :func:`import_checkpoint` (naver SPLADE, ColBERTv2,
PyLate / sentence-transformers ColBERT), :func:`load_model_dir` / :func:`save_model_dir`.
Tiny random models for tests are in :mod:`colsplade.testing`.
"""

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    from colsplade.exceptions import MissingExtraError

    raise MissingExtraError(exc.name or "torch", "train") from exc

from colsplade.training._config import TrainConfig
from colsplade.training._data import (
    TrainExample,
    check_base_model,
    examples_from_beir,
    load_training_jsonl,
    split_dev,
    validate_examples,
)
from colsplade.training._dev_eval import evaluate_model
from colsplade.training._loaders import (
    detect_checkpoint_format,
    import_checkpoint,
    load_colbertv2,
    load_naver_splade,
    load_opensearch_inference_free,
    load_pylate,
    load_st_multivector,
    load_st_sparse,
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
from colsplade.training._model_dir import init_model_dir, load_model_dir, resolve_base_model, save_model_dir
from colsplade.training._models import ColspladeModel, colbert_keep_mask, splade_pool
from colsplade.training._negatives import (
    load_negatives,
    mine_bm25_negatives,
    sample_negatives,
    save_negatives,
)
from colsplade.training._teacher import teacher_rankings
from colsplade.training._trainer import TrainResult, calibrate_mlm_bias, train

__all__ = [
    "ColspladeModel",
    "RegularizerSchedule",
    "TrainConfig",
    "TrainExample",
    "TrainResult",
    "calibrate_mlm_bias",
    "check_base_model",
    "colbert_keep_mask",
    "colbert_scores",
    "detect_checkpoint_format",
    "evaluate_model",
    "examples_from_beir",
    "flops_regularizer",
    "import_checkpoint",
    "info_nce_loss",
    "init_model_dir",
    "kl_distillation_loss",
    "l1_regularizer",
    "listwise_distillation_loss",
    "load_colbertv2",
    "load_model_dir",
    "load_naver_splade",
    "load_negatives",
    "load_opensearch_inference_free",
    "load_pylate",
    "load_st_multivector",
    "load_st_sparse",
    "load_training_jsonl",
    "margin_mse_loss",
    "margin_ranking_loss",
    "mine_bm25_negatives",
    "resolve_base_model",
    "sample_negatives",
    "save_model_dir",
    "save_negatives",
    "sparsity_stats",
    "splade_pool",
    "splade_scores",
    "split_dev",
    "teacher_false_negatives",
    "teacher_rankings",
    "train",
    "validate_examples",
]
