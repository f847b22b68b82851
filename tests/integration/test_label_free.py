"""Label-free training (``--label-free``) on a real engine with a tiny model: documents of an index (or a
corpus file) only, BM25 negatives from the engine; the model directory it writes is accepted by ingest and
search; a corpus too small to make pairs is refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import colsplade
from colsplade.engines import BulkAction, bulk_write
from colsplade.exceptions import InvalidInputError

pytest.importorskip("torch")

from colsplade.testing import make_tiny_base_model
from colsplade.training import TrainConfig, train

SAMPLE_CORPUS = Path(colsplade.__file__).parent / "data" / "scifact_sample" / "corpus.jsonl"


def _documents(n: int) -> list[dict]:
    with SAMPLE_CORPUS.open(encoding="utf-8") as fh:
        docs = [json.loads(line) for _, line in zip(range(n), fh, strict=False)]
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"][:600]} for d in docs]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base_model(tmp_path_factory.mktemp("lf-tiny") / "base", hidden=32, layers=1)


def _config(out: Path, base: Path, url: str, **kw) -> TrainConfig:
    values = dict(
        kind="joint", out=str(out), base=str(base), label_free=True, engine_url=url, negatives="bm25",
        n_negatives=1, negatives_depth=5, batch_size=4, max_steps=6, lr=2e-3, head_lr=2e-3, warmup_ratio=0.0,
        max_doc_length=64, max_query_length=16, dim=16, init_doc_nnz=40, progress=False, log_steps=1,
        save_steps=0, num_threads=1, seed=5,
    )  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


@pytest.mark.integration
def test_label_free_from_an_index_trains_and_serves(engine, engine_index, tiny_base, tmp_path):
    from colsplade.ingest import FieldMapping, ingest
    from colsplade.onnx_export import export_model_dir
    from colsplade.query import SearchClient

    docs = _documents(80)
    team_index = engine_index + "-team"  # the team's existing index: plain text fields, no colsplade fields
    engine.create_index(
        team_index, {"mappings": {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}}
    )
    try:
        actions = [
            BulkAction(index=team_index, doc_id=d["_id"], source={"title": d["title"], "text": d["text"]})
            for d in docs
        ]
        failed = [r.error for r in bulk_write(engine, actions) if not r.ok]
        assert not failed
        engine.refresh(team_index)
        out = tmp_path / "lf-joint"
        result = train(_config(out, tiny_base, engine.url, from_index=team_index))
    finally:
        engine.delete_index(team_index)
    assert result.steps == 6 and all(loss == loss for loss in result.losses)  # trained, no NaN
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["label_free"] and saved["from_index"] == team_index and "qrels" not in json.dumps(saved)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and log[-1]["doc_nnz"] > 0

    from colsplade.encoders import load_encoder

    export_model_dir(out, variants=())
    summary = ingest(
        docs, engine, engine_index, load_encoder(out, variant="fp32"), fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
        progress=False,
    )  # fmt: skip
    assert summary.as_dict()["indexed"] == len(docs)
    with SearchClient(engine_index, out, client=engine, encoder_options={"variant": "fp32"}) as search:
        hits = search.search(docs[3]["title"], k=5).hits
    assert len(hits) == 5 and len({h.id for h in hits}) == 5 and "maxsim" in str(hits[0].stage_scores)


@pytest.mark.integration
def test_label_free_refuses_a_corpus_too_small_to_make_pairs(engine, tiny_base, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in _documents(12)))
    with pytest.raises(InvalidInputError, match="too small for label-free training: 12 document"):
        train(_config(tmp_path / "small", tiny_base, engine.url, corpus=str(corpus)))

    from colsplade.cli import main

    answer = CliRunner().invoke(
        main,
        ["--url", engine.url, "train", "joint", "--label-free", "--corpus", str(corpus), "--base", str(tiny_base),
         "--out", str(tmp_path / "cli"), "--batch-size", "4", "--no-progress"],
    )  # fmt: skip
    assert answer.exit_code == 2, answer.output
    assert "too small for label-free training" in answer.output and "at least 32" in answer.output
    assert not (tmp_path / "cli" / "model.safetensors").exists()


@pytest.mark.integration
def test_label_free_from_a_corpus_file_mines_on_the_engine(engine, tiny_base, tmp_path):
    from colsplade.training._label_free import label_free_data

    corpus = tmp_path / "corpus.jsonl"
    docs = _documents(60)
    docs.append({**docs[0], "_id": "copy-of-first"})  # a re-post: never a negative of its original
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    config = _config(
        tmp_path / "x", tiny_base, engine.url, corpus=str(corpus), bm25_index="colsplade-test-lf-bm25"
    )
    from colsplade.engines import connect

    client = connect(url=engine.url)
    try:
        examples, dev, train_corpus = label_free_data(config, lambda: client)
    finally:
        if client.index_exists("colsplade-test-lf-bm25"):
            client.delete_index("colsplade-test-lf-bm25")
        client.close()
    assert len(examples) == len(docs) and not dev
    first = next(e for e in examples if e.positives == [docs[0]["_id"]])
    assert "copy-of-first" not in first.negatives and docs[0]["_id"] not in first.negatives
    assert sum(bool(e.negatives) for e in examples) > len(examples) // 2
    assert set(train_corpus) == {d["_id"] for d in docs}
