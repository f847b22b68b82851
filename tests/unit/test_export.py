"""ONNX export: parity with torch for all three kinds, dynamic axes, variants, failure exit status."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

from colsplade.cli._export import export_command  # noqa: E402
from colsplade.encoders import read_model_config  # noqa: E402
from colsplade.exceptions import InvalidInputError  # noqa: E402
from colsplade.onnx_export import ParityError, export_model_dir, kendall_tau, top_k_overlap  # noqa: E402
from colsplade.testing import make_tiny_model_dir  # noqa: E402
from colsplade.training import load_model_dir  # noqa: E402


@pytest.mark.parametrize("kind", ["splade", "colbert", "joint"])
def test_export_parity_all_kinds(tmp_path: Path, kind: str) -> None:
    out = make_tiny_model_dir(kind, tmp_path / kind, export=False)
    report = export_model_dir(out, variants=("int8", "fp16"))
    assert report.ok
    fp32 = report.variants["fp32"]
    assert fp32.passed is True
    assert all(d <= 1e-4 for d in fp32.max_abs_diff.values())
    expected_outputs = {"splade": {"splade"}, "colbert": {"colbert", "colbert_mask"}}.get(
        kind, {"splade", "colbert", "colbert_mask"}
    )
    assert set(fp32.max_abs_diff) == expected_outputs
    int8 = report.variants["int8"]
    assert int8.passed is True and min(int8.kendall_tau.values()) >= 0.8
    assert (out / "onnx/model-int8.onnx").stat().st_size < (out / "onnx/model.onnx").stat().st_size
    fp16 = report.variants["fp16"]
    assert fp16.passed is True and min(fp16.kendall_tau.values()) >= 0.8
    assert max(fp16.max_abs_diff.values()) < 0.05
    config = read_model_config(out)
    assert config.onnx["fp32"] == "onnx/model.onnx" and "int8" in config.onnx
    # a joint model's ColBERT-only graphs: listed per variant, a fraction of the nodes (no vocabulary head)
    colbert_only = {k for k in config.onnx if k.endswith(":colbert")}
    assert colbert_only == ({"fp32:colbert", "int8:colbert", "fp16:colbert"} if kind == "joint" else set())
    saved = json.loads((out / "onnx/export-report.json").read_text())
    assert saved["ok"] is True and saved["kind"] == kind


def test_graph_has_dynamic_axes_and_pooling_inside(tmp_path: Path) -> None:
    import onnxruntime as ort

    out = make_tiny_model_dir("joint", tmp_path / "j", variants=())
    graph = onnx.load(str(out / "onnx/model.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["input_ids"] == ["batch", "sequence"]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert outs["splade"][0] == "batch" and isinstance(outs["splade"][1], int)  # (batch, vocab): pooled
    assert outs["colbert"][:2] == ["batch", "sequence"]
    # batch sizes and lengths never seen at export time
    model = load_model_dir(out)
    session = ort.InferenceSession(str(out / "onnx/model.onnx"), providers=["CPUExecutionProvider"])
    for n, length in ((1, 5), (5, 23), (3, 48)):
        ids = torch.randint(10, 200, (n, length))
        ids[:, 0] = model.text_tokenizer.cls_id
        mask = torch.ones_like(ids)
        mask[0, length - 2 :] = 0
        ids[0, length - 2 :] = model.text_tokenizer.pad_id
        ref = model(ids, mask)
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        for name, value in zip(("splade", "colbert", "colbert_mask"), got, strict=True):
            assert np.abs(ref[name].detach().numpy() - value).max() <= 1e-4


def test_parity_failure_raises_and_cli_exits_nonzero(tmp_path: Path) -> None:
    out = make_tiny_model_dir("splade", tmp_path / "s", export=False)
    # a negative tolerance cannot be met: the check must fail loudly
    with pytest.raises(ParityError) as info:
        export_model_dir(out, variants=(), tolerance=-1.0)
    assert not info.value.report.ok
    assert "fp32" not in read_model_config(out).onnx  # a failed file is not advertised
    result = CliRunner().invoke(export_command, [str(out), "--variants", "", "--tolerance", "-1"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    result = CliRunner().invoke(export_command, [str(out), "--variants", "int8"])
    assert result.exit_code == 0, result.output
    assert "kendall tau" in result.output


def test_unknown_variant_refused(tmp_path: Path) -> None:
    out = make_tiny_model_dir("colbert", tmp_path / "c", export=False)
    with pytest.raises(InvalidInputError, match="int4"):
        export_model_dir(out, variants=("int4",))


def test_ranking_agreement_helpers() -> None:
    x = np.array([0.1, 0.5, 0.3, 0.9])
    assert kendall_tau(x, x * 2 + 1) == 1.0
    assert kendall_tau(x, -x) == -1.0
    assert top_k_overlap(x, x, 2) == 1.0
    assert top_k_overlap(x, np.array([0.9, 0.1, 0.3, 0.5]), 2) == 0.5


def test_check_variant_leaves_the_tokenizer_logger_as_it_was(tmp_path: Path) -> None:
    import logging

    from colsplade.onnx_export import check_variant

    out = make_tiny_model_dir("splade", tmp_path / "s", variants=())
    tokenize_logger = logging.getLogger("colsplade.encoders._tokenize")
    before = (tokenize_logger.level, list(tokenize_logger.filters))
    tokenize_logger.setLevel(logging.INFO)
    try:
        report = check_variant(
            load_model_dir(out), out / "onnx/model.onnx", "fp32", tolerance=1e-4, min_kendall_tau=0.8
        )
        assert report.passed is True
        assert tokenize_logger.level == logging.INFO and tokenize_logger.filters == before[1]
    finally:
        tokenize_logger.setLevel(before[0])


def test_quiet_silences_one_thread_for_the_block_only(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    from colsplade._logging import quiet_logger as _quiet

    log = logging.getLogger("colsplade.test-quiet")
    with caplog.at_level(logging.INFO, logger=log.name):
        with _quiet(log.name, below=logging.ERROR):
            log.warning("dropped: this thread, below ERROR")
            log.error("kept: ERROR")
            other = threading.Thread(target=log.warning, args=("kept: another thread",))
            other.start()
            other.join()
        log.warning("kept: after the block")
    assert [r.getMessage() for r in caplog.records] == [
        "kept: ERROR",
        "kept: another thread",
        "kept: after the block",
    ]
    assert not log.filters


def test_colbert_only_graph_gives_the_joint_graphs_vectors(tmp_path: Path) -> None:
    """The ColBERT-only graph drops the SPLADE head's nodes and gives the joint graph's ColBERT outputs
    bit for bit; the encoder takes it for queries that need no SPLADE terms."""
    import onnxruntime as ort

    from colsplade.encoders import load_encoder
    from colsplade.onnx_export import colbert_only_graph

    out = make_tiny_model_dir("joint", tmp_path / "j", variants=("int8",))
    for variant, name in (("fp32", "model"), ("int8", "model-int8")):
        full, cut = out / f"onnx/{name}.onnx", out / f"onnx/{name}.colbert.onnx"
        assert read_model_config(out).onnx[f"{variant}:colbert"] == f"onnx/{name}.colbert.onnx"
        assert [o.name for o in onnx.load(str(cut)).graph.output] == ["colbert", "colbert_mask"]
        assert len(onnx.load(str(cut)).graph.node) < len(onnx.load(str(full)).graph.node)
        ids = np.array([[2, 20, 21, 22, 3, 0]], dtype=np.int64)  # in any vocabulary
        feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
        a = ort.InferenceSession(str(full), providers=["CPUExecutionProvider"]).run(["colbert"], feeds)[0]
        b = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"]).run(["colbert"], feeds)[0]
        assert np.array_equal(a, b)
        encoder = load_encoder(out, variant=variant)
        both = encoder.encode_queries(["gene expression in cells"])
        alone = encoder.encode_queries(["gene expression in cells"], sparse=False)
        assert alone.splade == [{}] and both.splade[0]
        assert np.array_equal(alone.colbert[0], both.colbert[0])
    with pytest.raises(InvalidInputError, match="not a joint graph"):
        colbert_only_graph(
            make_tiny_model_dir("splade", tmp_path / "s", variants=()) / "onnx/model.onnx",
            tmp_path / "x.onnx",
        )
