"""The trainer on a tiny random model and a SciFact slice: loss falls, resume continues, CLI, bad input."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

import colsplade
from colsplade.exceptions import InvalidInputError
from colsplade.testing import make_tiny_base_model
from colsplade.training import TrainConfig, train

#: the SciFact sample shipped in the package (300 train claims with their abstracts, BEIR layout)
SCIFACT = Path(colsplade.__file__).parent / "data" / "scifact_sample"


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory) -> Path:
    """16 SciFact train queries, their positives and 48 other abstracts (truncated), in BEIR format."""
    root = tmp_path_factory.mktemp("scifact-slice")
    qrels_rows = (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:]
    rows = [r.split("\t") for r in qrels_rows]
    queries = list(dict.fromkeys(r[0] for r in rows))[:16]
    keep_rows = [r for r in rows if r[0] in set(queries)]
    needed = {r[1] for r in keep_rows}
    corpus_lines = []
    with (SCIFACT / "corpus.jsonl").open() as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"] in needed or len(corpus_lines) < 48 + len(needed):
                doc["text"] = doc["text"][:300]
                corpus_lines.append(json.dumps(doc))
    (root / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n")
    with (SCIFACT / "queries.jsonl").open() as f:
        q_lines = [line for line in f if json.loads(line)["_id"] in set(queries)]
    (root / "queries.jsonl").write_text("".join(q_lines))
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join("\t".join(r) for r in keep_rows) + "\n"
    )
    return root


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base_model(tmp_path_factory.mktemp("tiny") / "base", hidden=32, layers=1)


def _config(kind: str, data: Path, base: Path, out: Path, **kw) -> TrainConfig:
    values = dict(
        kind=kind,
        out=str(out),
        data=str(data),
        base=str(base),
        negatives="none",
        n_negatives=1,
        batch_size=4,
        lr=2e-3,
        head_lr=2e-3,
        warmup_ratio=0.0,
        max_doc_length=48,
        max_query_length=16,
        dim=16,
        init_doc_nnz=40,
        progress=False,
        log_steps=1,
        save_steps=0,
        num_threads=1,
        seed=3,
        lambda_query=1e-3,
        lambda_doc=1e-3,
    )
    values.update(kw)
    return TrainConfig(**values)


@pytest.mark.parametrize("kind", ["splade", "colbert", "joint"])
def test_training_reduces_loss_and_writes_model_dir(kind, scifact_slice, tiny_base, tmp_path):
    out = tmp_path / kind
    # 16 queries / batch 4 = 4 batches an epoch; 6 epochs revisit every batch, so the loss must fall
    result = train(_config(kind, scifact_slice, tiny_base, out, epochs=6, dev_queries=4, dev_corpus_size=40))
    assert result.steps == 18  # 12 training queries -> 3 steps an epoch
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first, result.losses
    assert {"colsplade.json", "model.safetensors", "training_config.json", "train_log.jsonl"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoints").exists()
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["kind"] == kind and saved["lr"] == 2e-3
    identity = json.loads((out / "colsplade.json").read_text())
    assert identity["name"] == kind and len(identity["version"]) == 12, (
        "named after --out, versioned by weights"
    )
    prefix = {"splade": "splade_", "colbert": "colbert_", "joint": "rerank_"}[kind]
    assert f"{prefix}ndcg@10" in result.dev_metrics
    if kind != "colbert":
        assert result.dev_metrics["doc_nnz"] > 0
    from colsplade.training import load_model_dir

    load_model_dir(out)  # what `colsplade export` loads
    if kind == "joint":  # the directory goes to export as is, and the ONNX encoder reads it
        from colsplade.encoders import load_encoder
        from colsplade.onnx_export import export_model_dir

        export_model_dir(out, variants=())
        enc = load_encoder(out).encode_documents(["aspirin and heart attack"])
        assert enc.splade[0] and enc.colbert[0].shape[1] == 16


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_continues_from_checkpoint(scifact_slice, tiny_base, tmp_path):
    settings = dict(epochs=3, save_steps=2, n_negatives=2)
    reference = train(_config("splade", scifact_slice, tiny_base, tmp_path / "ref", **settings))

    def stop_at_5(step: int, logs: dict) -> None:
        if step == 5:
            raise _Interrupt

    out = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train(_config("splade", scifact_slice, tiny_base, out, **settings), on_step=stop_at_5)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004.pt"]
    resumed = train(_config("splade", scifact_slice, tiny_base, out, **settings))
    assert resumed.resumed_from == 4 and resumed.steps == reference.steps
    # same data order, negatives and RNG streams: the resumed run ends where the uninterrupted one did
    assert resumed.losses == pytest.approx(reference.losses[4:], rel=1e-4, abs=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_an_interrupted_run_closes_its_log_file(scifact_slice, tiny_base, tmp_path, monkeypatch):
    opened = []
    real_open = Path.open

    def spy(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        if self.name == "train_log.jsonl":
            opened.append(handle)
        return handle

    monkeypatch.setattr(Path, "open", spy)

    def stop(step: int, logs: dict) -> None:
        raise _Interrupt

    out = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train(_config("splade", scifact_slice, tiny_base, out, epochs=1), on_step=stop)
    assert len(opened) == 1 and opened[0].closed
    assert json.loads((out / "train_log.jsonl").read_text().splitlines()[0])["step"] == 1


def test_bad_inputs_fail_before_training(scifact_slice, tiny_base, tmp_path):
    with pytest.raises(InvalidInputError, match="no 'dev' split"):
        train(_config("colbert", scifact_slice, tiny_base, tmp_path / "a", dev_split="dev"))
    with pytest.raises(InvalidInputError, match="loss"):
        train(_config("colbert", scifact_slice, tiny_base, tmp_path / "b", loss="hinge"))
    with pytest.raises(InvalidInputError, match="teacher"):
        train(_config("colbert", scifact_slice, tiny_base, tmp_path / "c", loss="marginmse"))
    with pytest.raises(InvalidInputError, match="unknown training settings"):
        TrainConfig.from_dict({"kind": "splade", "learning_rate": 1})
    assert not (tmp_path / "b").exists() and not (tmp_path / "c" / "model.safetensors").exists()


def test_config_file_and_cli(scifact_slice, tiny_base, tmp_path):
    from click.testing import CliRunner

    from colsplade.cli import main

    cfg = tmp_path / "train.toml"
    cfg.write_text(
        f'data = "{scifact_slice}"\nbase = "{tiny_base}"\nnegatives = "none"\nbatch_size = 4\n'
        "max_doc_length = 48\nmax_query_length = 16\ndim = 16\nmax_steps = 2\nprogress = false\n"
    )
    out = tmp_path / "cli-model"
    result = CliRunner().invoke(
        main, ["train", "colbert", "--out", str(out), "--config", str(cfg), "--lr", "1e-4"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["lr"] == 1e-4 and saved["batch_size"] == 4  # flag beats file
    bad = CliRunner().invoke(
        main, ["train", "colbert", "--out", str(tmp_path / "x"), "--data", os.fspath(tmp_path)]
    )
    assert bad.exit_code == 2  # bad input: one line on stderr, exit 2 (the command group's convention)


def test_autocast_dtype_per_device(monkeypatch) -> None:
    import torch

    from colsplade.training._trainer import _autocast_dtype

    assert _autocast_dtype(False, torch.device("cpu")) == (False, torch.float32)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert _autocast_dtype(True, torch.device("cpu")) == (True, torch.bfloat16)
    # emulated bf16 is slower than fp32 on a CPU without it: stay in fp32 there
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert _autocast_dtype(True, torch.device("cpu")) == (False, torch.bfloat16)


def test_splade_distilled_from_a_colbert_teacher(scifact_slice, tiny_base, tmp_path):
    """--teacher: a trained ColBERT scores each query's candidates; MarginMSE trains the SPLADE student."""
    from colsplade.evaluation import load_beir
    from colsplade.training import examples_from_beir, save_negatives

    data = load_beir(scifact_slice, "train")
    ids = list(data.corpus)
    examples = examples_from_beir(data)
    for i, e in enumerate(examples):  # a deterministic negatives file (no engine in unit tests)
        e.negatives = [d for d in ids[i : i + 8] if d not in e.positives][:5]
    negatives = save_negatives(tmp_path / "negatives.jsonl", examples)
    teacher = train(_config("colbert", scifact_slice, tiny_base, tmp_path / "teacher", epochs=2)).model_dir
    config = _config(
        "splade",
        scifact_slice,
        tiny_base,
        tmp_path / "student",
        negatives=str(negatives),
        teacher=str(teacher),
        teacher_depth=3,
        loss="marginmse",
        n_negatives=2,
        epochs=6,
    )
    result = train(config)
    first, last = sum(result.losses[:4]) / 4, sum(result.losses[-4:]) / 4
    assert last < first, result.losses
    cached = [json.loads(line) for line in (tmp_path / "student" / "teacher_rankings.jsonl").open()]
    assert len(cached) == len(examples)
    assert all(len(r["ranking"]) <= len(r["positives"]) + 3 for r in cached)
    with pytest.raises(InvalidInputError, match="not a model directory"):
        train(_config("splade", scifact_slice, tiny_base, tmp_path / "x", teacher=str(tmp_path / "nope")))


