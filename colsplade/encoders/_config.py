"""The model directory contract: ``colsplade.json`` (read and written without torch).

A model directory holds::

    colsplade.json          this file's settings (see :class:`ModelConfig`)
    tokenizer.json          a Hugging Face *fast* tokenizer (plus tokenizer_config.json etc.)
    config.json             the backbone's transformers config     (training only)
    model.safetensors       all weights of the torch model          (training only)
    query_weights.npy       (vocab,) float32, inference-free SPLADE query side only
    onnx/model.onnx         fp32 graph; onnx/model-int8.onnx, onnx/model-fp16.onnx variants; a joint
                            model also has each one's ColBERT-only graph (onnx/model-int8.colbert.onnx:
                            the queries of a plan that needs no SPLADE terms skip the vocabulary head)
"""

from __future__ import annotations

import dataclasses
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colsplade._types import MODEL_KINDS, ModelKind, OnnxVariant
from colsplade.exceptions import ModelDirectoryError

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "KINDS",
    "ONNX_VARIANTS",
    "SPARSE_QUERY_MODES",
    "ColbertSettings",
    "ModelConfig",
    "SpladeSettings",
    "colbert_only_file",
    "colbert_only_key",
    "position_limit",
    "read_model_config",
    "sparse_query_mode",
    "write_model_config",
]

CONFIG_FILE = "colsplade.json"
FORMAT_VERSION = 1
KINDS: tuple[ModelKind, ...] = MODEL_KINDS
#: variant name -> file inside the model directory.
ONNX_VARIANTS: dict[OnnxVariant, str] = {
    "fp32": "onnx/model.onnx",
    "int8": "onnx/model-int8.onnx",
    "fp16": "onnx/model-fp16.onnx",
}


def colbert_only_key(variant: str) -> str:
    """The ``colsplade.json`` ``onnx`` key of a joint model's ColBERT-only graph of ``variant``.

    >>> colbert_only_key("int8"), colbert_only_file("onnx/model-int8.onnx")
    ('int8:colbert', 'onnx/model-int8.colbert.onnx')
    """
    return f"{variant}:colbert"


def colbert_only_file(variant_file: str) -> str:
    """Where the ColBERT-only graph of the ONNX file ``variant_file`` lives (see :func:`colbert_only_key`)."""
    return variant_file.removesuffix(".onnx") + ".colbert.onnx"


#: ColBERT's document skiplist: ASCII punctuation, as in the ColBERT and PyLate reference code.
DEFAULT_SKIPLIST = tuple(string.punctuation)


@dataclass
class SpladeSettings:
    """SPLADE head settings.

    ``pooling``: ``max`` (SPLADE v2 / ++) or ``sum`` over tokens of ``log(1 + relu(logits))``.
    ``query_encoder``: ``model`` (the transformer encodes queries too) or ``inference_free``
    (a learned weight per vocabulary term in ``query_weights.npy``; no transformer at query time).
    ``query_top_k`` / ``doc_top_k``: keep at most this many terms (None: all);
    ``threshold``: drop terms whose weight is not above it.
    """

    pooling: str = "max"
    query_encoder: str = "model"
    query_top_k: int | None = None
    doc_top_k: int | None = None
    threshold: float = 0.0


@dataclass
class ColbertSettings:
    """ColBERT head settings.

    ``dim``: output dimension of the linear projection (128 default; 96 / 64 / 32 allowed).
    ``query_marker`` / ``doc_marker``: tokens inserted right after [CLS] (ColBERTv2: [unused0] / [unused1]).
    ``query_augmentation``: pad queries to ``max_query_length`` with [MASK] tokens, which are encoded
    (and scored) but, unless ``attend_to_mask_tokens``, not attended to.
    ``skiplist``: tokens whose document vectors are dropped (punctuation).
    """

    dim: int = 128
    query_marker: str = "[unused0]"
    doc_marker: str = "[unused1]"
    query_augmentation: bool = True
    attend_to_mask_tokens: bool = False
    skiplist: list[str] = field(default_factory=lambda: list(DEFAULT_SKIPLIST))


