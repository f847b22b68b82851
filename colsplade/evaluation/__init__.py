"""BEIR-format loaders and retrieval metrics through a maintained library."""
