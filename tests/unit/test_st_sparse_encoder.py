"""A sentence-transformers SparseEncoder, written by sentence-transformers itself, imports into colsplade
and its fp32 ONNX encoder reproduces the library's own ``encode`` output: the same non-zero terms with the
same weights. Layouts colsplade cannot load are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

from colsplade.encoders import load_encoder, read_model_config  # noqa: E402
from colsplade.exceptions import ModelDirectoryError  # noqa: E402
from colsplade.onnx_export import export_model_dir  # noqa: E402
from colsplade.testing import make_tiny_base_model  # noqa: E402
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


def _sparse_encoder(tmp_path: Path, pooling: str = "max", arch: str = "bert") -> Path:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    base = make_tiny_base_model(tmp_path / "base", mlm=True, arch=arch, layers=3)
    model = SparseEncoder(
        modules=[
            Transformer(str(base), transformer_task="fill-mask"),
            SpladePooling(pooling_strategy=pooling),
        ]
    )
    out = tmp_path / "st-sparse"
    model.save(str(out))
    return out


@pytest.mark.parametrize(
    ("pooling", "arch"), [("max", "bert"), ("sum", "bert"), ("max", "modernbert"), ("max", "distilbert")]
)
def test_st_sparse_encoder_matches_the_library(tmp_path: Path, pooling: str, arch: str) -> None:
    from sentence_transformers import SparseEncoder

    src = _sparse_encoder(tmp_path, pooling, arch)
    assert detect_checkpoint_format(src) == "st-sparse"
    reference = SparseEncoder(str(src), device="cpu")
    expected = reference.encode_document(TEXTS, convert_to_tensor=True).to_dense().cpu().numpy()
    vocab = reference.tokenizer.get_vocab()

    out = import_checkpoint(src, tmp_path / "imported")
    config = read_model_config(out)
    assert config.kind == "splade" and config.splade.pooling == pooling
    assert config.source["format"] == "st-sparse"
    report = export_model_dir(out, variants=("int8",))
    assert report.variants["int8"].kendall_tau["splade"] >= 0.9, report.variants["int8"]
    encoder = load_encoder(out, variant="fp32")
    got = encoder.encode_documents(TEXTS)  # a SPLADE encoder: {token: weight}
    # colsplade never writes the special tokens ([CLS], [SEP], [MASK], [unusedN] ...): no query matches them
    special = sorted(encoder.tokenizer.special_ids)
    expected[:, special] = 0.0
    for row, terms in zip(expected, got, strict=True):
        dense = np.zeros_like(row)
        for token, weight in terms.items():
            dense[vocab[token]] = weight
        assert set(np.flatnonzero(dense)) == set(np.flatnonzero(row))  # the same non-zero terms
        assert np.abs(dense - row).max() <= 1e-4


def test_st_sparse_layouts_colsplade_cannot_load_are_refused(tmp_path: Path) -> None:
    src = _sparse_encoder(tmp_path)
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
    with pytest.raises(ModelDirectoryError, match="inference-free"):
        import_checkpoint(src, tmp_path / "c")


@pytest.mark.parametrize("change", ["auto_map", "decoder"])
def test_backbones_colsplade_cannot_serve_are_refused_before_loading(tmp_path: Path, change: str) -> None:
    src = _sparse_encoder(tmp_path)
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
