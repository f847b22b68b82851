"""BEIR-format loaders and retrieval metrics through a maintained library (ir-measures); torch-free.

::

    from colsplade.evaluation import download_dataset, load_beir, evaluate_run, sparse_retrieve
    download_dataset("scifact")            # once: the public BEIR zip, checked and cached
    data = load_beir("scifact", "test")    # a downloaded dataset's name, or any BEIR directory
    run = sparse_retrieve(query_vecs, doc_vecs, doc_ids, k=100)
    evaluate_run(data.qrels, run)   # {"ndcg@10": ..., "mrr@10": ..., "recall@100": ...}
"""

from colsplade.evaluation._beir import BeirData, doc_text, load_beir, load_corpus, load_qrels, load_queries
from colsplade.evaluation._download import download_dataset, resolve_dataset
from colsplade.evaluation._metrics import (
    DEFAULT_METRICS,
    evaluate_run,
    maxsim_rerank,
    maxsim_retrieve,
    sparse_retrieve,
    sparsity,
)

__all__ = [
    "DEFAULT_METRICS",
    "BeirData",
    "doc_text",
    "download_dataset",
    "evaluate_run",
    "load_beir",
    "load_corpus",
    "load_qrels",
    "load_queries",
    "maxsim_rerank",
    "maxsim_retrieve",
    "resolve_dataset",
    "sparse_retrieve",
    "sparsity",
]
