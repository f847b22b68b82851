"""Sparse checkpoints written by the library that defines their format import into colsplade, and its
fp32 ONNX encoders reproduce that library's own ``encode`` output: the same non-zero terms with the same
weights. sentence-transformers' ``SparseEncoder`` (max / sum pooling; BERT, DistilBERT, ModernBERT), its
inference-free ``Router`` layout and OpenSearch's inference-free layout (document MLM + ``idf.json``),
whose queries colsplade serves with its inference-free query side. Layouts colsplade cannot load are
refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

from colsplade.encoders import load_encoder, read_model_config  # noqa: E402
from colsplade.exceptions import ModelDirectoryError  # noqa: E402
from colsplade.onnx_export import export_model_dir  # noqa: E402
from colsplade.testing import (  # noqa: E402
    compare_with_reference,
    reference_encoder,
    write_reference_checkpoint,
)
from colsplade.training import detect_checkpoint_format, import_checkpoint  # noqa: E402

TEXTS = [
    "The immune response of mice to the virus, and its effect.",
    "A drug dose changes the heart: the risk increases!",
    "Gene expression in cells.",
    "what does the drug do to the heart?",
    # longer than the tiny ModernBERT's sliding window (32 tokens): its local attention is crossed
    "Cells of the immune system respond to a virus in mice; the drug dose, the heart and the risk of "
    "gene expression all change, and the effect increases with each dose of the drug in the cells.",
]
# within colsplade's default query length (32 tokens; the library reads up to its max_seq_length); a
# repeated token counts once
QUERIES = [TEXTS[3], "the drug and the drug again: the heart", "immune"]


def _matches(fmt: str, src: Path, out: Path, *, int8: bool = True) -> None:
    """colsplade's fp32 encoder gives the reference's query and document vectors (terms and weights)."""
    report = export_model_dir(out, variants=("int8",) if int8 else ())
    if int8:
        assert report.variants["int8"].kendall_tau["splade"] >= 0.9, report.variants["int8"]
    reference = reference_encoder(fmt, src)
    encoder = load_encoder(out, variant="fp32")
    for texts, is_query in ((TEXTS, False), (QUERIES, True)):
        compared = compare_with_reference(reference, encoder, texts, is_query=is_query)
        assert compared["nonzero_terms_equal"] and compared["max_abs_diff"] <= 1e-4, compared


@pytest.mark.parametrize(
    ("pooling", "arch"),
    [("max", "bert"), ("sum", "bert"), ("max", "modernbert"), ("max", "distilbert"), ("max", "xlm-roberta")],
)
def test_st_sparse_encoder_matches_the_library(tmp_path: Path, pooling: str, arch: str) -> None:
    src = write_reference_checkpoint("st-sparse", tmp_path, arch=arch, pooling=pooling)
    assert detect_checkpoint_format(src) == "st-sparse"
    out = import_checkpoint(src, tmp_path / "imported")
    config = read_model_config(out)
    assert config.kind == "splade" and config.splade.pooling == pooling
    assert config.source["format"] == "st-sparse" and config.splade.query_encoder == "model"
    _matches("st-sparse", src, out)


@pytest.mark.parametrize("arch", ["bert", "modernbert"])
def test_inference_free_sparse_encoder_matches_the_library(tmp_path: Path, arch: str) -> None:
    """sentence-transformers' Router layout: queries are a token lookup in colsplade too (no transformer)."""
    src = write_reference_checkpoint("st-sparse-inference-free", tmp_path, arch=arch)
    assert detect_checkpoint_format(src) == "st-sparse"
    out = import_checkpoint(src, tmp_path / "imported")
    config = read_model_config(out)
    assert config.source["format"] == "st-sparse-inference-free"
    assert config.splade.query_encoder == "inference_free"
    _matches("st-sparse-inference-free", src, out, int8=False)


def test_opensearch_inference_free_layout_matches_the_library(tmp_path: Path) -> None:
    """OpenSearch's layout (a document MLM with idf.json beside it) loads as it is; the reference is
    sentence-transformers reading the same files (SparseStaticEmbedding.from_json + the MLM)."""
    src = write_reference_checkpoint("opensearch-inference-free", tmp_path)
    assert detect_checkpoint_format(src) == "opensearch-inference-free"
    out = import_checkpoint(src, tmp_path / "imported")
    assert read_model_config(out).splade.query_encoder == "inference_free"
    _matches("opensearch-inference-free", src, out, int8=False)
    # bad tables: a token of another vocabulary, a negative weight, a weight that is not a number
    for bad, match in (
        ({"zzz-unknown": 1.0}, "does not know"),
        ({"drug": -1.0}, "negative"),
        ({"drug": "x"}, "not a number"),
    ):
        (src / "idf.json").write_text(json.dumps(bad))
        with pytest.raises(ModelDirectoryError, match=match):
            import_checkpoint(src, tmp_path / f"bad-{match[:3]}")


def test_inference_free_with_negative_weights_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = write_reference_checkpoint("st-sparse-inference-free", tmp_path)
    static = next(src.glob("query_0_*"))
    weights = load_file(str(static / "model.safetensors"))["weight"].clone()
    weights[5] = -0.5
    save_file({"weight": weights}, str(static / "model.safetensors"))
    with pytest.raises(ModelDirectoryError, match="negative"):
        import_checkpoint(src, tmp_path / "out")


def test_st_sparse_layouts_colsplade_cannot_load_are_refused(tmp_path: Path) -> None:
    src = write_reference_checkpoint("st-sparse", tmp_path)
    modules = json.loads((src / "modules.json").read_text())
    with_prompts = json.loads((src / "config_sentence_transformers.json").read_text())
    with_prompts["prompts"] = {"query": "query: ", "document": "passage: "}
    (src / "config_sentence_transformers.json").write_text(json.dumps(with_prompts))
    with pytest.raises(ModelDirectoryError, match="prompts"):
        import_checkpoint(src, tmp_path / "a")
    with_prompts["prompts"] = {"query": "", "document": ""}
    (src / "config_sentence_transformers.json").write_text(json.dumps(with_prompts))
    pool = src / "1_SpladePooling" / "config.json"
    pool.write_text(json.dumps({**json.loads(pool.read_text()), "activation_function": "log1p_relu"}))
    with pytest.raises(ModelDirectoryError, match="log1p_relu"):
        import_checkpoint(src, tmp_path / "b")
    router = [
        *modules,
        {"idx": 2, "name": "2", "path": "", "type": "sentence_transformers.base.modules.Router"},
    ]
    (src / "modules.json").write_text(json.dumps(router))
    with pytest.raises(ModelDirectoryError, match="inference-free SparseEncoder as a Router"):
        import_checkpoint(src, tmp_path / "c")


@pytest.mark.parametrize("change", ["auto_map", "decoder"])
def test_backbones_colsplade_cannot_serve_are_refused_before_loading(tmp_path: Path, change: str) -> None:
    src = write_reference_checkpoint("st-sparse", tmp_path)
    config = json.loads((src / "config.json").read_text())
    if change == "auto_map":  # its own modelling code: would need trust_remote_code, never run here
        config["auto_map"] = {"AutoModelForMaskedLM": "modeling_custom.CustomForMaskedLM"}
        match = "trust_remote_code"
    else:  # a decoder-only architecture
        config["model_type"] = "llama"
        match = "bidirectional encoders"
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match=match):
        import_checkpoint(src, tmp_path / "out")
    assert not (tmp_path / "out" / "colsplade.json").exists()
