"""Query client: SPLADE retrieval on the inverted index, then ColBERT MaxSim rerank."""
