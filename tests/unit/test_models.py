"""Torch models: pooling math by hand, ColBERT masks, building and reloading model directories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colsplade.encoders import read_model_config  # noqa: E402
from colsplade.exceptions import InvalidInputError, ModelDirectoryError  # noqa: E402
from colsplade.testing import make_tiny_base_model  # noqa: E402
from colsplade.training import (  # noqa: E402
    colbert_keep_mask,
    init_model_dir,
    load_model_dir,
    save_model_dir,
    splade_pool,
)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_base_model(tmp_path_factory.mktemp("base") / "tiny")


def test_splade_pool_hand_computed() -> None:
    # batch 1, 3 tokens (the last one padding), vocab 3
    logits = torch.tensor([[[1.0, -2.0, 0.5], [3.0, -1.0, -0.5], [9.0, 9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    max_pooled = splade_pool(logits, mask, "max")
    # term 0: max(log(2), log(4)) = log 4; term 1: both negative -> 0; term 2: log(1.5); padding ignored
    assert max_pooled[0].tolist() == pytest.approx([math.log(4.0), 0.0, math.log(1.5)], abs=1e-6)
    sum_pooled = splade_pool(logits, mask, "sum")
    assert sum_pooled[0].tolist() == pytest.approx(
        [math.log(2.0) + math.log(4.0), 0.0, math.log(1.5)], abs=1e-6
    )
    with pytest.raises(ValueError):
        splade_pool(logits, mask, "mean")


def test_colbert_keep_mask_skips_punctuation_in_documents_only() -> None:
    pad, q_marker, d_marker, comma = 0, 1, 2, 9
    skip = torch.tensor([comma])
    ids = torch.tensor(
        [
            [4, q_marker, 7, comma, 5, 6, 6],  # query: [MASK]=6 augmentation kept, comma kept
            [4, d_marker, 7, comma, 5, pad, pad],  # document: comma and padding dropped
        ]
    )
    keep = colbert_keep_mask(ids, pad, d_marker, skip)
    assert keep.int().tolist() == [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 1, 0, 0]]


@pytest.mark.parametrize("kind", ["splade", "colbert", "joint"])
def test_init_model_dir_and_reload(tmp_path: Path, tiny_base: Path, kind: str) -> None:
    out = init_model_dir(kind, tmp_path / kind, base=tiny_base, dim=8, max_query_length=12, max_doc_length=40)
    config = read_model_config(out)
    assert config.kind == kind
    assert (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    assert (config.colbert is not None) == (kind != "splade")
    assert (config.splade is not None) == (kind != "colbert")
    model = load_model_dir(out)
    texts = ["the cells of the immune response, in mice", "dog"]
    docs = model.encode(texts, is_query=False)
    queries = model.encode(texts, is_query=True)
    if kind != "colbert":
        assert all(isinstance(d, dict) and d for d in docs["splade"])
        assert all(w > 0 for d in docs["splade"] for w in d.values())
    if kind != "splade":
        # queries are augmented to max_query_length; documents drop the comma
        assert [q.shape for q in queries["colbert"]] == [(12, 8), (12, 8)]
        assert docs["colbert"][0].shape == (11, 8)  # [CLS] [D] 8 words [SEP]
        assert np.allclose(np.linalg.norm(docs["colbert"][0], axis=1), 1.0, atol=1e-5)
    # save -> load gives the same outputs
    save_model_dir(model, tmp_path / f"{kind}-copy")
    again = load_model_dir(tmp_path / f"{kind}-copy")
    ids, mask = model.tokenize(texts, is_query=False)
    a, b = model(ids, mask), again(ids, mask)
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float())


def test_mlm_head_initialised_from_tied_embeddings(tmp_path: Path, tiny_base: Path) -> None:
    out = init_model_dir("splade", tmp_path / "s", base=tiny_base)
    assert read_model_config(out).source["mlm_head"] == "tied-init"
    model = load_model_dir(out)
    bert = model.backbone
    decoder = bert.cls.predictions.decoder.weight
    assert torch.equal(decoder, bert.bert.embeddings.word_embeddings.weight)
    dense = bert.cls.predictions.transform.dense
    assert torch.equal(dense.weight, torch.eye(dense.weight.shape[0]))
    assert torch.count_nonzero(bert.cls.predictions.bias) == 0
    # a word's own term is among its strongest SPLADE weights: lexical from the start
    weights = model.encode(["cancer"], is_query=False)["splade"][0]
    assert "cancer" in list(weights)[:3]


def test_mlm_checkpoint_keeps_its_head(tmp_path: Path) -> None:
    base = make_tiny_base_model(tmp_path / "mlm", mlm=True)
    out = init_model_dir("joint", tmp_path / "j", base=base, dim=8)
    assert read_model_config(out).source["mlm_head"] == "pretrained"


def test_inference_free_query_side(tmp_path: Path, tiny_base: Path) -> None:
    out = init_model_dir("splade", tmp_path / "if", base=tiny_base, query_encoder="inference_free")
    assert (out / "query_weights.npy").is_file()
    model = load_model_dir(out)
    assert (
        model.query_weights is not None and model.query_weights.shape[0] == model.backbone.config.vocab_size
    )


def test_init_model_dir_rejects_bad_arguments(tmp_path: Path, tiny_base: Path) -> None:
    with pytest.raises(InvalidInputError):
        init_model_dir("dense", tmp_path / "x", base=tiny_base)
    with pytest.raises(InvalidInputError, match="positions"):
        init_model_dir("splade", tmp_path / "y", base=tiny_base, max_doc_length=100_000)
    with pytest.raises(ModelDirectoryError):
        init_model_dir("splade", tmp_path / "z", base=tmp_path / "does-not-exist")


def test_load_model_dir_errors(tmp_path: Path, tiny_base: Path) -> None:
    out = init_model_dir("colbert", tmp_path / "c", base=tiny_base, dim=8)
    (out / "model.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match=r"model\.safetensors"):
        load_model_dir(out)
    with pytest.raises(ModelDirectoryError, match=r"colsplade\.json"):
        load_model_dir(tmp_path)
    # weights of another kind do not load silently
    splade = init_model_dir("splade", tmp_path / "s", base=tiny_base)
    cfg = json.loads((splade / "colsplade.json").read_text())
    cfg["kind"] = "colbert"
    (splade / "colsplade.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError):
        load_model_dir(splade)


def test_init_model_cli(tmp_path: Path, tiny_base: Path) -> None:
    from click.testing import CliRunner

    from colsplade.cli import main

    out = tmp_path / "cli-joint"
    result = CliRunner().invoke(
        main,
        ["init-model", "joint", str(out), "--base", str(tiny_base), "--dim", "8", "--max-doc-length", "40"],
    )
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and (out / "onnx/model-int8.onnx").is_file()
    bad = CliRunner().invoke(
        main, ["init-model", "joint", str(tmp_path / "x"), "--base", str(tmp_path / "missing")]
    )
    assert bad.exit_code == 2 and "not a directory" in bad.output and "Traceback" not in bad.output
