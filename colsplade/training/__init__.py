"""Training of SPLADE, ColBERT and joint retrievers (needs the [train] extra: torch, transformers).

This part holds the models and their directories: :class:`ColspladeModel`, :func:`init_model_dir`
(an untrained starting point from a base model), :func:`import_checkpoint` (naver SPLADE, ColBERTv2,
PyLate / sentence-transformers ColBERT), :func:`load_model_dir` / :func:`save_model_dir`.
"""

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    from colsplade.exceptions import MissingExtraError

    raise MissingExtraError(exc.name or "torch", "train") from exc

from colsplade.training._loaders import (
    detect_checkpoint_format,
    import_checkpoint,
    load_colbertv2,
    load_naver_splade,
    load_pylate,
)
from colsplade.training._model_dir import init_model_dir, load_model_dir, resolve_base_model, save_model_dir
from colsplade.training._models import ColspladeModel, colbert_keep_mask, splade_pool
from colsplade.training._tiny import (
    TINY_WORDS,
    make_tiny_base_model,
    make_tiny_model_dir,
    make_tiny_tokenizer,
)

__all__ = [
    "TINY_WORDS",
    "ColspladeModel",
    "colbert_keep_mask",
    "detect_checkpoint_format",
    "import_checkpoint",
    "init_model_dir",
    "load_colbertv2",
    "load_model_dir",
    "load_naver_splade",
    "load_pylate",
    "make_tiny_base_model",
    "make_tiny_model_dir",
    "make_tiny_tokenizer",
    "resolve_base_model",
    "save_model_dir",
    "splade_pool",
]