@dataclass
class ModelConfig:
    """Everything an encoder needs to know about a model directory (the ``colsplade.json`` file)."""

    kind: ModelKind
    name: str = "colsplade-model"
    version: str = "1"
    base_model: str | None = None
    max_query_length: int = 32
    max_doc_length: int = 256
    #: role -> token string, resolved to ids through the tokenizer.
    special_tokens: dict[str, str] = field(
        default_factory=lambda: {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"}
    )
    splade: SpladeSettings | None = None
    colbert: ColbertSettings | None = None
    #: variant name -> relative path of the ONNX file, filled in by the export.
    onnx: dict[str, str] = field(default_factory=dict)
    #: where the weights came from: {"format": "colsplade" | "naver-splade" | "colbertv2" | "pylate", ...}
    source: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelDirectoryError(f"unknown model kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind in ("splade", "joint") and self.splade is None:
            self.splade = SpladeSettings()
        if self.kind in ("colbert", "joint") and self.colbert is None:
            self.colbert = ColbertSettings()
        if self.kind == "splade":
            self.colbert = None
        if self.kind == "colbert":
            self.splade = None
        if self.splade is not None:
            if self.splade.pooling not in ("max", "sum"):
                raise ModelDirectoryError(
                    f"splade.pooling must be 'max' or 'sum', not {self.splade.pooling!r}"
                )
            if self.splade.query_encoder not in ("model", "inference_free"):
                raise ModelDirectoryError(
                    "splade.query_encoder must be 'model' or 'inference_free', "
                    f"not {self.splade.query_encoder!r}"
                )
        if self.colbert is not None and self.colbert.dim <= 0:
            raise ModelDirectoryError(f"colbert.dim must be positive, not {self.colbert.dim}")
        for name in ("max_query_length", "max_doc_length"):
            if getattr(self, name) < 4:
                raise ModelDirectoryError(f"{name} must be at least 4, not {getattr(self, name)}")

    @property
    def model_id(self) -> str:
        """``name@version``: what an index records, so a query with another model can be refused."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to ``colsplade.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Parse the ``colsplade.json`` content; unknown keys are ignored (forward compatibility)."""
        data = dict(data)
        if "kind" not in data:
            raise ModelDirectoryError(f"{CONFIG_FILE} has no 'kind' (expected one of {', '.join(KINDS)})")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelDirectoryError(
                f"{CONFIG_FILE} has format_version {version!r}; this colsplade reads up to {FORMAT_VERSION}. "
                "Upgrade colsplade."
            )
        try:
            splade = data.pop("splade", None)
            colbert = data.pop("colbert", None)
            known = {f.name for f in dataclasses.fields(cls)}
            kwargs = {k: v for k, v in data.items() if k in known}
            splade_fields = {f.name for f in dataclasses.fields(SpladeSettings)}
            colbert_fields = {f.name for f in dataclasses.fields(ColbertSettings)}
            return cls(
                **kwargs,
                splade=SpladeSettings(**{k: v for k, v in splade.items() if k in splade_fields})
                if splade
                else None,
                colbert=ColbertSettings(**{k: v for k, v in colbert.items() if k in colbert_fields})
                if colbert
                else None,
            )
        except (TypeError, AttributeError) as exc:
            raise ModelDirectoryError(f"malformed {CONFIG_FILE}: {exc}") from exc


#: How a model makes the sparse side of a query, as an index records it (``_meta.colsplade.sparse_query``):
#: ``encoder`` runs the transformer's SPLADE head on the query; ``inference-free`` weighs the query's
#: own tokens by a learned per-term table (``query_weights.npy``), a tokenizer call and a lookup.
SPARSE_QUERY_MODES = ("encoder", "inference-free")


def sparse_query_mode(config: ModelConfig) -> str | None:
    """The model's sparse query mode (one of :data:`SPARSE_QUERY_MODES`), None for a ColBERT-only model.

    >>> sparse_query_mode(ModelConfig(kind="joint", splade=SpladeSettings(query_encoder="inference_free")))
    'inference-free'
    >>> sparse_query_mode(ModelConfig(kind="splade")), sparse_query_mode(ModelConfig(kind="colbert"))
    ('encoder', None)
    """
    if config.splade is None:
        return None
    return "inference-free" if config.splade.query_encoder == "inference_free" else "encoder"


def read_model_config(model_dir: str | Path) -> ModelConfig:
    """Read ``colsplade.json`` from a model directory.

    Raises :class:`~colsplade.exceptions.ModelDirectoryError` when the directory or the file is
    missing, the JSON is malformed, or the kind is unknown.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelDirectoryError(f"model directory {str(path)!r} does not exist or is not a directory")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ModelDirectoryError(
            f"{str(path)!r} has no {CONFIG_FILE}: it is not a colsplade model directory. Create one with "
            "colsplade.training.init_model_dir(...) or convert a checkpoint with "
            "colsplade.training.import_checkpoint(...)"
        )
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"cannot read {config_path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{config_path} must hold a JSON object")
    return ModelConfig.from_dict(data)


#: ``model_max_length`` values at or above this are the tokenizers library's "no limit" sentinel.
_NO_LIMIT = 1_000_000


def position_limit(model_dir: str | Path, config: ModelConfig | None = None) -> int:
    """The longest input, in tokens, the model directory's backbone can read.

    The smaller of the backbone's ``max_position_embeddings`` (``config.json``) and the tokenizer's
    ``model_max_length`` (``tokenizer_config.json``); a directory with neither (an imported export
    without them) falls back to the longest length ``colsplade.json`` already uses, which the model was
    exported and used with.
    """
    path = Path(model_dir)
    found: list[int] = []
    for name, key in (
        ("config.json", "max_position_embeddings"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        try:
            value = json.loads((path / name).read_text(encoding="utf-8")).get(key)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < _NO_LIMIT:
            found.append(int(value))
    if found:
        return min(found)
    config = config if config is not None else read_model_config(path)
    return max(config.max_query_length, config.max_doc_length)


def write_model_config(model_dir: str | Path, config: ModelConfig) -> Path:
    """Write ``colsplade.json`` into ``model_dir`` (created if needed); returns the file's path."""
    path = Path(model_dir)
    path.mkdir(parents=True, exist_ok=True)
    out = path / CONFIG_FILE
    out.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out
