"""Long documents on a ModernBERT backbone: imported with a longer document length than the checkpoint's,
colsplade's fp32 ONNX encoder still reproduces sentence-transformers' own vectors past the model's sliding
attention window and past the short sample the graph was exported with. A length past the backbone's
positions is refused at import, not on the first long document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from click.testing import CliRunner  # noqa: E402

from colsplade.cli import main as cli  # noqa: E402
from colsplade.encoders import load_encoder, position_limit, read_model_config  # noqa: E402
from colsplade.exceptions import InvalidInputError  # noqa: E402
from colsplade.onnx_export import export_model_dir  # noqa: E402
from colsplade.testing import (  # noqa: E402
    TINY_WORDS,
    compare_with_reference,
    reference_encoder,
    write_reference_checkpoint,
)
from colsplade.training import import_checkpoint  # noqa: E402


def _text(words: int, seed: int) -> str:
    return " ".join(TINY_WORDS[(seed * 7 + i * 13) % len(TINY_WORDS)] for i in range(words))


@pytest.fixture(scope="module")
def modernbert_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the tiny ModernBERT has a 32-token sliding window and 512 positions; its checkpoint reads 40 tokens
    return write_reference_checkpoint("st-multivector", tmp_path_factory.mktemp("ckpt"), arch="modernbert")


def test_modernbert_documents_past_the_window_match_the_library(
    modernbert_checkpoint: Path, tmp_path: Path
) -> None:
    out = import_checkpoint(modernbert_checkpoint, tmp_path / "long", max_doc_length=480)
    assert read_model_config(out).max_doc_length == 480
    export_model_dir(out, variants=())
    encoder = load_encoder(out, variant="fp32")
    reference = reference_encoder("st-multivector", modernbert_checkpoint)
    reference[0].document_length = 480
    documents = [_text(600, 1), _text(300, 2), _text(90, 3), _text(5, 4)]
    compared = compare_with_reference(reference, encoder, documents, is_query=False)
    assert compared["shapes_equal"] and compared["max_abs_diff"] <= 1e-4, compared
    vectors = encoder.encode_documents(documents)
    # cut at the new length, not the checkpoint's 40: [CLS], the [D] marker and [SEP] come first and last
    assert 400 < vectors[0].shape[0] <= 480 and vectors[1].shape[0] > 200


def test_a_length_past_the_positions_is_refused_at_import(
    modernbert_checkpoint: Path, tmp_path: Path
) -> None:
    limit = position_limit(modernbert_checkpoint)
    assert limit == 512
    with pytest.raises(
        InvalidInputError, match=r"max_doc_length=600 is past the checkpoint's limit of 512"
    ) as info:
        import_checkpoint(modernbert_checkpoint, tmp_path / "too-long", max_doc_length=600)
    assert "--long-docs chunk" in str(info.value)
    with pytest.raises(InvalidInputError, match="max_query_length=513"):
        import_checkpoint(modernbert_checkpoint, tmp_path / "too-long-q", max_query_length=513)
    assert not (tmp_path / "too-long" / "colsplade.json").exists()


def test_import_model_cli_takes_the_lengths(modernbert_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "import-model",
            str(modernbert_checkpoint),
            str(tmp_path / "m"),
            "--max-doc-length",
            "256",
            "--max-query-length",
            "24",
            "--no-export",
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m" / "colsplade.json").read_text())
    assert (config["max_doc_length"], config["max_query_length"]) == (256, 24)
    refused = CliRunner().invoke(
        cli, ["import-model", str(modernbert_checkpoint), str(tmp_path / "n"), "--max-doc-length", "9000"]
    )
    assert refused.exit_code != 0 and "past the checkpoint's limit of 512" in refused.output


def test_a_colsplade_directory_copy_takes_new_lengths_within_its_limit(
    modernbert_checkpoint: Path, tmp_path: Path
) -> None:
    first = import_checkpoint(modernbert_checkpoint, tmp_path / "first")
    copied = import_checkpoint(first, tmp_path / "copied", format="colsplade", max_doc_length=300)
    assert read_model_config(copied).max_doc_length == 300
    assert read_model_config(first).max_doc_length == 40
    with pytest.raises(InvalidInputError, match="limit of 512"):
        import_checkpoint(first, tmp_path / "bad", format="colsplade", max_doc_length=1000)
    with pytest.raises(InvalidInputError, match="copied as it is"):
        import_checkpoint(first, tmp_path / "bad2", format="colsplade", name="x")


def test_a_splade_whose_vocabulary_is_padded_past_its_tokenizer_encodes(tmp_path: Path) -> None:
    # ModernBERT's output has 50,368 rows for 50,280 tokens; the extra columns have no token to name
    from colsplade.testing import make_tiny_base_model
    from colsplade.training import init_model_dir, load_model_dir

    base = make_tiny_base_model(tmp_path / "base", arch="modernbert", mlm=True, vocab_size=320)
    out = init_model_dir("splade", tmp_path / "splade", base=str(base), max_query_length=16)
    export_model_dir(out, variants=("int8",))
    encoder = load_encoder(out, variant="fp32")
    vocab = set(encoder.tokenizer.tokenizer.get_vocab())
    documents = [_text(30, 1), _text(8, 2)]
    got = encoder.encode_documents(documents)
    want = load_model_dir(out).encode(documents, is_query=False)["splade"]
    for terms, reference in zip(got, want, strict=True):
        assert terms and set(terms) <= vocab and set(terms) == set(reference)


def test_a_length_past_the_measured_limit_imports_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from colsplade.testing import make_tiny_base_model

    base = make_tiny_base_model(tmp_path / "base", arch="modernbert", mlm=True, max_positions=2048)
    tokenizer_config = base / "tokenizer_config.json"
    tokenizer_config.write_text(
        json.dumps({**json.loads(tokenizer_config.read_text()), "model_max_length": 2048}), encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING):
        import_checkpoint(base, tmp_path / "short", format="naver-splade", max_doc_length=1024)
    assert not [r for r in caplog.records if "square of its length" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        out = import_checkpoint(base, tmp_path / "long", format="naver-splade", max_doc_length=2000)
    assert read_model_config(out).max_doc_length == 2000
    warned = [r.getMessage() for r in caplog.records if "square of its length" in r.getMessage()]
    assert warned and "--long-docs chunk" in warned[0]
