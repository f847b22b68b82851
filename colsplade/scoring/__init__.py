"""Pure numpy scoring: MaxSim, sparse dot products, quantisation of token vectors (no I/O)."""
