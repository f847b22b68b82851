"""Ingest pipeline: sources -> validate -> chunk -> encode -> bulk write, with checkpoints and dead letters."""
