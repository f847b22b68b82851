"""Checking an exported graph against the torch model: exact outputs (fp32) and rankings (int8 / fp16)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from colsplade._types import OnnxVariant

__all__ = ["PARITY_DOCUMENTS", "PARITY_QUERIES", "VariantReport", "kendall_tau", "top_k_overlap"]

#: A fixed query / document set: mixed lengths so padded batches exercise the attention mask.
PARITY_QUERIES = (
    "what does the immune response do in a viral infection",
    "gene expression in tumor cells",
    "how does the drug dose change the risk of heart disease",
    "sparse neural retrieval with a search engine index",
    "blood levels of the protein in mice",
    "why is the sky blue",
)
PARITY_DOCUMENTS = (
    "The immune response to a viral infection depends on the activity of many cells.",
    "Gene expression was high in tumor cells and low in the liver.",
    "A clinical trial of a new drug: a high dose increased the risk of heart disease in patients.",
    "Sparse vectors of query and document tokens let a search engine index rank documents fast.",
    "Protein levels in the blood of mice were measured after treatment.",
    "Light from the sun is scattered by the air, so the day sky looks blue.",
    "Dogs and cats are not fish; a bird can fly.",
    "The structure of the receptor and its binding activity were studied with new methods.",
    "Brain and lung cells respond to growth factor signals through one pathway.",
    "Data analysis of the second study showed no effect of the therapy on kidney function.",
    "Retrieval models score tokens; ranking uses the dense and sparse scores.",
    "Water, fire, earth and air.",
)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors of the same items (1.0: same order).

    >>> kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]))
    1.0
    >>> kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    -1.0
    """
    n = len(x)
    if n < 2:
        return 1.0
    i, j = np.triu_indices(n, k=1)
    return float(np.mean(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])))


def top_k_overlap(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of the top-k items of ``x`` that are also in the top-k of ``y``.

    >>> top_k_overlap(np.array([3.0, 2.0, 1.0, 0.0]), np.array([3.0, 1.0, 2.0, 0.0]), 2)
    0.5
    """
    k = min(k, len(x))
    return len(set(np.argsort(-x)[:k]) & set(np.argsort(-y)[:k])) / k if k else 1.0


@dataclass
class VariantReport:
    """The check of one ONNX file.

    ``max_abs_diff``: per output, the largest absolute difference to torch over the parity batches
    (fp32 is held to the tolerance on these); ``kendall_tau`` / ``top_k_overlap``: per score type
    (``splade``, ``colbert``), the mean over the parity queries of the ranking agreement with torch
    fp32 (int8 / fp16 are held to the minimum tau on these). ``passed`` is None when the check could not
    run here (an fp16 graph that neither CUDA nor the CPU provider can run).
    """

    variant: OnnxVariant
    path: str
    size_bytes: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    kendall_tau: dict[str, float] = field(default_factory=dict)
    top_k_overlap: dict[str, float] = field(default_factory=dict)
    passed: bool | None = None
    message: str = ""
