"""BEIR-format loaders and retrieval metrics through a maintained library (ir-measures); torch-free.

::

    from colsplade.evaluation import download_dataset, load_beir, evaluate_run, sparse_retrieve
    download_dataset("scifact")            # once: the public BEIR zip, checked and cached
    data = load_beir("scifact", "test")    # a downloaded dataset's name, or any BEIR directory
    run = sparse_retrieve(query_vecs, doc_vecs, doc_ids, k=100)
    evaluate_run(data.qrels, run)   # {"ndcg@10": ..., "mrr@10": ..., "recall@100": ...}

On a real engine, :func:`evaluate_on_engine` indexes a BEIR dataset and runs every retrieval
:class:`Plan` (BM25, SPLADE, SPLADE + ColBERT, token ANN, hybrid) through the query client.
"""

from colsplade.evaluation._beir import BeirData, doc_text, load_beir, load_corpus, load_qrels, load_queries
from colsplade.evaluation._download import download_dataset, resolve_dataset
from colsplade.evaluation._engine_eval import (
    PLANS,
    Plan,
    compare_results,
    default_plans,
    ensure_dataset_index,
    evaluate_on_engine,
    evaluate_plans,
    results_markdown,
    write_results,
)
from colsplade.evaluation._metrics import (
    DEFAULT_METRICS,
    evaluate_run,
    maxsim_rerank,
    maxsim_retrieve,
    mean_metrics,
    per_query_metrics,
    sparse_retrieve,
    sparsity,
)

__all__ = [
    "DEFAULT_METRICS",
    "PLANS",
    "BeirData",
    "Plan",
    "compare_results",
    "default_plans",
    "doc_text",
    "download_dataset",
    "ensure_dataset_index",
    "evaluate_on_engine",
    "evaluate_plans",
    "evaluate_run",
    "load_beir",
    "load_corpus",
    "load_qrels",
    "load_queries",
    "maxsim_rerank",
    "maxsim_retrieve",
    "mean_metrics",
    "per_query_metrics",
    "resolve_dataset",
    "results_markdown",
    "sparse_retrieve",
    "sparsity",
    "write_results",
]
