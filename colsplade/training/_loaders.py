"""Loading public checkpoints in their own formats into colsplade model directories.

* naver SPLADE: a ``BertForMaskedLM`` / ``DistilBertForMaskedLM`` directory (config.json + weights).
* ColBERTv2: a BERT checkpoint whose weights hold ``bert.*`` and ``linear.weight`` (dim x hidden), with
  ``artifact.metadata`` giving query_maxlen, doc_maxlen, markers, attend_to_mask_tokens.
* PyLate / sentence-transformers ColBERT: ``modules.json`` (Transformer at the root + ``1_Dense``),
  ``config_sentence_transformers.json`` giving prefixes, lengths, expansion and the skiplist.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from colsplade._types import CHECKPOINT_FORMATS
from colsplade.encoders import (
    CONFIG_FILE,
    DEFAULT_SKIPLIST,
    ColbertSettings,
    ModelConfig,
    SpladeSettings,
    TextTokenizer,
    position_limit,
    read_model_config,
    write_model_config,
)
from colsplade.exceptions import InvalidInputError, ModelDirectoryError
from colsplade.training._data import SUPPORTED_MODEL_TYPES
from colsplade.training._model_dir import save_model_dir
from colsplade.training._models import ColspladeModel

__all__ = [
    "detect_checkpoint_format",
    "import_checkpoint",
    "load_colbertv2",
    "load_naver_splade",
    "load_pylate",
    "load_st_sparse",
]

logger = logging.getLogger(__name__)


def _local(src: str | os.PathLike[str]) -> Path:
    """A local directory for ``src``: itself, or a hub snapshot when ``src`` is a hub id (needs network)."""
    path = Path(src)
    if path.is_dir():
        return path
    if path.exists() or str(src).startswith((".", "/")):
        raise ModelDirectoryError(f"{str(src)!r} is not a directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(src)))
    except Exception as exc:
        raise ModelDirectoryError(
            f"{str(src)!r} is neither a local directory nor a downloadable hub id: {exc}"
        ) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirectoryError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) and not isinstance(data, list):
        raise ModelDirectoryError(f"{path} holds no JSON object")
    return data  # type: ignore[return-value]


def _state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint directory (safetensors preferred; .bin loaded with weights_only)."""
    if (directory / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").is_file():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ModelDirectoryError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def detect_checkpoint_format(src: str | os.PathLike[str]) -> str:
    """Tell which layout a checkpoint directory has: one of colsplade, naver-splade, st-sparse (a
    sentence-transformers ``SparseEncoder``), st-multivector (its ``MultiVectorEncoder``), colbertv2,
    pylate."""
    path = Path(src)
    if (path / CONFIG_FILE).is_file():
        return "colsplade"
    if (path / "modules.json").is_file():
        modules = _read_json(path / "modules.json")
        types = " ".join(str(m.get("type", "")) for m in modules) if isinstance(modules, list) else ""
        st_config = _json_or_empty(path / "config_sentence_transformers.json")
        has_prefix = "query_prefix" in st_config
        model_type = st_config.get("model_type")
        if model_type == "MultiVectorEncoder" or "MultiVectorMask" in types:
            return "st-multivector"
        if "pylate" in types.lower() or ("Dense" in types and has_prefix):
            return "pylate"
        if "SpladePooling" in types or "SparseStaticEmbedding" in types or model_type == "SparseEncoder":
            return "st-sparse"
    config = _json_or_empty(path / "config.json")
    architectures = config.get("architectures") or []
    if (path / "artifact.metadata").is_file() or any("ColBERT" in a for a in architectures):
        return "colbertv2"
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return "opensearch-inference-free" if (path / "idf.json").is_file() else "naver-splade"
    raise ModelDirectoryError(
        f"cannot tell the checkpoint format of {str(path)!r}: expected colsplade.json, a PyLate "
        "modules.json, a ColBERTv2 artifact.metadata / HF_ColBERT config, or a *ForMaskedLM config.json"
    )


def _check_backbone(src: Path) -> None:
    """Refuse, before anything loads, a backbone colsplade cannot serve: one that needs its own code
    (``auto_map``: ``trust_remote_code``, never run here) or an architecture outside the supported ones."""
    config = _json_or_empty(src / "config.json")
    if config.get("auto_map"):
        raise ModelDirectoryError(
            f"{src}/config.json maps its classes to the checkpoint's own code (auto_map): loading it would "
            "need trust_remote_code, and colsplade never runs a checkpoint's code; convert it to a "
            "standard transformers architecture first"
        )
    model_type = config.get("model_type")
    if model_type is not None and model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelDirectoryError(
            f"{src} is a {model_type!r} model; colsplade imports bidirectional encoders with an MLM "
            f"vocabulary: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )


def _hidden_size(transformer_dir: Path) -> int | None:
    """The backbone's hidden size from its config.json (``hidden_size`` or DistilBERT's ``dim``)."""
    config = _json_or_empty(transformer_dir / "config.json")
    value = config.get("hidden_size", config.get("dim"))
    return int(value) if isinstance(value, int) else None


def _json_or_empty(path: Path) -> dict[str, Any]:
    """A JSON file of a checkpoint that may be absent ({} then): a module's or backbone's config."""
    return _read_json(path) if path.is_file() else {}


def _colbert_model(
    config: ModelConfig, out: Path, backbone: Any, weight: torch.Tensor, bias: torch.Tensor | None
) -> ColspladeModel:
    """The ColBERT model of an imported checkpoint: ``backbone`` with the (dim, hidden) projection
    ``weight`` (+ ``bias``), saved into ``out`` (its tokenizer and colsplade.json already there)."""
    model = ColspladeModel(config, backbone.eval(), TextTokenizer(out, config), linear_bias=bias is not None)
    assert model.linear is not None
    with torch.no_grad():
        model.linear.weight.copy_(weight.float())
        if bias is not None and model.linear.bias is not None:
            model.linear.bias.copy_(bias.float())
    save_model_dir(model, out)
    return model.eval()


def _check_projection(weight: torch.Tensor, *, rows: int | None, cols: int | None, where: Path) -> None:
    """A projection whose weight contradicts the files that describe it (its config's sizes, the
    backbone's hidden size) is refused with both sizes, before anything is copied."""
    expected = (rows if rows is not None else weight.shape[0], cols if cols is not None else weight.shape[-1])
    if weight.ndim != 2 or tuple(weight.shape) != expected:
        raise ModelDirectoryError(
            f"{where}: the projection weight is {tuple(weight.shape)}, but the checkpoint's configs say "
            f"{expected} (out x in; in = the backbone's hidden size): its files contradict each other"
        )


#: Past this many document tokens, one piece costs more per token than passages do: ModernBERT-base's
#: exported graph attends over the whole length in every layer, so its cost per token grows with the
#: length (on 2 CPU cores, int8: 0.81 ms a token at 512, 1.31 at 1,024, 2.42 at 2,048, 8.8 at 8,192 with
#: 7.6 GiB; benchmarks/results/long_context.json). Longer lengths work (parity holds to 8,192); they warn.
LONG_DOCUMENT_TOKENS = 1024


def _check_lengths(src: Path, config: ModelConfig) -> None:
    """Refuse lengths past the backbone's positions: the encoders would fail on the first long text."""
    limit = position_limit(src, config)
    if config.max_doc_length > LONG_DOCUMENT_TOKENS:
        logger.warning(
            "max_doc_length=%d: encoding one document costs time and memory that grow with the square of "
            "its length past ~%d tokens (README 'Long documents'); for long texts, passages are cheaper: "
            "ingest with --long-docs chunk",
            config.max_doc_length,
            LONG_DOCUMENT_TOKENS,
        )
    for name, value in (
        ("max_query_length", config.max_query_length),
        ("max_doc_length", config.max_doc_length),
    ):
        if value > limit:
            raise InvalidInputError(
                f"{name}={value} is past the checkpoint's limit of {limit} tokens (its position embeddings "
                f"or its tokenizer's model_max_length); use at most {limit}, and ingest longer documents "
                "with --long-docs chunk"
            )


def _start_dir(src: Path, out_dir: Path, config: ModelConfig) -> Any:
    """Write the tokenizer and colsplade.json into ``out_dir``; returns the HF tokenizer."""
    from transformers import AutoTokenizer

    _check_backbone(src)
    _check_lengths(src, config)

    if out_dir.resolve() == src.resolve():
        raise InvalidInputError("write the model directory somewhere else than the checkpoint itself")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    tokenizer.save_pretrained(str(out_dir))
    if not (out_dir / "tokenizer.json").is_file():
        raise ModelDirectoryError(f"{src} has no fast tokenizer; colsplade needs tokenizer.json")
    missing = [r for r in ("cls", "sep", "pad", "mask") if getattr(tokenizer, f"{r}_token", None) is None]
    if missing:
        raise ModelDirectoryError(
            f"{src}: the tokenizer has no {', '.join(missing)} token; colsplade frames texts with "
            "[CLS] ... [SEP], pads, and expands ColBERT queries (and keeps SPLADE's vocabulary) with the "
            "mask token, so it needs all four"
        )
    pad = tokenizer.pad_token
    if pad == tokenizer.mask_token:
        # PyLate pads with [MASK] to expand queries; colsplade expands with [MASK] and pads with the real
        # pad token (never attended to, so the choice changes no attended token's vector)
        vocab = tokenizer.get_vocab()
        pad = next((t for t in ("[PAD]", "<pad>") if t in vocab), None)
        if pad is None:
            raise ModelDirectoryError(
                f"{src}: the tokenizer pads with its mask token {tokenizer.mask_token!r} and has no [PAD] or "
                "<pad> token; colsplade needs a pad token other than the [MASK] it expands queries with"
            )
    config.special_tokens = {
        "cls": tokenizer.cls_token,
        "sep": tokenizer.sep_token,
        "pad": pad,
        "mask": tokenizer.mask_token,
    }
    write_model_config(out_dir, config)
    return tokenizer


def load_naver_splade(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pooling: str = "max",
    max_query_length: int = 32,
    max_doc_length: int = 256,
    name: str | None = None,
    version: str = "1",
    source_format: str = "naver-splade",
    query_weights: torch.Tensor | None = None,
) -> ColspladeModel:
    """A naver SPLADE masked-LM checkpoint (BERT / DistilBERT / ModernBERT) -> a ``splade`` model
    directory. ``query_weights`` (vocab,): an inference-free query side (a weight per vocabulary term)."""
    from transformers import AutoModelForMaskedLM

    path, out = _local(src), Path(out_dir)
    config = ModelConfig(
        kind="splade",
        name=name or path.name,
        version=version,
        base_model=str(src),
        max_query_length=max_query_length,
        max_doc_length=max_doc_length,
        splade=SpladeSettings(
            pooling=pooling, query_encoder="model" if query_weights is None else "inference_free"
        ),
        source={"format": source_format, "path": str(src)},
    )
    _start_dir(path, out, config)
    backbone = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    model = ColspladeModel(config, backbone, TextTokenizer(out, config))
    if query_weights is not None:
        assert model.query_weights is not None
        if query_weights.shape != model.query_weights.shape:
            raise ModelDirectoryError(
                f"{path}: the query-side table has {tuple(query_weights.shape)} weights, the document "
                f"model's vocabulary {tuple(model.query_weights.shape)}"
            )
        with torch.no_grad():
            model.query_weights.copy_(query_weights.float())
    save_model_dir(model, out)
    return model.eval()


def _checked_query_weights(weights: torch.Tensor, where: Path) -> torch.Tensor:
    """An inference-free query table colsplade reproduces: finite, no negative weight (colsplade's query
    side keeps positive terms only; a negative one would subtract in the library's dot product)."""
    weights = weights.detach().float().reshape(-1)
    if not torch.isfinite(weights).all():
        raise ModelDirectoryError(f"{where}: the query-side weights hold NaN or infinite values")
    negative = int((weights < 0).sum())
    if negative:
        raise ModelDirectoryError(
            f"{where}: {negative} query-side weights are negative; colsplade's inference-free queries keep "
            "positive term weights only, so its scores would differ from the library's"
        )
    return weights


def load_opensearch_inference_free(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_query_length: int | None = None,
    max_doc_length: int = 512,
    name: str | None = None,
    version: str = "1",
) -> ColspladeModel:
    """OpenSearch's inference-free layout (a document-side ``*ForMaskedLM`` with ``idf.json``, the
    query side's weight per token) -> a ``splade`` model directory with inference-free queries.

    The document side is SPLADE max pooling of ``log(1 + relu(logits))``; a query weighs each distinct
    token by its ``idf.json`` entry (a token missing there weighs 0). Refused with the reason: an
    ``idf.json`` naming tokens the tokenizer does not know, or holding a negative or non-numeric weight.
    """
    from transformers import AutoTokenizer

    path = _local(src)
    idf_file = path / "idf.json"
    idf = _read_json(idf_file)
    if not isinstance(idf, dict) or not idf:
        raise ModelDirectoryError(f"{idf_file} is not a non-empty object of token -> weight")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    vocab = tokenizer.get_vocab()
    unknown = [t for t in idf if t not in vocab]
    if unknown:
        raise ModelDirectoryError(
            f"{idf_file} names {len(unknown)} tokens the tokenizer does not know (e.g. {unknown[:3]}): "
            "it was written for another vocabulary"
        )
    size = int(_json_or_empty(path / "config.json").get("vocab_size") or len(vocab))
    weights = torch.zeros(size)
    for token, weight in idf.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ModelDirectoryError(f"{idf_file}: the weight of {token!r} is {weight!r}, not a number")
        weights[vocab[token]] = float(weight)
    return load_naver_splade(
        path,
        out_dir,
        pooling="max",
        max_query_length=max_query_length or min(int(tokenizer.model_max_length), 512),
        max_doc_length=max_doc_length,
        name=name or path.name,
        version=version,
        source_format="opensearch-inference-free",
        query_weights=_checked_query_weights(weights, idf_file),
    )


def load_colbertv2(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_query_length: int | None = None,
    max_doc_length: int | None = None,
    name: str | None = None,
    version: str = "1",
) -> ColspladeModel:
    """A ColBERTv2 checkpoint (``bert.*`` + ``linear.weight``, artifact.metadata) -> ``colbert`` directory."""
    from transformers import AutoConfig, AutoModel

    path, out = _local(src), Path(out_dir)
    meta = _json_or_empty(path / "artifact.metadata")
    state = _state_dict(path)
    if "linear.weight" not in state:
        raise ModelDirectoryError(f"{path} holds no 'linear.weight': not a ColBERTv2 checkpoint")
    linear = state.pop("linear.weight")
    _check_projection(linear, rows=meta.get("dim"), cols=_hidden_size(path), where=path)
    config = ModelConfig(
        kind="colbert",
        name=name or path.name,
        version=version,
        base_model=str(src),
        max_query_length=max_query_length or int(meta.get("query_maxlen", 32)),
        max_doc_length=max_doc_length or int(meta.get("doc_maxlen", 180)),
        colbert=ColbertSettings(
            dim=int(linear.shape[0]),
            query_marker=str(meta.get("query_token_id", "[unused0]")),
            doc_marker=str(meta.get("doc_token_id", "[unused1]")),
            query_augmentation=True,
            attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
            skiplist=list(DEFAULT_SKIPLIST) if meta.get("mask_punctuation", True) else [],
        ),
        source={"format": "colbertv2", "path": str(src)},
    )
    _start_dir(path, out, config)
    backbone_config = AutoConfig.from_pretrained(str(path))
    backbone = AutoModel.from_config(backbone_config, add_pooling_layer=False)
    prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = backbone.load_state_dict(weights, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise ModelDirectoryError(
            f"{path}: weights do not fit the BERT config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return _colbert_model(config, out, backbone, linear, None)


def load_pylate(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_query_length: int | None = None,
    max_doc_length: int | None = None,
    name: str | None = None,
    version: str = "1",
) -> ColspladeModel:
    """A PyLate / sentence-transformers ColBERT (Transformer + one Dense) -> a ``colbert`` directory."""
    from transformers import AutoModel

    path, out = _local(src), Path(out_dir)
    modules = _read_json(path / "modules.json")
    transformer = [m for m in modules if "Transformer" in str(m.get("type", ""))]
    dense = [m for m in modules if "Dense" in str(m.get("type", ""))]
    if len(transformer) != 1 or len(dense) != 1:
        raise ModelDirectoryError(
            f"{path}/modules.json: colsplade loads one Transformer and one Dense module, found "
            f"{len(transformer)} and {len(dense)}"
        )
    transformer_dir = path / str(transformer[0].get("path", ""))
    dense_dir = path / str(dense[0]["path"])
    dense_config = _read_json(dense_dir / "config.json")
    activation = str(dense_config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.endswith("Identity"):
        raise ModelDirectoryError(f"{dense_dir}: only an Identity activation is supported, not {activation}")
    dense_state = _state_dict(dense_dir)
    if "linear.weight" not in dense_state:
        raise ModelDirectoryError(f"{dense_dir} holds no 'linear.weight'")
    _check_projection(
        dense_state["linear.weight"],
        rows=int(dense_config["out_features"]),
        cols=_hidden_size(path / str(transformer[0].get("path", ""))),
        where=dense_dir,
    )
    st = (
        _read_json(path / "config_sentence_transformers.json")
        if (path / "config_sentence_transformers.json").is_file()
        else {}
    )
    query_prefix, doc_prefix = st.get("query_prefix", "[unused0]"), st.get("document_prefix", "[unused1]")
    config = ModelConfig(
        kind="colbert",
        name=name or path.name,
        version=version,
        base_model=str(src),
        max_query_length=max_query_length or int(st.get("query_length", 32)),
        max_doc_length=max_doc_length or int(st.get("document_length", 180)),
        colbert=ColbertSettings(
            dim=int(dense_config["out_features"]),
            query_marker=query_prefix,
            doc_marker=doc_prefix,
            query_augmentation=bool(st.get("do_query_expansion", True)),
            attend_to_mask_tokens=bool(st.get("attend_to_expansion_tokens", False)),
            skiplist=list(st.get("skiplist_words", DEFAULT_SKIPLIST)),
        ),
        source={"format": "pylate", "path": str(src)},
    )
    _start_dir(transformer_dir, out, config)
    backbone = AutoModel.from_pretrained(str(transformer_dir))
    return _colbert_model(config, out, backbone, dense_state["linear.weight"], dense_state.get("linear.bias"))


def load_st_sparse(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_query_length: int | None = None,
    max_doc_length: int | None = None,
    name: str | None = None,
    version: str = "1",
) -> ColspladeModel:
    """A sentence-transformers ``SparseEncoder`` (an MLM transformer + ``SpladePooling``) -> a ``splade``
    model directory; its pooling (max / sum) and its ``max_seq_length`` (the document length) are kept.
    An inference-free one (a ``Router``: queries through a ``SparseStaticEmbedding`` weight table,
    documents through the MLM) loads with colsplade's inference-free query side, the table as its weights.

    Refused with :class:`ModelDirectoryError`: other modules or routes, a negative query weight, an activation other than
    ``relu`` (log(1 + relu), as SPLADE), a pooled dimension other than the vocabulary, and prompts (a text
    prefix colsplade's SPLADE encoder would not add).
    """
    path = _local(src)
    modules = _read_json(path / "modules.json")
    types = [str(m.get("type", "")) for m in modules] if isinstance(modules, list) else []
    query_weights = None
    if any(t.rsplit(".", 1)[-1] in ("Router", "Asym", "SparseStaticEmbedding") for t in types):
        modules, query_weights = _inference_free_routes(path, modules)
        types = [str(m.get("type", "")) for m in modules]
    mlm = [m for m in modules if _module_class(m) in ("MLMTransformer", "Transformer")]
    pooling = [m for m in modules if _module_class(m) == "SpladePooling"]
    if len(modules) != 2 or len(mlm) != 1 or len(pooling) != 1:
        raise ModelDirectoryError(
            f"{path}/modules.json: colsplade loads a SparseEncoder of one MLM transformer and one "
            f"SpladePooling, found {', '.join(t.rsplit('.', 1)[-1] for t in types) or 'no module'}"
        )
    pool_dir = path / str(pooling[0].get("path", ""))
    pool = _json_or_empty(pool_dir / "config.json")
    activation = str(pool.get("activation_function", "relu"))
    strategy = str(pool.get("pooling_strategy", "max"))
    if activation != "relu" or strategy not in ("max", "sum"):
        raise ModelDirectoryError(
            f"{pool_dir}: colsplade computes log(1 + relu(logits)) pooled by max or sum; this SpladePooling "
            f"uses activation {activation!r} and pooling {strategy!r}"
        )
    transformer_dir = path / str(mlm[0].get("path", ""))
    vocab = _read_json(transformer_dir / "config.json").get("vocab_size")
    if pool.get("embedding_dimension") not in (None, vocab):
        raise ModelDirectoryError(
            f"{pool_dir}: a pooled dimension of {pool['embedding_dimension']} is not the vocabulary ({vocab})"
        )
    st_file = path / "config_sentence_transformers.json"
    prompts = _json_or_empty(st_file).get("prompts") or {}
    if any(prompts.values()):
        raise ModelDirectoryError(
            f"{st_file}: prompts {prompts} would be prepended to every text; colsplade's SPLADE encoder adds none"
        )
    sbert_file = transformer_dir / "sentence_bert_config.json"
    sbert = _json_or_empty(sbert_file)
    doc_length = max_doc_length or int(sbert.get("max_seq_length") or 256)
    # the library's static query side reads the whole query (to the document length); a model query 32
    query_length = max_query_length or (doc_length if query_weights is not None else 32)
    return load_naver_splade(
        transformer_dir,
        out_dir,
        pooling=strategy,
        max_query_length=query_length,
        max_doc_length=doc_length,
        name=name or path.name,
        version=version,
        source_format="st-sparse" if query_weights is None else "st-sparse-inference-free",
        query_weights=query_weights,
    )


def _inference_free_routes(path: Path, modules: Any) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """A SparseEncoder whose ``Router`` sends queries to a ``SparseStaticEmbedding`` (a weight per
    token) and documents to an MLM transformer + ``SpladePooling``: the document route's modules (with
    their paths) and the query table (vocab,)."""
    routes = _json_or_empty(path / "router_config.json")
    structure = routes.get("structure") or {}
    kinds = routes.get("types") or {}
    query, document = structure.get("query") or [], structure.get("document") or []
    query_classes = [str(kinds.get(m, "")).rsplit(".", 1)[-1] for m in query]
    if len(modules) != 1 or query_classes != ["SparseStaticEmbedding"] or not document:
        raise ModelDirectoryError(
            f"{path}: colsplade loads an inference-free SparseEncoder as a Router whose query route is one "
            f"SparseStaticEmbedding and whose document route is an MLM transformer + SpladePooling; found "
            f"query route {query_classes or 'none'}"
        )
    static_dir = path / query[0]
    weights = _state_dict(static_dir).get("weight")
    if weights is None:
        raise ModelDirectoryError(f"{static_dir} holds no 'weight' table")
    return (
        [{"path": m, "type": kinds.get(m, "")} for m in document],
        _checked_query_weights(weights, static_dir),
    )


def load_st_multivector(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_query_length: int | None = None,
    max_doc_length: int | None = None,
    name: str | None = None,
    version: str = "1",
) -> ColspladeModel:
    """A sentence-transformers v6 ``MultiVectorEncoder`` (its ColBERT: Transformer, Dense layers,
    ``MultiVectorMask``, ``Normalize``) -> a ``colbert`` model directory.

    Kept: the query and document prompts as the markers after [CLS] (each must be one token of the
    tokenizer, as PyLate's ``[Q]`` / ``[D]`` are), ``query_length`` / ``document_length``, the query
    expansion (``fixed``: [MASK] up to its length; ``attend``), the skiplist of the documents, and the
    Dense layers (identity activations), composed into one projection of any size.

    Refused with :class:`ModelDirectoryError`: other modules (token pooling, a non-identity activation),
    no ``Normalize`` (colsplade scores unit vectors), a prompt that is not one token, a skiplist applied to
    queries, an expansion colsplade cannot reproduce (``min`` below the query length, another token).
    """
    from transformers import AutoModel, AutoTokenizer

    path, out = _local(src), Path(out_dir)
    modules = _st_multivector_modules(path)
    transformer_dir = path / str(modules[0].get("path", ""))
    sbert_file = transformer_dir / "sentence_bert_config.json"
    sbert = _json_or_empty(sbert_file)
    tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir))
    markers = _st_prompt_markers(tokenizer, path / "config_sentence_transformers.json")
    expansion = sbert.get("query_expansion")
    query_length, attend = _st_query_expansion(sbert, sbert_file, tokenizer.mask_token)
    skiplist, weight, bias = _st_layers(path, modules[1:], transformer_dir)
    if weight is None:
        raise ModelDirectoryError(f"{path}: no Dense layer; colsplade needs the projection to the token dim")
    config = ModelConfig(
        kind="colbert",
        name=name or path.name,
        version=version,
        base_model=str(src),
        max_query_length=max_query_length or query_length,
        max_doc_length=max_doc_length
        or int(sbert.get("document_length") or sbert.get("max_seq_length") or 180),
        colbert=ColbertSettings(
            dim=int(weight.shape[0]),
            query_marker=markers["query"],
            doc_marker=markers["document"],
            query_augmentation=bool(expansion),
            attend_to_mask_tokens=attend,
            skiplist=skiplist,
        ),
        source={"format": "st-multivector", "path": str(src)},
    )
    _start_dir(transformer_dir, out, config)
    return _colbert_model(config, out, AutoModel.from_pretrained(str(transformer_dir)), weight, bias)


def _st_multivector_modules(path: Path) -> list[dict[str, Any]]:
    """The ``modules.json`` of a MultiVectorEncoder, checked: one Transformer first, Dense layers, a
    MultiVectorMask, Normalize last."""
    modules = _read_json(path / "modules.json")
    if not isinstance(modules, list):
        raise ModelDirectoryError(f"{path}/modules.json is not a list of modules")
    classes = [_module_class(m) for m in modules]
    known = {"Transformer", "Dense", "MultiVectorMask", "Normalize"}
    if classes[:1] != ["Transformer"] or classes.count("Transformer") != 1 or set(classes) - known:
        raise ModelDirectoryError(
            f"{path}/modules.json: colsplade loads a MultiVectorEncoder of one Transformer, Dense layers, "
            f"a MultiVectorMask and Normalize; found {', '.join(classes) or 'no module'}"
        )
    if classes[-1] != "Normalize":
        raise ModelDirectoryError(
            f"{path}: the encoder does not end with Normalize; colsplade scores unit token vectors, so "
            "MaxSim would differ from the library's"
        )
    return modules


def _st_prompt_markers(tokenizer: Any, st_file: Path) -> dict[str, str]:
    """The query and document prompts of ``config_sentence_transformers.json`` as marker tokens."""
    prompts = _json_or_empty(st_file).get("prompts") or {}
    markers = {}
    for task in ("query", "document"):
        prompt = str(prompts.get(task) or "")
        pieces = tokenizer.tokenize(prompt) if prompt.strip() else []
        if len(pieces) != 1:
            raise ModelDirectoryError(
                f"{st_file}: the {task} prompt {prompt!r} is {len(pieces)} tokens ({pieces}); colsplade puts "
                "one marker token after [CLS] (as PyLate's [Q] / [D] are): a prompt of one token is needed"
            )
        markers[task] = pieces[0]
    return markers


def _st_query_expansion(sbert: Mapping[str, Any], sbert_file: Path, mask_token: str) -> tuple[int, bool]:
    """-> (the query length, whether queries attend to their expansion tokens), from the query
    expansion of ``sentence_bert_config.json``; refused unless it is colsplade's fixed [MASK] padding."""
    query_length = int(sbert.get("query_length") or 32)
    expansion = sbert.get("query_expansion")
    if not expansion:
        return query_length, False
    strategy, length = expansion.get("strategy"), int(expansion.get("length") or 0)
    token = expansion.get("token")
    if token not in (None, mask_token):
        raise ModelDirectoryError(
            f"{sbert_file}: query expansion with {token!r}; colsplade expands queries with the mask token"
        )
    if not (strategy == "fixed" or (strategy == "min" and sbert.get("query_length") in (None, length))):
        raise ModelDirectoryError(
            f"{sbert_file}: query expansion {strategy!r} to {length} with a query length of "
            f"{sbert.get('query_length')}; colsplade expands every query to one fixed length"
        )
    return length, bool(expansion.get("attend", False))


def _st_layers(
    path: Path, modules: Sequence[Mapping[str, Any]], transformer_dir: Path
) -> tuple[list[str], torch.Tensor | None, torch.Tensor | None]:
    """-> (the documents' skiplist, the Dense layers composed into one projection: weight, bias)."""
    skiplist: list[str] = []
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    for module in modules:
        module_dir = path / str(module.get("path", ""))
        module_config = _json_or_empty(module_dir / "config.json")
        if _module_class(module) == "MultiVectorMask":
            tasks = module_config.get("skiplist_tasks") or ["document"]
            if "query" in tasks or module_config.get("keep_only_token_ids"):
                raise ModelDirectoryError(
                    f"{module_dir}: a mask over queries or by kept token ids; colsplade drops skiplist "
                    "tokens from documents only"
                )
            skiplist = [str(w) for w in module_config.get("skiplist_words") or []]
        elif _module_class(module) == "Dense":
            w, b = _st_dense(module_dir, module_config, weight, transformer_dir)
            # y = W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2): identity layers compose into one map
            carried = w @ bias if bias is not None else None
            bias = b if carried is None else carried if b is None else carried + b
            weight = w if weight is None else w @ weight
    return skiplist, weight, bias


def _st_dense(
    module_dir: Path, module_config: Mapping[str, Any], weight: torch.Tensor | None, transformer_dir: Path
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One identity-activation Dense layer's (weight, bias) in float64, its shape checked against the
    projection so far (``weight``; None: the transformer's hidden size)."""
    activation = str(module_config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.endswith("Identity") or module_config.get("use_residual"):
        raise ModelDirectoryError(
            f"{module_dir}: only Dense layers with an identity activation compose into colsplade's "
            f"projection, not {activation}"
        )
    state = _state_dict(module_dir)
    if "linear.weight" not in state:
        raise ModelDirectoryError(f"{module_dir} holds no 'linear.weight'")
    _check_projection(
        state["linear.weight"],
        rows=module_config.get("out_features"),
        cols=int(weight.shape[0]) if weight is not None else _hidden_size(transformer_dir),
        where=module_dir,
    )
    b = state.get("linear.bias")
    return state["linear.weight"].double(), b.double() if b is not None else None


def _module_class(module: Mapping[str, Any]) -> str:
    """The class name of a ``modules.json`` entry's ``type``."""
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def _copy_model_dir(src: Path, out_dir: Path, options: Mapping[str, Any]) -> None:
    """A colsplade model directory is copied; of the loaders' options only its lengths can change."""
    unknown = sorted(set(options) - {"max_query_length", "max_doc_length"})
    if unknown:
        raise InvalidInputError(
            f"a colsplade model directory is copied as it is; {', '.join(unknown)} apply to other formats"
        )
    config = read_model_config(src)
    config = dataclasses.replace(config, **{k: int(v) for k, v in options.items() if v is not None})
    _check_lengths(src, config)
    if out_dir.exists() and out_dir.resolve() == src.resolve():
        raise InvalidInputError("write the model directory somewhere else than the checkpoint itself")
    shutil.copytree(src, out_dir, dirs_exist_ok=True)
    if options:
        write_model_config(out_dir, config)


def import_checkpoint(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    format: str = "auto",
    **options: Any,
) -> Path:
    """Convert a public checkpoint (local directory or hub id) into a colsplade model directory.

    ``format``: ``auto`` (see :func:`detect_checkpoint_format`), ``naver-splade``, ``st-sparse``,
    ``st-multivector``, ``colbertv2``,
    ``pylate`` or ``colsplade`` (copied). ``options`` go to the format's loader (lengths, name, version).
    Export it to ONNX afterwards with :func:`colsplade.onnx_export.export_model_dir`.
    """
    path = _local(src)
    fmt = detect_checkpoint_format(path) if format == "auto" else format
    if fmt not in CHECKPOINT_FORMATS:
        raise InvalidInputError(
            f"format must be auto or one of {', '.join(CHECKPOINT_FORMATS)}, not {format!r}"
        )
    logger.info("importing %s checkpoint %s into %s", fmt, src, out_dir)
    if fmt == "colsplade":
        _copy_model_dir(path, Path(out_dir), options)
    elif fmt == "naver-splade":
        load_naver_splade(path, out_dir, **options)
    elif fmt == "st-sparse":
        load_st_sparse(path, out_dir, **options)
    elif fmt == "opensearch-inference-free":
        load_opensearch_inference_free(path, out_dir, **options)
    elif fmt == "st-multivector":
        load_st_multivector(path, out_dir, **options)
    elif fmt == "colbertv2":
        load_colbertv2(path, out_dir, **options)
    else:
        load_pylate(path, out_dir, **options)
    return Path(out_dir)
