"""Retrieval metrics through ir-measures, and exhaustive retrieval over encoded corpora (torch-free)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_METRICS",
    "evaluate_run",
    "maxsim_rerank",
    "maxsim_retrieve",
    "mean_metrics",
    "per_query_metrics",
    "sparse_retrieve",
    "sparsity",
]

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
#: our name -> the ir-measures measure it is computed with.
DEFAULT_METRICS: dict[str, str] = {"ndcg@10": "nDCG@10", "mrr@10": "RR@10", "recall@100": "R@100"}


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Mean metrics of ``run`` ({qid: {doc_id: score}}) against ``qrels`` ({qid: {doc_id: rel}}).

    Computed by ir-measures (trec_eval conventions). Every judged query counts: one missing from the run
    scores 0, so a retriever cannot look better by answering fewer queries.
    """
    return mean_metrics(per_query_metrics(qrels, run, metrics))


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the queries of a :func:`per_query_metrics` result (0 for no query).

    >>> mean_metrics({"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.5}})
    {'ndcg@10': 0.75}
    """
    names = next(iter(per_query.values()), {}).keys()
    n = max(len(per_query), 1)
    return {name: sum(values[name] for values in per_query.values()) / n for name in names}


def per_query_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Mapping[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """{qid: {metric: value}} for every judged query of ``qrels`` (0 where ``run`` has no answer for it);
    the paired per-query figures that bootstrap intervals resample."""
    import ir_measures

    metrics = dict(metrics or DEFAULT_METRICS)
    parsed = {name: ir_measures.parse_measure(m) for name, m in metrics.items()}
    qrels_rows = [
        ir_measures.Qrel(str(q), str(d), int(r)) for q, docs in qrels.items() for d, r in docs.items()
    ]
    run_rows = [
        ir_measures.ScoredDoc(str(q), str(d), float(s))
        for q, docs in run.items()
        if q in qrels
        for d, s in docs.items()
    ]
    out = {str(q): dict.fromkeys(metrics, 0.0) for q in qrels}
    for m in ir_measures.iter_calc(list(parsed.values()), qrels_rows, run_rows):
        for name, measure in parsed.items():
            if m.measure == measure and m.query_id in out:
                out[m.query_id][name] = float(m.value)
    return out


def _top_k(scores: np.ndarray, ids: Sequence[str], k: int) -> dict[str, float]:
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return {ids[i]: float(scores[i]) for i in top}


def sparse_retrieve(
    query_vectors: Mapping[str, Mapping[str, float]],
    doc_vectors: Sequence[Mapping[str, float]],
    doc_ids: Sequence[str],
    k: int = 100,
) -> Run:
    """Exhaustive SPLADE retrieval: the top ``k`` documents by sparse dot product for each query.

    ``query_vectors`` {qid: {term: weight}}; ``doc_vectors[i]`` {term: weight} of ``doc_ids[i]``.
    Scores with one sparse (queries x vocab) @ (vocab x docs) product, i.e. exactly what the engine's
    ``rank_feature`` linear clauses sum to, without the engine's 9-bit rounding.
    """
    from scipy import sparse

    vocab: dict[str, int] = {}

    def matrix(rows: Sequence[Mapping[str, float]], grow: bool) -> sparse.csr_matrix:
        indptr, indices, data = [0], [], []
        for row in rows:
            for term, weight in row.items():
                j = vocab.setdefault(term, len(vocab)) if grow else vocab.get(term)
                if j is not None and weight > 0:
                    indices.append(j)
                    data.append(weight)
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
            shape=(len(rows), len(vocab)),
        )

    docs = matrix(doc_vectors, grow=True)
    qids = list(query_vectors)
    queries = matrix([query_vectors[q] for q in qids], grow=False)
    scores = (queries @ docs.T).toarray()  # (queries, docs)
    return {q: _top_k(scores[i], doc_ids, k) for i, q in enumerate(qids)}


def maxsim_retrieve(
    query_vectors: Mapping[str, np.ndarray],
    doc_vectors: Sequence[np.ndarray],
    doc_ids: Sequence[str],
    k: int = 100,
) -> Run:
    """Exhaustive ColBERT retrieval: MaxSim of every query against every document, top ``k``.

    ``query_vectors`` {qid: (m, dim)}; ``doc_vectors[i]`` (n_i, dim) of ``doc_ids[i]``. All document
    tokens are stacked once into a (sum n_i, dim) matrix so a query costs one matrix product plus a
    segmented max (``np.maximum.reduceat``) instead of a Python loop over documents.
    """
    lengths = np.array([len(v) for v in doc_vectors])
    if (lengths == 0).any():
        # an empty document scores 0; give it one zero vector so reduceat's segments stay aligned
        doc_vectors = [v if len(v) else np.zeros((1, v.shape[-1]), np.float32) for v in doc_vectors]
        lengths = np.maximum(lengths, 1)
    tokens = np.concatenate([np.asarray(v, np.float32) for v in doc_vectors])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    run: Run = {}
    for q, qv in query_vectors.items():
        sims = np.asarray(qv, np.float32) @ tokens.T  # (m, total_tokens)
        scores = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)  # (docs,)
        run[q] = _top_k(scores, doc_ids, k)
    return run


def maxsim_rerank(
    run: Mapping[str, Mapping[str, float]],
    query_vectors: Mapping[str, np.ndarray],
    doc_vectors: Mapping[str, np.ndarray],
    k: int = 100,
    first_stage_weight: float = 0.0,
) -> Run:
    """Rerank the top ``k`` candidates of ``run`` by ColBERT MaxSim (second stage of colsplade).

    ``first_stage_weight`` w: score = MaxSim + w * first-stage score, as
    :meth:`colsplade.query.SearchClient.search` computes it (0: MaxSim alone).

    >>> q = {"q": np.array([[1.0, 0.0]], dtype=np.float32)}
    >>> d = {"a": np.array([[0.6, 0.8]], dtype=np.float32), "b": np.array([[0.8, 0.6]], dtype=np.float32)}
    >>> list(maxsim_rerank({"q": {"a": 10.0, "b": 1.0}}, q, d)["q"])
    ['b', 'a']
    >>> list(maxsim_rerank({"q": {"a": 10.0, "b": 1.0}}, q, d, first_stage_weight=0.1)["q"])
    ['a', 'b']
    """
    from colsplade.scoring import maxsim

    out: Run = {}
    for q, cands in run.items():
        top = sorted(cands.items(), key=lambda kv: -kv[1])[:k]
        scored = {
            d: float(maxsim(query_vectors[q], doc_vectors[d])) + first_stage_weight * float(s) for d, s in top
        }
        out[q] = dict(sorted(scored.items(), key=lambda kv: -kv[1]))
    return out


def sparsity(vectors: Sequence[Mapping[str, float]], vocab_size: int | None = None) -> dict[str, float]:
    """Average non-zeros of SPLADE vectors, and their ratio to ``vocab_size`` when given."""
    nnz = np.array([sum(1 for w in v.values() if w > 0) for v in vectors], dtype=np.float64)
    out = {
        "avg_nnz": float(nnz.mean()) if len(nnz) else 0.0,
        "max_nnz": float(nnz.max()) if len(nnz) else 0.0,
    }
    if vocab_size:
        out["nnz_ratio"] = out["avg_nnz"] / vocab_size
    return out
