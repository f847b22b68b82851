"""Query client: SPLADE retrieval on the inverted index, then ColBERT MaxSim rerank.

The pure DSL builders are public; the search client builds on them.
"""

from colsplade.query._dsl import nested_knn_query, sparse_query

__all__ = ["nested_knn_query", "sparse_query"]
