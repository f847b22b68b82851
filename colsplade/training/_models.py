"""The torch models: SPLADE, ColBERT and joint (one backbone, both heads)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from colsplade.encoders import ModelConfig, TextTokenizer, clean_texts, colbert_rows, splade_rows

__all__ = ["ColspladeModel", "colbert_keep_mask", "splade_pool"]

logger = logging.getLogger(__name__)


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "max") -> torch.Tensor:
    """SPLADE term weights from MLM logits.

    ``logits`` (batch, seq, vocab), ``attention_mask`` (batch, seq) -> (batch, vocab):
    ``w_j = pool_t log(1 + relu(logits[t, j]))`` over attended tokens t, pool = max or sum.
    """
    mask = attention_mask.unsqueeze(-1).to(logits.dtype)
    if pooling == "max":
        # relu and log1p are monotonic, so pool the raw logits first: one pass over the
        # (batch, seq, vocab) tensor instead of three. Unattended positions become 0, which relu
        # clips to anyway, so they never change the result.
        return torch.log1p(torch.relu((logits * mask).max(dim=1).values))
    if pooling == "sum":
        return (torch.log1p(torch.relu(logits)) * mask).sum(dim=1)
    raise ValueError(f"pooling must be 'max' or 'sum', not {pooling!r}")


def colbert_keep_mask(
    input_ids: torch.Tensor, pad_id: int, doc_marker_id: int, skiplist_ids: torch.Tensor
) -> torch.Tensor:
    """Which token vectors ColBERT keeps: (batch, seq) bool.

    Every non-[PAD] token (query [MASK] augmentation included); in documents, recognised by the
    document marker at position 1, punctuation of the skiplist is dropped as well. Keyed on the
    marker so one graph serves queries and documents.
    """
    keep = input_ids != pad_id
    if skiplist_ids.numel() and input_ids.shape[1] > 1:
        is_doc = input_ids[:, 1:2] == doc_marker_id
        skipped = (input_ids.unsqueeze(-1) == skiplist_ids.view(1, 1, -1)).any(dim=-1)
        keep = keep & ~(is_doc & skipped)
    return keep


class ColspladeModel(nn.Module):
    """SPLADE, ColBERT or joint model around one Hugging Face backbone.

    * ``splade``: ``backbone`` is a ``*ForMaskedLM``; output ``splade`` (batch, vocab).
    * ``colbert``: ``backbone`` is a bare encoder (``AutoModel``); ``linear`` projects hidden -> dim;
      outputs ``colbert`` (batch, seq, dim) unit vectors (zero where dropped) and ``colbert_mask``
      (batch, seq).
    * ``joint``: a ``*ForMaskedLM`` backbone whose last hidden states also feed ``linear``: one pass,
      both outputs.

    ``query_weights`` (vocab,) exists for the inference-free SPLADE query side.
    ``text_tokenizer`` builds inputs exactly as the ONNX encoders do.
    """

    def __init__(
        self,
        config: ModelConfig,
        backbone: nn.Module,
        text_tokenizer: TextTokenizer,
        *,
        linear_bias: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.kind = config.kind
        self.backbone = backbone
        self.text_tokenizer = text_tokenizer
        hidden = _hidden_size(backbone)
        self.linear: nn.Linear | None = None
        if config.colbert is not None:
            self.linear = nn.Linear(hidden, config.colbert.dim, bias=linear_bias)
        self.query_weights: nn.Parameter | None = None
        if config.splade is not None and config.splade.query_encoder == "inference_free":
            self.query_weights = nn.Parameter(torch.ones(_vocab_size(backbone)))
        self.register_buffer(
            "skiplist_ids", torch.tensor(text_tokenizer.skiplist_ids, dtype=torch.long), persistent=False
        )
        special = torch.zeros(_vocab_size(backbone), dtype=torch.bool)
        special[[i for i in text_tokenizer.special_ids if i < len(special)]] = True
        self.register_buffer("special_mask", special, persistent=False)
        self.pad_id = text_tokenizer.pad_id
        self.doc_marker_id = text_tokenizer.doc_marker_id if text_tokenizer.doc_marker_id is not None else -1

    @property
    def output_names(self) -> tuple[str, ...]:
        return {
            "splade": ("splade",),
            "colbert": ("colbert", "colbert_mask"),
            "joint": ("splade", "colbert", "colbert_mask"),
        }[self.kind]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``input_ids`` / ``attention_mask`` (batch, seq) int64 -> the outputs of :attr:`output_names`."""
        out: dict[str, torch.Tensor] = {}
        if self.kind == "colbert":
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            assert self.config.splade is not None
            head = _mlm_head(self.backbone)
            if head is None:  # an architecture without a known head split: the plain forward
                mlm = self.backbone(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    output_hidden_states=self.kind == "joint",
                )
                out["splade"] = splade_pool(mlm.logits, attention_mask, self.config.splade.pooling)
                hidden = mlm.hidden_states[-1] if self.kind == "joint" else None
            else:
                hidden = self.backbone.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
                # Attended tokens form a prefix of every row ([MASK] query augmentation and [PAD]
                # come last and are not attended), so the vocabulary projection -- the bulk of
                # SPLADE's cost -- only runs up to the longest attended prefix: it halves the cost
                # of an augmented joint query. Exact, as SPLADE pools attended tokens only.
                width = attention_mask.sum(dim=1).max()
                logits = head(hidden[:, :width])
                out["splade"] = splade_pool(logits, attention_mask[:, :width], self.config.splade.pooling)
        if self.linear is not None and hidden is not None:
            vectors = nn.functional.normalize(self.linear(hidden), p=2, dim=-1)
            keep = colbert_keep_mask(input_ids, self.pad_id, self.doc_marker_id, self.skiplist_ids)
            out["colbert"] = vectors * keep.unsqueeze(-1).to(vectors.dtype)
            out["colbert_mask"] = keep.to(torch.int64)
        return out

    def inference_free_queries(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The inference-free SPLADE query side: (batch, vocab), each distinct attended non-special query
        token weighted by its learned ``query_weights`` entry (negative weights count as 0), as the
        encoders compute it at query time without a transformer pass."""
        if self.query_weights is None:
            raise ValueError("this model has no inference-free query side (query_encoder='model')")
        weights = torch.relu(self.query_weights)
        present = torch.zeros(
            input_ids.shape[0], weights.shape[0], device=input_ids.device, dtype=weights.dtype
        )
        present.scatter_add_(1, input_ids, attention_mask.to(weights.dtype))
        present = present.clamp(max=1.0).masked_fill(self.special_mask, 0.0)
        return present * weights

    # -- convenience: the same contract as colsplade.encoders, in torch --------------------------------
    def tokenize(self, texts: Sequence[str | bytes], *, is_query: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> padded ``(input_ids, attention_mask)`` tensors, as the ONNX encoders build them."""
        tok = self.text_tokenizer.tokenize(clean_texts(texts), is_query=is_query)
        ids, mask = self.text_tokenizer.pad(tok.ids, tok.attended)
        device = next(self.parameters()).device
        return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

    def _vocab_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Token strings (vocab,) and the special-token mask, built once: 30k lookups per call add up."""
        cached = self.__dict__.get("_vocab_cache")
        if cached is None:
            cached = _vocab_arrays_for(self.text_tokenizer)
            self.__dict__["_vocab_cache"] = cached
        return cached

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str | bytes], *, is_query: bool, batch_size: int = 32, top_k: int | None = None
    ) -> dict[str, list[Any]]:
        """Torch reference of the encoders: ``{"splade": [dict], "colbert": [array]}`` (keys by kind).

        Length-sorted batches, input order restored; used for parity checks and benchmarks.
        """
        cleaned = clean_texts(texts)
        tok = self.text_tokenizer.tokenize(cleaned, is_query=is_query)
        vocab, excluded = self._vocab_arrays()
        threshold = self.config.splade.threshold if self.config.splade is not None else 0.0
        # Same documented result as the ONNX encoders for empty / whitespace-only texts.
        order = sorted((i for i in range(len(cleaned)) if not tok.empty[i]), key=lambda i: len(tok.ids[i]))
        results: dict[str, list[Any]] = {
            name: [None] * len(cleaned) for name in self.output_names if name != "colbert_mask"
        }
        dim = self.config.colbert.dim if self.config.colbert is not None else 0
        for i in range(len(cleaned)):
            if tok.empty[i]:
                if "splade" in results:
                    results["splade"][i] = {}
                if "colbert" in results:
                    results["colbert"][i] = np.zeros((0, dim), dtype=np.float32)
        device = next(self.parameters()).device
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = self.text_tokenizer.pad([tok.ids[i] for i in idx], [tok.attended[i] for i in idx])
            ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
            out = self(ids_t, mask_t)
            if "splade" in out and is_query and self.query_weights is not None:
                out["splade"] = self.inference_free_queries(ids_t, mask_t)
            if "splade" in out:
                dicts = splade_rows(
                    out["splade"].float().cpu().numpy(), vocab, excluded, top_k=top_k, threshold=threshold
                )
                for i, d in zip(idx, dicts, strict=True):
                    results["splade"][i] = d
            if "colbert" in out:
                rows = colbert_rows(out["colbert"].float().cpu().numpy(), out["colbert_mask"].cpu().numpy())
                for i, r in zip(idx, rows, strict=True):
                    results["colbert"][i] = r
        return results


def _vocab_arrays_for(text_tokenizer: TextTokenizer) -> tuple[np.ndarray, np.ndarray]:
    vocab = np.asarray(
        [text_tokenizer.id_to_token(i) for i in range(text_tokenizer.vocab_size)], dtype=object
    )
    excluded = np.zeros(len(vocab), dtype=bool)
    excluded[text_tokenizer.special_ids] = True
    return vocab, excluded


def _mlm_head(backbone: nn.Module) -> Any:
    """The part of a ``*ForMaskedLM`` after its base model (hidden -> logits), or None if unknown."""
    if hasattr(backbone, "cls") and hasattr(backbone.cls, "predictions"):  # BERT and relatives
        return backbone.cls
    if hasattr(backbone, "vocab_projector"):  # DistilBERT

        def distilbert_head(hidden: torch.Tensor) -> torch.Tensor:
            h = backbone.activation(backbone.vocab_transform(hidden))
            return backbone.vocab_projector(backbone.vocab_layer_norm(h))

        return distilbert_head
    if hasattr(backbone, "lm_head"):  # RoBERTa, XLM-R
        return backbone.lm_head
    if hasattr(backbone, "head") and hasattr(backbone, "decoder"):  # ModernBERT

        def modernbert_head(hidden: torch.Tensor) -> torch.Tensor:
            return backbone.decoder(backbone.head(hidden))

        return modernbert_head
    return None


def _hidden_size(backbone: nn.Module) -> int:
    config = backbone.config  # type: ignore[attr-defined]
    for name in ("hidden_size", "dim", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"cannot tell the hidden size of {type(backbone).__name__}")


def _vocab_size(backbone: nn.Module) -> int:
    return int(backbone.config.vocab_size)  # type: ignore[attr-defined]