def test_joint_self_distillation_trains_splade_on_the_colbert_side(scifact_slice, tiny_base, tmp_path):
    """splade_distill_weight: the joint model's ColBERT in-batch scores teach its SPLADE side (listwise
    KL); teacher_filter keeps what ColBERT ranks above the positive out of SPLADE's negatives."""
    out = tmp_path / "joint-distil"
    config = _config(
        "joint",
        scifact_slice,
        tiny_base,
        out,
        epochs=6,
        splade_distill_weight=1.0,
        distill_temperature=2.0,
        teacher_filter=True,
    )
    result = train(config)
    logs = [json.loads(line) for line in (out / "train_log.jsonl").open()]
    distill = [r["distill_loss"] for r in logs if "distill_loss" in r]
    assert len(distill) == result.steps, "the distillation term is in every step"
    assert all(d >= 0 and d == d for d in distill)  # a KL: never negative, never NaN
    assert any(d > 0 for d in distill)
    for r in logs:  # the step's loss is the sum of its parts, the distillation term included
        parts = r["splade_loss"] + r["colbert_loss"] + r["reg"] + r["distill_loss"]
        assert r["loss"] == pytest.approx(parts, rel=1e-4, abs=1e-5)
    assert all("teacher_filtered" in r for r in logs if "distill_loss" in r)
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["splade_distill_weight"] == 1.0 and saved["teacher_filter"] is True
    for bad, match in (
        (dict(kind="splade", splade_distill_weight=1.0), "joint model's ColBERT side"),
        (dict(kind="joint", splade_distill_weight=-1.0), "splade_distill_weight must be >= 0"),
        (dict(kind="joint", distill_temperature=0.0), "distill_temperature > 0"),
        (dict(kind="joint", teacher_filter=True, loss="margin"), "needs loss infonce"),
    ):
        values = {"kind": "joint", **bad}
        kind = values.pop("kind")
        with pytest.raises(InvalidInputError, match=match):
            train(_config(kind, scifact_slice, tiny_base, tmp_path / "bad", **values))


