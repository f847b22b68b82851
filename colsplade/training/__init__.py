"""Training of SPLADE, ColBERT and joint retrievers (needs the [train] extra: torch, transformers)."""
