"""Turning raw model outputs into what callers store: pruned impact dicts and token-vector arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["colbert_rows", "prune_splade_row", "splade_rows"]


def prune_splade_row(
    weights: np.ndarray, vocab: Sequence[str], *, top_k: int | None, threshold: float
) -> dict[str, float]:
    """One SPLADE vector (vocab,) -> ``{token: weight}``, highest weight first.

    Keeps weights strictly above ``threshold`` (the engines' ``rank_features`` reject zeros), then at
    most ``top_k`` of them.
    """
    keep = np.flatnonzero(weights > threshold)
    if top_k is not None and keep.size > top_k:
        keep = keep[np.argpartition(-weights[keep], top_k - 1)[:top_k]]
    keep = keep[np.argsort(-weights[keep], kind="stable")]
    return {vocab[i]: float(weights[i]) for i in keep}


def splade_rows(
    weights: np.ndarray,
    vocab: Sequence[str] | np.ndarray,
    excluded: np.ndarray,
    *,
    top_k: int | None,
    threshold: float,
) -> list[dict[str, float]]:
    """SPLADE output (batch, vocab) -> one pruned dict per row, highest weight first.

    ``excluded`` (vocab,) bool drops special tokens. Vectorised over the batch: selection and sorting
    happen in numpy, and each dict is built from two lists in one call, because an untrained or
    lightly regularised model can put tens of thousands of terms above zero.

    A model whose vocabulary is padded past its tokenizer's (ModernBERT: 50,368 rows for 50,280 tokens,
    a multiple of 64 for speed) has output columns no text can produce and no token names: they are cut.

    >>> rows = splade_rows(np.array([[0.0, 2.0, 1.0, 9.0]]), ["[CLS]", "cat", "dog"],
    ...                    np.array([True, False, False]), top_k=None, threshold=0.0)
    >>> rows
    [{'cat': 2.0, 'dog': 1.0}]
    """
    tokens = vocab if isinstance(vocab, np.ndarray) else np.asarray(vocab, dtype=object)
    w = np.array(weights[:, : len(tokens)], dtype=np.float32, copy=True)
    w[:, excluded[: w.shape[1]]] = 0.0
    n_rows, n_vocab = w.shape
    if top_k is not None and top_k < n_vocab:
        if top_k <= 0:
            return [{} for _ in range(n_rows)]
        cols = np.argpartition(-w, top_k - 1, axis=1)[:, :top_k]  # (batch, top_k), unordered
        vals = np.take_along_axis(w, cols, axis=1)
    else:
        cols = np.broadcast_to(np.arange(n_vocab), w.shape)
        vals = w
    out = []
    for row in range(n_rows):
        keep = np.flatnonzero(vals[row] > threshold)
        order = keep[np.argsort(-vals[row][keep], kind="stable")]
        ids = cols[row][order]
        out.append(dict(zip(tokens[ids].tolist(), vals[row][order].tolist(), strict=True)))
    return out


def colbert_rows(vectors: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """ColBERT output vectors (batch, seq, dim) + mask (batch, seq) -> (n_tokens, dim) float32 per row."""
    keep = mask.astype(bool)
    return [np.ascontiguousarray(vectors[b][keep[b]], dtype=np.float32) for b in range(vectors.shape[0])]
