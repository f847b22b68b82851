"""MaxSim late-interaction scoring and sparse dot products (pure numpy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "SINGLE_THREAD_PRODUCT",
    "maxsim",
    "maxsim_batch",
    "maxsim_matrix",
    "sparse_dot",
    "token_similarities",
]

#: The largest ``m * dim * n`` of one matrix product in :func:`token_similarities`. OpenBLAS (numpy's
#: wheels) runs a product up to 4 x 65,536 multiply-adds on the calling thread and spreads a larger one
#: over every core, after which its worker threads spin, waiting for more work, for a long while. A
#: rerank window's product (32 query tokens x ~7,000 tokens x 128) is ~30 M: on 2 cores it took 0.4 ms
#: of wall time but 6 ms of CPU per search, and between searches the spinning threads took the cores
#: the engine and the query encoder needed. In blocks under the limit it takes ~1 ms on one thread.
SINGLE_THREAD_PRODUCT = 1 << 18


def _as_matrix(vectors: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_tokens, dim), got shape {array.shape}")
    return array


def token_similarities(query_vectors: np.ndarray, doc_vectors: np.ndarray) -> np.ndarray:
    """(m, n) float32 dot products of the (m, dim) query tokens with the (n, dim) document tokens.

    Computed in blocks of at most :data:`SINGLE_THREAD_PRODUCT` multiply-adds each (column blocks; row
    blocks too past ``SINGLE_THREAD_PRODUCT / dim`` query rows), so a BLAS library runs every block on the
    calling thread and wakes no thread pool (see the constant). Meant for one query's or one document's
    products; a bulk product (a codec fit) is faster on the pool.

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> token_similarities(q, np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    array([[0.6, 1. , 0. ],
           [0.8, 0. , 2. ]], dtype=float32)
    """
    q = np.asarray(query_vectors, dtype=np.float32)
    d = np.asarray(doc_vectors, dtype=np.float32)
    m, n, dim = len(q), len(d), max(1, q.shape[1] if q.ndim == 2 else 1)
    rows = max(1, min(m, SINGLE_THREAD_PRODUCT // dim))  # more query rows than that: row blocks too
    cols = max(1, SINGLE_THREAD_PRODUCT // (rows * dim))
    if m <= rows and n <= cols:
        out: np.ndarray = q @ d.T
        return out
    out = np.empty((m, n), dtype=np.float32)
    for top in range(0, m, rows):
        for start in range(0, n, cols):
            np.matmul(
                q[top : top + rows],
                d[start : start + cols].T,
                out=out[top : top + rows, start : start + cols],
            )
    return out


def maxsim(query_vectors: np.ndarray, doc_vectors: np.ndarray) -> float:
    """ColBERT late interaction: ``sum_i max_j q_i . d_j``.

    ``query_vectors`` is (m, dim), ``doc_vectors`` is (n, dim). A document without tokens (n == 0)
    scores 0.0, as does a query without tokens.

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> d = np.array([[0.6, 0.8], [1.0, 0.0]])
    >>> round(maxsim(q, d), 6)
    1.8
    >>> maxsim(q, np.zeros((0, 2)))
    0.0
    """
    q = _as_matrix(query_vectors, "query_vectors")
    d = _as_matrix(doc_vectors, "doc_vectors")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"dimension mismatch: query dim {q.shape[1]} != document dim {d.shape[1]}")
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    return float(token_similarities(q, d).max(axis=1).sum())


def maxsim_batch(
    query_vectors: np.ndarray, docs: Sequence[np.ndarray], *, chunk_tokens: int = 1 << 20
) -> np.ndarray:
    """MaxSim of one query against many documents of varying length.

    ``query_vectors`` is (m, dim); ``docs`` holds (n_k, dim) arrays. Returns a float32 array of
    shape (len(docs),). Documents are padded into one (chunk, n_max, dim) block per chunk so the
    work is a few matrix products rather than one Python loop iteration per document;
    ``chunk_tokens`` bounds the padded block's size (documents x longest document).

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> maxsim_batch(q, [np.array([[0.6, 0.8], [1.0, 0.0]]), np.array([[0.0, 1.0]]), np.zeros((0, 2))])
    array([1.8, 1. , 0. ], dtype=float32)
    """
    q = _as_matrix(query_vectors, "query_vectors")
    scores = np.zeros(len(docs), dtype=np.float32)
    if q.shape[0] == 0 or len(docs) == 0:
        return scores
    mats = [_as_matrix(d, "document vectors") for d in docs]
    for k, m in enumerate(mats):
        if m.shape[0] and m.shape[1] != q.shape[1]:
            raise ValueError(f"document {k} has dim {m.shape[1]}, the query has dim {q.shape[1]}")
    # Sorting by length keeps padding small inside each chunk.
    order = np.argsort([m.shape[0] for m in mats], kind="stable")
    start = 0
    while start < len(order):
        n_max = max(mats[order[start]].shape[0], 1)
        stop = start
        while stop < len(order):
            n_max = max(n_max, mats[order[stop]].shape[0])
            if (stop - start + 1) * n_max > chunk_tokens and stop > start:
                break
            stop += 1
        idx = order[start:stop]
        n_max = max(max(mats[i].shape[0] for i in idx), 1)
        block = np.zeros((len(idx), n_max, q.shape[1]), dtype=np.float32)
        valid = np.zeros((len(idx), n_max), dtype=bool)
        for row, i in enumerate(idx):
            n = mats[i].shape[0]
            block[row, :n] = mats[i]
            valid[row, :n] = True
        sims = np.einsum("md,bnd->bmn", q, block)  # (chunk, m, n_max)
        sims = np.where(valid[:, None, :], sims, -np.inf)
        best = sims.max(axis=2)  # (chunk, m)
        best = np.where(np.isfinite(best), best, 0.0)  # empty documents score 0
        scores[idx] = best.sum(axis=1)
        start = stop
    return scores


def maxsim_matrix(queries: Sequence[np.ndarray], docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of every query against every document: a float32 array of shape (len(queries), len(docs)).

    >>> q = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]
    >>> maxsim_matrix(q, [np.array([[0.6, 0.8]])])
    array([[0.6],
           [0.8]], dtype=float32)
    """
    out = np.zeros((len(queries), len(docs)), dtype=np.float32)
    for i, q in enumerate(queries):
        out[i] = maxsim_batch(q, docs)
    return out


def sparse_dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Dot product of two sparse vectors given as ``{term: weight}`` dicts (SPLADE scores).

    >>> sparse_dot({"cat": 1.5, "dog": 0.5}, {"cat": 2.0, "fish": 1.0})
    3.0
    >>> sparse_dot({}, {"cat": 1.0})
    0.0
    """
    if len(a) > len(b):
        a, b = b, a
    return float(sum(w * b[t] for t, w in a.items() if t in b))
