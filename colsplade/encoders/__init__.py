"""Torch-free inference encoders: tokenizer + ONNX Runtime (SPLADE impacts, ColBERT token vectors)."""
