"""Ingest into real Elasticsearch and OpenSearch nodes: search-back, bad input, 429s, reindex, model versions."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest

from colsplade.encoders import load_model_codec
from colsplade.engines import connect, create_index
from colsplade.exceptions import DocCapMismatchError, ModelVersionMismatchError
from colsplade.ingest import Batching, FieldMapping, IterableSource, RetryPolicy, ingest, reindex
from colsplade.mappings import FieldSpec, unescape_impacts
from colsplade.query import sparse_query
from colsplade.testing import ForwardingProxy

FAST_RETRY = RetryPolicy(max_retries=8, initial_backoff=0.05, max_backoff=0.5)
WORDS = [
    "cell",
    "gene",
    "protein",
    "virus",
    "immune",
    "cancer",
    "patient",
    "blood",
    "brain",
    "heart",
    "liver",
    "lung",
    "mouse",
    "drug",
    "dose",
    "trial",
]


@pytest.fixture(scope="module")
def encoder(tiny_joint_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint_model, variant="int8")


def _docs(n: int, start: int = 0) -> list[dict]:
    rng = np.random.default_rng(start)
    return [
        {
            "_id": f"d{i}",
            "title": " ".join(rng.choice(WORDS, 3)),
            "text": " ".join(rng.choice(WORDS, 20)),
            "year": 2000 + i % 20,
        }
        for i in range(start, start + n)
    ]


def _all_ids(engine, index: str) -> list[str]:
    engine.refresh(index)
    hits = engine.search(index, {"size": 10000, "_source": False, "query": {"match_all": {}}})["hits"]["hits"]
    return [h["_id"] for h in hits]


def test_ingest_and_search_back(engine, engine_index, encoder, tmp_path):
    docs = _docs(40)
    summary = ingest(
        docs,
        engine,
        engine_index,
        encoder,
        progress=False,
        batching=Batching(encode_batch_size=8, bulk_docs=16),
    )
    assert summary.read == 40 and summary.indexed == 40 and summary.dead_lettered == 0
    assert summary.exit_code == 0
    ids = _all_ids(engine, engine_index)
    assert sorted(ids) == sorted(d["_id"] for d in docs)
    stored = engine.get_document(engine_index, "d3")["_source"]
    assert stored["title"] == docs[3]["title"] and stored["year"] == docs[3]["year"]
    assert stored["colsplade"]["model_version"] == str(encoder.config.version)
    expected = encoder.encode_documents([docs[3]["title"] + "\n" + docs[3]["text"]])
    # the compact store: one blob, no vectors in _source; it decodes to the document's tokens
    assert "colbert" not in stored and "colbert_packed" not in stored
    codec = load_model_codec(encoder, engine.get_mapping(engine_index)["_meta"]["colsplade"]["codec"]["hash"])
    decoded = codec.decode(base64.b64decode(stored["colbert_codes"]))
    assert decoded.shape == (-(-len(expected.colbert[0]) // 3), 16)  # tokens pooled by 3 (the default)
    assert summary.tokens == sum(
        len(v) for v in encoder.encode_documents([d["title"] + "\n" + d["text"] for d in docs]).colbert
    )
    assert summary.codec == codec.hash
    assert set(unescape_impacts(stored["splade"])) == {t for t, w in expected.splade[0].items() if w > 0}
    # The document's own SPLADE vector finds it first.
    spec = FieldSpec(colbert_dim=16, splade_type=engine.capabilities().splade_type)
    top = dict(sorted(expected.splade[0].items(), key=lambda kv: -kv[1])[:10])
    hits = engine.search(engine_index, {"query": sparse_query(top, spec), "size": 3})["hits"]["hits"]
    assert hits[0]["_id"] == "d3"
    # A replay writes the same _ids: nothing duplicated.
    again = ingest(docs, engine, engine_index, encoder, progress=False)
    assert again.indexed == 40
    assert engine.count(engine_index) == 40


def test_bad_input_is_dead_lettered(engine, engine_index, encoder, tmp_path):
    # The index maps "year" as an integer, so a document with a text year conflicts with the mapping.
    create_index(engine, engine_index, FieldSpec(colbert_dim=16))
    engine.put_mapping(engine_index, {"properties": {"year": {"type": "integer"}}})
    big_text = " ".join(WORDS[i % len(WORDS)] for i in range(180_000))  # ~1 MB
    assert len(big_text) > 1_000_000
    lines = [
        json.dumps({"_id": "ok1", "title": "cell gene", "text": "protein virus", "year": 2001}).encode(),
        b'{"_id": "broken", "title": "cell"',  # malformed JSON
        json.dumps({"title": "no id here", "text": "cell"}).encode(),  # missing id (id_field given)
        json.dumps({"_id": "notext", "year": 2002}).encode(),  # missing text
        json.dumps({"_id": "empty", "title": "", "text": "   "}).encode(),  # empty text
        b'{"_id": "latin1", "text": "caf\xe9 gene"}',  # not UTF-8
        json.dumps({"_id": "conflict", "text": "cell gene", "year": "nineteen"}).encode(),  # mapping conflict
        json.dumps(["an", "array"]).encode(),  # not an object
        json.dumps({"_id": "big", "title": "big one", "text": big_text, "year": 2003}).encode(),  # 1 MB doc
        b"",
        json.dumps({"_id": "ok2", "text": "immune cancer", "year": 2004}).encode(),
    ]
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    dead = tmp_path / "dead.jsonl"
    summary = ingest(
        path,
        engine,
        engine_index,
        encoder,
        fields=FieldMapping(id_field="_id"),
        dead_letter=dead,
        checkpoint=tmp_path / "ckpt.json",
        progress=False,
        batching=Batching(encode_batch_size=4),
    )
    assert summary.read == 10
    assert summary.indexed == 3
    assert summary.dead_lettered == 7 and summary.exit_code == 3
    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    reasons = {e.get("id") or e["stage"] + str(e["position"].get("line")): e["reason"] for e in entries}
    assert len(entries) == 7
    assert any("malformed JSON" in r for r in reasons.values())
    assert any("UTF-8" in r for r in reasons.values())
    assert any("not an object" in r for r in reasons.values())
    assert "missing id" in " ".join(reasons.values())
    assert reasons["notext"].startswith("missing text")
    assert reasons["empty"].startswith("empty text")
    conflict = next(e for e in entries if e.get("id") == "conflict")
    assert conflict["stage"] == "engine" and conflict["status"] == 400
    assert "year" in conflict["reason"] and conflict["document"]["year"] == "nineteen"
    assert sorted(_all_ids(engine, engine_index)) == ["big", "ok1", "ok2"]
    stored = engine.get_document(engine_index, "big")["_source"]
    assert stored["text"] == big_text and stored["colbert_codes"]
    # The run finished: the checkpoint sits at the end, so a rerun reads nothing and rejects nothing again.
    rerun = ingest(
        path,
        engine,
        engine_index,
        encoder,
        dead_letter=dead,
        checkpoint=tmp_path / "ckpt.json",
        progress=False,
    )
    assert rerun.read == 0 and len(dead.read_text().splitlines()) == 7


def test_engine_answering_429_is_retried(engine, engine_index, encoder):
    docs = _docs(30)
    with (
        ForwardingProxy(engine.settings.urls[0], fail_first=3) as proxy,
        connect(url=proxy.url, engine=engine.engine) as client,
    ):
        summary = ingest(
            docs,
            client,
            engine_index,
            encoder,
            retry=FAST_RETRY,
            progress=False,
            batching=Batching(bulk_docs=10, encode_batch_size=10),
        )
    assert proxy.refused == 3
    assert summary.retried >= 3
    assert summary.indexed == 30 and summary.dead_lettered == 0
    assert sorted(_all_ids(engine, engine_index)) == sorted(d["_id"] for d in docs)


def test_model_version_refused_unless_reencode(engine, engine_index, encoder, tiny_joint_model, tmp_path):
    from colsplade.encoders import load_encoder

    ingest(_docs(5), engine, engine_index, encoder, progress=False)
    other_dir = tmp_path / "v2"
    shutil.copytree(tiny_joint_model, other_dir)
    config = json.loads((other_dir / "colsplade.json").read_text())
    config["version"] = "2"
    (other_dir / "colsplade.json").write_text(json.dumps(config))
    other = load_encoder(other_dir, variant="int8")
    with pytest.raises(ModelVersionMismatchError):
        ingest(_docs(5), engine, engine_index, other, progress=False)
    summary = ingest(_docs(5), engine, engine_index, other, reencode=True, progress=False)
    assert summary.indexed == 5
    meta = engine.get_mapping(engine_index)["_meta"]["colsplade"]
    assert meta["model_version"] == "2"
    assert engine.get_document(engine_index, "d1")["_source"]["colsplade"]["model_version"] == "2"


def test_doc_cap_is_recorded_and_another_refused_unless_reencode(engine, engine_index, tiny_joint_model):
    from colsplade.encoders import load_encoder

    def recorded_cap():
        return engine.get_mapping(engine_index)["_meta"]["colsplade"].get("doc_top_k", "absent")

    capped = load_encoder(tiny_joint_model, variant="int8", doc_top_k=8)
    ingest(_docs(5), engine, engine_index, capped, progress=False)
    assert recorded_cap() == 8
    tighter = load_encoder(tiny_joint_model, variant="int8", doc_top_k=4)
    with pytest.raises(DocCapMismatchError, match="doc_top_k=8") as refused:
        ingest(_docs(3, start=5), engine, engine_index, tighter, progress=False)
    assert (refused.value.index_cap, refused.value.run_cap) == (8, 4)
    assert sorted(_all_ids(engine, engine_index)) == sorted(f"d{i}" for i in range(5))  # nothing written
    assert ingest(_docs(5), engine, engine_index, tighter, reencode=True, progress=False).indexed == 5
    assert recorded_cap() == 4
    # an index written before the cap was recorded takes the next run's cap as its record
    meta = engine.get_mapping(engine_index)["_meta"]
    del meta["colsplade"]["doc_top_k"]
    engine.put_mapping(engine_index, {"_meta": meta})
    assert recorded_cap() == "absent"
    assert ingest(_docs(2), engine, engine_index, capped, progress=False).indexed == 2
    assert recorded_cap() == 8


def test_reindex_behind_alias_keeps_fields(engine, engine_index, encoder):
    # An existing search index of a team: its own mapping and documents, no colsplade fields.
    engine.create_index(
        engine_index,
        {
            "mappings": {
                "properties": {
                    "title": {"type": "text"},
                    "text": {"type": "text"},
                    "year": {"type": "integer"},
                    "tag": {"type": "keyword"},
                }
            }
        },
    )
    docs = _docs(25)
    for d in docs:
        body = {k: v for k, v in d.items() if k != "_id"}
        body["tag"] = "t" + d["_id"]
        engine.index_document(engine_index, d["_id"], body)
    engine.refresh(engine_index)
    alias = engine_index + "-search"
    summary = reindex(engine, engine_index, encoder, alias=alias, progress=False)
    target = f"{alias}-v1"
    try:
        assert summary.alias_switched and summary.indexed == 25
        answer = engine.request("GET", f"/_alias/{alias}")
        assert list(answer) == [target]
        assert engine.count(alias) == 25
        stored = engine.get_document(target, "d4")["_source"]
        assert (
            stored["tag"] == "td4"
            and stored["year"] == docs[4]["year"]
            and stored["title"] == docs[4]["title"]
        )
        assert stored["colbert_codes"] and stored["splade"] and "colbert" not in stored
        mapping = engine.get_mapping(target)["properties"]
        assert mapping["tag"]["type"] == "keyword" and mapping["year"]["type"] == "integer"
        # A second version moves the alias again, atomically.
        again = reindex(engine, alias, encoder, progress=False)
        assert again.alias_switched and list(engine.request("GET", f"/_alias/{alias}")) == [f"{alias}-v2"]
        # In place: colsplade's fields are added to the source documents, theirs untouched.
        in_place = reindex(engine, engine_index, encoder, in_place=True, progress=False)
        assert in_place.indexed == 25
        stored = engine.get_document(engine_index, "d7")["_source"]
        assert stored["tag"] == "td7" and stored["colbert_codes"]
        # Already encoded by this model: nothing left to do.
        assert reindex(engine, engine_index, encoder, in_place=True, progress=False).read == 0
    finally:
        for name in (target, f"{alias}-v2"):
            if engine.index_exists(name):
                engine.delete_index(name)


def test_iterable_checkpoint_resume(engine, engine_index, encoder, tmp_path):
    docs = _docs(30)
    ckpt = tmp_path / "ckpt.json"
    seen = []

    def stop_after_first(summary):
        seen.append(summary.indexed)
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(
            IterableSource(docs, name="docs"),
            engine,
            engine_index,
            encoder,
            checkpoint=ckpt,
            progress=False,
            batching=Batching(encode_batch_size=5, bulk_docs=5, queue_batches=1),
            on_batch=stop_after_first,
        )
    position = json.loads(ckpt.read_text())["position"]
    assert position["item"] == seen[0]
    summary = ingest(
        IterableSource(docs, name="docs"), engine, engine_index, encoder, checkpoint=ckpt, progress=False
    )
    assert summary.read == 30 - seen[0]
    assert sorted(_all_ids(engine, engine_index)) == sorted(d["_id"] for d in docs)


def test_cli_stdin_with_chunked_passages(engine, engine_index, tiny_joint_model, tmp_path):
    import subprocess
    import sys

    long_text = " ".join(WORDS[i % len(WORDS)] for i in range(200))
    lines = [
        json.dumps({"id": "short", "title": "cell", "text": "gene protein"}),
        json.dumps({"id": "long", "title": "many words", "text": long_text}),
        "{not json",
    ]
    command = [
        sys.executable, "-m", "colsplade.cli", "--url", engine.settings.urls[0], "--engine", engine.engine,
        "ingest", "-", "--index", engine_index, "--model", str(tiny_joint_model), "--long-docs", "chunk",
        "--dead-letter", str(tmp_path / "dead.jsonl"), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["read"] == 3 and summary["indexed"] == 2 and summary["dead_lettered"] == 1
    assert summary["passages"] > 2
    engine.refresh(engine_index)
    # Passages collapse back to their documents on the keyword parent id.
    body = {"query": {"match_all": {}}, "collapse": {"field": "parent_id"}, "_source": ["parent_id"]}
    hits = engine.search(engine_index, body)["hits"]["hits"]
    assert sorted(h["_source"]["parent_id"] for h in hits) == ["long", "short"]
    assert engine.count(engine_index) == summary["passages"]
    assert "malformed JSON" in (tmp_path / "dead.jsonl").read_text()


class _Hollow:
    """The tiny encoder, except that a text holding HOLLOW yields no ColBERT token (an encoder of a
    team's own whose cleaning drops every token, say)."""

    def __init__(self, inner):
        self.inner = inner
        self.config = inner.config

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts):
        out = self.inner.encode_documents(texts)
        colbert = [v[:0] if "HOLLOW" in t else v for t, v in zip(texts, out.colbert, strict=True)]
        return type(out)(splade=out.splade, colbert=colbert)

    def explain(self, text, *, is_query=True):
        return self.inner.explain(text, is_query=is_query)


