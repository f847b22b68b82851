"""A first run says what colsplade does in its own words: no table of "missing" weights for the MLM head
colsplade initialises on purpose, no ONNX Runtime advice about pre-processing before quantisation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("torch")

from colsplade.onnx_export import export_model_dir
from colsplade.testing import make_tiny_base_model
from colsplade.training import init_model_dir


def test_init_and_export_log_no_warnings_for_what_colsplade_does_on_purpose(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a bare encoder, like all-MiniLM-L6-v2: no MLM head. Fewer positions than vocabulary rows, as in every
    # real model (the graph optimiser warns about a tiny vocabulary smaller than the position table).
    base = make_tiny_base_model(tmp_path / "base", max_positions=128)
    with caplog.at_level(logging.INFO):
        out = init_model_dir("joint", tmp_path / "m", base=str(base), max_query_length=16, max_doc_length=48)
        export_model_dir(out, variants=("int8",))
    warnings = [f"{r.name}: {r.getMessage()[:120]}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    said = [r.getMessage() for r in caplog.records if r.name.startswith("colsplade")]
    assert any("has no MLM head; initialising it from the tied word embeddings" in m for m in said)
    # the filters are gone afterwards: the application's own warnings still show
    logging.getLogger("transformers.modeling_utils").warning("an application warning")
    logging.getLogger().warning("a root warning")
    assert [r.getMessage() for r in caplog.records[-2:]] == ["an application warning", "a root warning"]
