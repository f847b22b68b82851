"""Score fusion of a rerank window: keep the first stage's evidence (BM25, SPLADE) next to MaxSim (pure).

MaxSim alone throws away what the first stage knew. BM25 in particular carries exact-term and
rare-word evidence that a small ColBERT misses on corpora it was not trained on, so colsplade's fused
plans add it back. The sources' raw scores live on unrelated scales (BM25 grows with query length and
IDF, MaxSim with the number of query tokens), so they are put on one scale first:

- ``zscore``: each source standardised over the window (mean 0, standard deviation 1), then summed with
  weights. Scale-free and one weight per source; the weight barely matters between 0.5 and 1 (see
  :data:`DEFAULT_FUSION_WEIGHT`).
- ``rrf``: reciprocal rank fusion of each source's order in the window, ``Σ w / (k + rank)``. Uses no
  score at all, robust to outliers, but throws away the margins.

A candidate that one source did not return (a SPLADE candidate outside BM25's top window, say) gets that
source's lowest score in the window for ``zscore`` (it ranked below all of them) and no term for ``rrf``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from colsplade.exceptions import InvalidInputError

__all__ = [
    "DEFAULT_FUSION_WEIGHT",
    "FUSION_METHODS",
    "fuse_scores",
    "rank_fusion",
    "zscore_fusion",
    "zscores",
]

#: The fusion methods :func:`fuse_scores` knows.
FUSION_METHODS = ("zscore", "rrf")

#: The weight of each first-stage source against MaxSim's 1 in ``zscore`` fusion. Fixed in advance, not
#: tuned on any test set: in a probe over three corpora (SciFact and two others, label-free ColBERTs
#: trained on each corpus's own documents, BM25 top 100 reranked), z(MaxSim) + w z(BM25) beat the English
#: BM25 at every w in {0.25, 0.5, 1, 2}, and w = 0.5 was within 0.014 nDCG@10 of the best on each corpus.
DEFAULT_FUSION_WEIGHT = 0.5

#: The default weight of each first-stage source per method: :data:`DEFAULT_FUSION_WEIGHT` for ``zscore``;
#: plain reciprocal rank fusion (every list weighs 1) for ``rrf``.
DEFAULT_FUSION_WEIGHTS = {"zscore": DEFAULT_FUSION_WEIGHT, "rrf": 1.0}


def zscores(scores: np.ndarray) -> np.ndarray:
    """``scores`` (n,) standardised: ``(s - mean) / std``; NaN (missing) entries first take the lowest
    present score. A window whose scores are all equal (or a single candidate) standardises to zeros.

    >>> zscores(np.array([1.0, 2.0, 3.0])).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    >>> zscores(np.array([2.0, np.nan, 4.0])).round(4).tolist()
    [-0.7071, -0.7071, 1.4142]
    >>> zscores(np.array([5.0, 5.0])).tolist()
    [0.0, 0.0]
    """
    a = np.asarray(scores, dtype=np.float64).copy()
    present = ~np.isnan(a)
    if not present.any():
        return np.zeros_like(a)
    a[~present] = a[present].min()
    std = a.std()
    if not std > 1e-12:
        return np.zeros_like(a)
    out: np.ndarray = (a - a.mean()) / std
    return out


def zscore_fusion(columns: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """``Σ_source w_source · z(scores_source)`` over the window; each column (n,), NaN where missing.

    >>> zscore_fusion({"maxsim": np.array([3.0, 1.0]), "bm25": np.array([0.0, 10.0])}, {"maxsim": 1, "bm25": 0.5})
    array([ 0.5, -0.5])
    """
    columns = _checked(columns, weights)
    n = len(next(iter(columns.values())))
    fused = np.zeros(n, dtype=np.float64)
    for name, column in columns.items():
        fused += float(weights[name]) * zscores(column)
    return fused


def rank_fusion(columns: Mapping[str, np.ndarray], weights: Mapping[str, float], k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion of each column's order (highest score = rank 1): ``Σ w / (k + rank)``; a
    missing (NaN) entry adds nothing for that source. Ties share the order of their first appearance.

    >>> rank_fusion({"maxsim": np.array([3.0, 1.0]), "bm25": np.array([np.nan, 10.0])}, {"maxsim": 1, "bm25": 1}, k=1)
    array([0.5       , 0.83333333])
    """
    if k < 0:
        raise InvalidInputError(f"rrf k must be >= 0, got {k}")
    columns = _checked(columns, weights)
    n = len(next(iter(columns.values())))
    fused = np.zeros(n, dtype=np.float64)
    for name, column in columns.items():
        a = np.asarray(column, dtype=np.float64)
        present = np.flatnonzero(~np.isnan(a))
        order = present[np.argsort(-a[present], kind="stable")]
        ranks = np.empty(len(order), dtype=np.float64)
        ranks[:] = np.arange(1, len(order) + 1)
        fused[order] += float(weights[name]) / (k + ranks)
    return fused


def fuse_scores(
    columns: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    method: str = "zscore",
    *,
    rrf_k: int = 60,
) -> np.ndarray:
    """Fuse the window's per-source scores (each (n,), NaN where a source did not return the candidate)
    with ``method`` (``zscore`` or ``rrf``); higher is better.

    >>> fuse_scores({"maxsim": np.array([1.0, 2.0]), "bm25": np.array([2.0, 1.0])}, {"maxsim": 1.0, "bm25": 0.5})
    array([-0.5,  0.5])
    """
    if method == "zscore":
        return zscore_fusion(columns, weights)
    if method == "rrf":
        return rank_fusion(columns, weights, rrf_k)
    raise InvalidInputError(f"unknown fusion method {method!r}; choose one of {', '.join(FUSION_METHODS)}")


def _checked(columns: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> dict[str, np.ndarray]:
    if not columns:
        raise InvalidInputError("fusion needs at least one score column")
    out = {name: np.asarray(column, dtype=np.float64) for name, column in columns.items()}
    lengths = {len(c) for c in out.values()}
    if len(lengths) != 1:
        raise InvalidInputError(
            f"every score column must have one entry per candidate, got lengths {sorted(lengths)}"
        )
    missing = [name for name in out if name not in weights]
    if missing:
        raise InvalidInputError(f"no fusion weight for {missing}")
    bad = [name for name in out if not (np.isfinite(float(weights[name])) and float(weights[name]) >= 0)]
    if bad:
        raise InvalidInputError(f"fusion weights must be finite and >= 0; {bad} are not")
    return out