def test_document_without_tokens_is_dead_lettered(engine, engine_index, encoder, tmp_path):
    docs = _docs(6)
    docs[2]["text"] = "HOLLOW " + docs[2]["text"]
    dead = tmp_path / "dead.jsonl"
    summary = ingest(docs, engine, engine_index, _Hollow(encoder), dead_letter=dead, progress=False)
    assert summary.indexed == 5 and summary.dead_lettered == 1
    (entry,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert entry["id"] == "d2" and entry["stage"] == "encode" and "no ColBERT tokens" in entry["reason"]
    assert sorted(_all_ids(engine, engine_index)) == sorted(d["_id"] for d in docs if d["_id"] != "d2")


def test_first_ingest_fits_and_saves_the_codec(engine, engine_index, tiny_joint_model, tmp_path, monkeypatch):
    """A model directory without a codec: the run fits one on its first documents, saves it with the
    model and records its hash; the next run into another index reuses it."""
    from colsplade.encoders import CODEC_FILE, load_encoder

    monkeypatch.setenv("COLSPLADE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(tiny_joint_model, model)
    (model / CODEC_FILE).unlink(missing_ok=True)
    fresh = load_encoder(model, variant="int8")
    summary = ingest(_docs(20), engine, engine_index, fresh, progress=False)
    assert summary.indexed == 20 and summary.codec
    assert (model / CODEC_FILE).is_file()
    recorded = engine.get_mapping(engine_index)["_meta"]["colsplade"]["codec"]
    assert recorded["hash"] == summary.codec and recorded["dim"] == 16
    assert recorded["nbits"] == 2 and recorded["pool_factor"] == 3
    other = engine_index + "-b"
    try:
        again = ingest(_docs(5), engine, other, fresh, progress=False)
        assert again.codec == summary.codec
    finally:
        engine.delete_index(other)