def test_inference_free_query_side_trains_from_idf(scifact_slice, tiny_base, tmp_path):
    """sparse_query='inference-free': the query side is a per-term table started from the corpus IDF and
    trained with the document encoder; the ONNX encoder then weighs a query's own tokens by it."""
    import numpy as np

    from colsplade.encoders import load_encoder, read_model_config, sparse_query_mode
    from colsplade.evaluation import load_beir
    from colsplade.onnx_export import export_model_dir
    from colsplade.training import load_model_dir
    from colsplade.training._trainer import corpus_idf

    out = tmp_path / "if-joint"
    result = train(_config("joint", scifact_slice, tiny_base, out, epochs=4, sparse_query="inference-free"))
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first, result.losses
    assert sparse_query_mode(read_model_config(out)) == "inference-free"
    table = np.load(out / "query_weights.npy")
    model = load_model_dir(out)
    idf = corpus_idf(model.text_tokenizer, load_beir(scifact_slice, "train").corpus.values()).numpy()
    assert table.shape == idf.shape and not np.allclose(table, idf), "trained away from its IDF start"
    assert np.corrcoef(table, idf)[0, 1] > 0.5, "and still close to it after a few steps"
    special = list(model.text_tokenizer.special_ids)
    assert (idf[special] == 0).all()
    export_model_dir(out, variants=())
    encoder = load_encoder(out)
    query = "aspirin and heart attack"
    impacts = encoder.encode_queries([query]).splade[0]
    tokens = set(model.text_tokenizer.tokenize([query], is_query=True).ids[0])
    names = {model.text_tokenizer.id_to_token(i): i for i in tokens}
    assert impacts and set(impacts) <= set(names), "only the query's own tokens"
    for term, weight in impacts.items():
        assert weight == pytest.approx(float(table[names[term]]), rel=1e-5)
    # the torch reference agrees with the encoder
    torch_impacts = model.encode([query], is_query=True)["splade"][0]
    assert torch_impacts.keys() == impacts.keys()
    # a model of the other query side cannot continue in this directory
    with pytest.raises(InvalidInputError, match="inference-free sparse queries, not encoder"):
        train(_config("joint", scifact_slice, tiny_base, out, epochs=5))
    with pytest.raises(InvalidInputError, match="SPLADE query side"):
        train(_config("colbert", scifact_slice, tiny_base, tmp_path / "c", sparse_query="inference-free"))


@pytest.mark.parametrize("arch", ["modernbert", "xlm-roberta", "distilbert"])
def test_joint_training_on_other_backbones(arch, scifact_slice, tmp_path):
    """ModernBERT, XLM-RoBERTa and DistilBERT bases (bare encoders, as all-MiniLM is) train a joint model
    that exports and encodes through the torch-free encoders."""
    from colsplade.encoders import load_encoder
    from colsplade.onnx_export import export_model_dir

    base = make_tiny_base_model(tmp_path / "base", arch=arch, hidden=32, layers=2)
    out = tmp_path / "joint"
    result = train(_config("joint", scifact_slice, base, out, epochs=1, dev_queries=4, dev_corpus_size=40))
    assert result.steps == 3 and all(math.isfinite(loss) for loss in result.losses)
    report = export_model_dir(out, variants=("int8",), raise_on_failure=False)
    assert report.variants["fp32"].passed, report.summary()
    enc = load_encoder(out, variant="fp32").encode_documents(["aspirin and heart attack"])
    assert enc.splade[0] and enc.colbert[0].shape[1] == 16
