"""A sentence-transformers v6 MultiVectorEncoder (its ColBERT), written by sentence-transformers itself,
imports into colsplade and colsplade's fp32 ONNX encoder reproduces the library's own ``encode_query`` /
``encode_document`` token vectors, on BERT and ModernBERT backbones. Layouts colsplade cannot reproduce
are refused with the reason, before a model loads."""

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

QUERIES = ["what does the drug do to the heart?", "immune response of mice", "gene"]
DOCUMENTS = [
    "The immune response of mice to the virus, and its effect.",
    "A drug dose changes the heart: the risk increases!",
    # longer than the document length (40 tokens): truncated the same way on both sides
    "Cells of the immune system respond to a virus in mice; the drug dose, the heart and the risk of "
    "gene expression all change, and the effect increases with each dose of the drug in the cells, "
    "in mice and in the heart, with the risk of the virus.",
]


@pytest.mark.parametrize(
    ("arch", "attend", "two_dense"),
    [("bert", False, True), ("bert", True, False), ("modernbert", False, True), ("xlm-roberta", False, True)],
)
def test_st_multivector_encoder_matches_the_library(
    tmp_path: Path, arch: str, attend: bool, two_dense: bool
) -> None:
    src = write_reference_checkpoint(
        "st-multivector", tmp_path, arch=arch, attend=attend, two_dense=two_dense
    )
    assert detect_checkpoint_format(src) == "st-multivector"
    reference = reference_encoder("st-multivector", src)

    out = import_checkpoint(src, tmp_path / "imported")
    config = read_model_config(out)
    assert config.kind == "colbert" and config.source["format"] == "st-multivector"
    assert config.colbert.dim == 16 and config.colbert.query_marker == "[Q]"
    assert config.colbert.attend_to_mask_tokens is attend and config.max_query_length == 16
    report = export_model_dir(out, variants=("int8",))
    assert report.variants["int8"].kendall_tau["colbert"] >= 0.9, report.variants["int8"]
    encoder = load_encoder(out, variant="fp32")
    for texts, is_query in ((QUERIES, True), (DOCUMENTS, False)):
        compared = compare_with_reference(reference, encoder, texts, is_query=is_query)
        # the same tokens kept (expansion, skiplist, truncation), the same vectors
        assert compared["shapes_equal"] and compared["max_abs_diff"] <= 1e-4, compared


def test_st_multivector_layouts_colsplade_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    # 1_Dense, 2_MultiVectorMask, 3_Normalize
    src = write_reference_checkpoint("st-multivector", tmp_path, two_dense=False)
    st_file = src / "config_sentence_transformers.json"
    st_config = json.loads(st_file.read_text())

    def refused(match: str, name: str) -> None:
        with pytest.raises(ModelDirectoryError, match=match):
            import_checkpoint(src, tmp_path / name)
        assert not (tmp_path / name / "colsplade.json").exists()

    # a prompt of several tokens: colsplade's marker is one token after [CLS]
    st_file.write_text(json.dumps({**st_config, "prompts": {"query": "query: ", "document": "[D] "}}))
    refused("one marker token", "a")
    st_file.write_text(json.dumps(st_config))
    # a skiplist over queries
    mask = src / "2_MultiVectorMask" / "config.json"
    mask_config = json.loads(mask.read_text())
    mask.write_text(json.dumps({**mask_config, "skiplist_tasks": ["query", "document"]}))
    refused("documents only", "b")
    mask.write_text(json.dumps(mask_config))
    # an activation that does not compose into one linear projection
    dense = src / "1_Dense" / "config.json"
    dense_config = json.loads(dense.read_text())
    dense.write_text(json.dumps({**dense_config, "activation_function": "torch.nn.modules.activation.Tanh"}))
    refused("identity activation", "c")
    dense.write_text(json.dumps(dense_config))
    # files that contradict each other: a Dense config of 12 outputs over a weight of 16
    dense.write_text(json.dumps({**dense_config, "out_features": 12}))
    refused("contradict each other", "c2")
    dense.write_text(json.dumps(dense_config))
    # a tokenizer without a mask token (colsplade expands queries with it)
    tokenizer_file = src / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_file.read_text())
    tokenizer_file.write_text(json.dumps({**tokenizer_config, "mask_token": None}))
    refused("no mask token", "c3")
    tokenizer_file.write_text(json.dumps(tokenizer_config))
    # no Normalize at the end
    modules_file = src / "modules.json"
    modules = json.loads(modules_file.read_text())
    modules_file.write_text(json.dumps(modules[:-1]))
    refused("Normalize", "d")
    # a module colsplade does not know (token pooling, say)
    pooling = {"idx": 4, "name": "4", "path": "4_Pool", "type": "sentence_transformers.x.TokenPooling"}
    modules_file.write_text(json.dumps([*modules, pooling]))
    refused("TokenPooling", "e")


@pytest.mark.parametrize("attend", [False, True])
def test_colbertv2_layout_matches_sentence_transformers_reader(tmp_path: Path, attend: bool) -> None:
    """Stanford's ColBERTv2 layout, read by sentence-transformers 6 (artifact.metadata, [unused0] /
    [unused1] markers, [MASK] expansion): colsplade's import gives the same token vectors."""
    src = write_reference_checkpoint("colbertv2", tmp_path, attend=attend)
    assert detect_checkpoint_format(src) == "colbertv2"
    out = import_checkpoint(src, tmp_path / "imported")
    assert read_model_config(out).colbert.attend_to_mask_tokens is attend
    export_model_dir(out, variants=())
    encoder = load_encoder(out, variant="fp32")
    reference = reference_encoder("colbertv2", src)
    for texts, is_query in ((QUERIES, True), (DOCUMENTS, False)):
        compared = compare_with_reference(reference, encoder, texts, is_query=is_query)
        assert compared["shapes_equal"] and compared["max_abs_diff"] <= 1e-4, compared
