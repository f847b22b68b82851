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
    vocab: Sequence[str],
    excluded: np.ndarray,
    *,
    top_k: int | None,
    threshold: float,
) -> list[dict[str, float]]:
    """SPLADE output (batch, vocab) -> one pruned dict per row; ``excluded`` (vocab,) bool drops specials."""
    w = np.where(excluded[None, : weights.shape[1]], 0.0, weights)
    return [prune_splade_row(row, vocab, top_k=top_k, threshold=threshold) for row in w]


def colbert_rows(vectors: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """ColBERT output vectors (batch, seq, dim) + mask (batch, seq) -> (n_tokens, dim) float32 per row."""
    keep = mask.astype(bool)
    return [np.ascontiguousarray(vectors[b][keep[b]], dtype=np.float32) for b in range(vectors.shape[0])]
