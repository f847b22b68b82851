"""A sentence-transformers SparseEncoder, written by sentence-transformers itself, imports into colsplade
and its fp32 ONNX encoder reproduces the library's own ``encode`` output: the same non-zero terms with the
same weights. Layouts colsplade cannot load are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    with pytest.raises(ModelDirectoryError, match="inference-free SparseEncoder as a Router"):
        import_checkpoint(src, tmp_path / "c")


def _inference_free_encoder(tmp_path: Path, arch: str, weights: Any = None) -> Path:
    """An inference-free SparseEncoder as sentence-transformers builds one: a Router sending queries to a
    SparseStaticEmbedding (a weight per token, IDF-like) and documents to the MLM + SpladePooling."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling, Transformer
    from transformers import AutoTokenizer

    base = make_tiny_base_model(tmp_path / "base", mlm=True, arch=arch, layers=3)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    torch.manual_seed(3)
    if weights is None:
        weights = torch.rand(len(tokenizer.get_vocab())) * 3
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(tokenizer, weight=weights, frozen=True)],
        document_modules=[Transformer(str(base), transformer_task="fill-mask"), SpladePooling("max")],
    )
    out = tmp_path / "st-inference-free"
    SparseEncoder(modules=[router], similarity_fn_name="dot", device="cpu").save(str(out))
    return out


def _check_inference_free(reference: Any, out: Path, tmp_path: Path) -> None:
    """colsplade's encoders give the library's query and document vectors, and the same dot products."""
    config = read_model_config(out)
    assert config.kind == "splade" and config.splade.query_encoder == "inference_free"
    export_model_dir(out, variants=())
    encoder = load_encoder(out, variant="fp32")
    vocab = reference.tokenizer.get_vocab()
    special = sorted(encoder.tokenizer.special_ids)
    queries = [*TEXTS[3:], "the drug and the drug again: the heart"]  # a repeated token counts once
    for want, got in (
        (reference.encode_query(queries, convert_to_tensor=True), encoder.encode_queries(queries)),
        (reference.encode_document(TEXTS, convert_to_tensor=True), encoder.encode_documents(TEXTS)),
    ):
        want = want.to_dense().cpu().numpy()
        want[:, special] = 0.0
        for row, terms in zip(want, got, strict=True):
            dense = np.zeros_like(row)
            for token, weight in terms.items():
                dense[vocab[token]] = weight
            assert set(np.flatnonzero(dense)) == set(np.flatnonzero(row))
            assert np.abs(dense - row).max() <= 1e-4


@pytest.mark.parametrize("arch", ["bert", "modernbert"])
def test_inference_free_sparse_encoder_matches_the_library(tmp_path: Path, arch: str) -> None:
    """sentence-transformers' Router layout: queries are a token lookup in colsplade too (no transformer)."""
    from sentence_transformers import SparseEncoder

    src = _inference_free_encoder(tmp_path, arch)
    assert detect_checkpoint_format(src) == "st-sparse"
    out = import_checkpoint(src, tmp_path / "imported")
    assert read_model_config(out).source["format"] == "st-sparse-inference-free"
    _check_inference_free(SparseEncoder(str(src), device="cpu"), out, tmp_path)


def test_opensearch_inference_free_layout_matches_the_library(tmp_path: Path) -> None:
    """OpenSearch's layout (a document MLM with idf.json beside it) loads as it is; the reference is
    sentence-transformers reading the same files (SparseStaticEmbedding.from_json + the MLM)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling, Transformer
    from transformers import AutoTokenizer

    src = make_tiny_base_model(tmp_path / "opensearch", mlm=True, layers=3)
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    rng = np.random.default_rng(5)
    idf = {t: round(float(rng.uniform(0.1, 4.0)), 4) for t in tokenizer.get_vocab() if not t.startswith("[")}
    (src / "idf.json").write_text(json.dumps(idf))
    assert detect_checkpoint_format(src) == "opensearch-inference-free"
    out = import_checkpoint(src, tmp_path / "imported")
    reference = SparseEncoder(
        modules=[
            Router.for_query_document(
                query_modules=[
                    SparseStaticEmbedding.from_json(str(src / "idf.json"), tokenizer, frozen=True)
                ],
                document_modules=[Transformer(str(src), transformer_task="fill-mask"), SpladePooling("max")],
            )
        ],
        similarity_fn_name="dot",
        device="cpu",
    )
    _check_inference_free(reference, out, tmp_path)
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
    src = _inference_free_encoder(tmp_path, "bert")
    static = next(src.glob("query_0_*"))
    from safetensors.torch import load_file, save_file

    state = load_file(str(static / "model.safetensors"))
    weights = state["weight"].clone()
    weights[5] = -0.5
    save_file({"weight": weights}, str(static / "model.safetensors"))
    with pytest.raises(ModelDirectoryError, match="negative"):
        import_checkpoint(src, tmp_path / "out")


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
