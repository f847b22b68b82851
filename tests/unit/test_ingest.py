"""Pure parts of the ingest pipeline: sources, validation, passages, checkpoint, dead letters, retry policy."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from colsplade.engines._bulk import RetryPolicy
from colsplade.exceptions import InvalidInputError
from colsplade.ingest import (
    Checkpoint,
    DeadLetterWriter,
    FieldMapping,
    FileSource,
    IngestSummary,
    IterableSource,
    StreamSource,
    as_source,
    prepare_document,
    split_passages,
    stable_id,
)
from colsplade.ingest._documents import Prepared, Rejected
from colsplade.ingest._json import dumps
from colsplade.mappings import FieldSpec, stored_vectors

# ------------------------------------------------------------------------------------------ sources


def test_jsonl_records_with_bad_lines_and_resume(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b'{"id": 1, "text": "one"}\n'
        b"\n"
        b'{"id": 2, "text": \n'
        b'{"id": 3, "text": "caf\xe9"}\n'
        b"[1, 2]\n"
        b'\xef\xbb\xbf{"id": 4, "text": "bom"}\n'
        b'{"id": 5, "text": "no newline at the end"}'
    )
    records = list(FileSource(path).records())
    assert [r.doc["id"] if r.doc else None for r in records] == [1, None, None, None, 4, 5]
    assert "malformed JSON" in records[1].error
    assert "UTF-8" in records[2].error and "\\xe9" in records[2].raw
    assert "not an object" in records[3].error
    assert records[0].position == {"file": 0, "offset": 25, "line": 1}
    # Resuming after record 3 (line 4) reads what follows only.
    resumed = list(FileSource(path).records(records[2].position))
    assert [r.doc["id"] if r.doc else None for r in resumed] == [None, 4, 5]
    # After the last record, nothing is left.
    assert list(FileSource(path).records(records[-1].position)) == []
    assert FileSource(path).total() == 6


def test_globs_json_arrays_and_single_objects(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps([{"id": "x", "text": "t"}, 5, {"id": "y", "text": "u"}]))
    (tmp_path / "c.json").write_text(json.dumps({"id": "z", "text": "pretty"}, indent=2))
    (tmp_path / "a.jsonl").write_text('{"id": "w", "text": "v"}\n')
    source = FileSource(str(tmp_path / "*.json*"))
    assert [p.name for p in source.files] == ["a.jsonl", "b.json", "c.json"]
    records = list(source.records())
    assert [r.doc["id"] if r.doc else r.error for r in records] == [
        "w",
        "x",
        "a JSON int, not an object",
        "y",
        "z",
    ]
    resumed = list(source.records(records[2].position))
    assert [r.doc["id"] for r in resumed] == ["y", "z"]
    with pytest.raises(InvalidInputError):
        FileSource(str(tmp_path / "*.csv"))
    with pytest.raises(InvalidInputError):
        FileSource(tmp_path / "missing.jsonl")


def test_oversized_record_is_rejected_unparsed(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"id": 1, "text": "x" * 5000}) + "\n")
    (record,) = FileSource(path, max_record_bytes=1000).records()
    assert record.doc is None and "larger than the limit" in record.error


def test_stream_source_reads_lines_as_they_come_and_skips_on_resume():
    stream = io.BytesIO(b'{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\nnot json\n{"id": 3, "text": "c"}\n')
    records = list(StreamSource(stream).records({"line": 1}))
    assert [r.doc["id"] if r.doc else "bad" for r in records] == [2, "bad", 3]
    assert records[-1].position == {"line": 4}


def test_iterable_source_and_as_source(tmp_path):
    items = [{"id": 1, "text": "a"}, "oops", {"id": 2, "text": "b"}]
    records = list(IterableSource(items).records({"item": 1}))
    assert records[0].error and records[1].doc["id"] == 2
    assert IterableSource(items).total() == 3
    assert isinstance(as_source(items), IterableSource)
    assert isinstance(as_source(iter(items)), IterableSource)
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert isinstance(as_source(str(tmp_path / "a.jsonl")), FileSource)
    assert isinstance(as_source(io.BytesIO(b"")), StreamSource)
    with pytest.raises(InvalidInputError):
        as_source(42)


# ------------------------------------------------------------------------------------------ documents


def test_ids_explicit_default_and_hashed():
    mapping = FieldMapping()
    assert prepare_document({"_id": "a", "text": "t"}, mapping).doc_id == "a"
    assert prepare_document({"id": 12, "text": "t"}, mapping).doc_id == "12"
    hashed = prepare_document({"text": "t", "x": 1}, mapping)
    assert hashed.doc_id == stable_id({"x": 1, "text": "t"}) and len(hashed.doc_id) == 40
    nested = prepare_document({"meta": {"key": "k1"}, "text": "t"}, FieldMapping(id_field="meta.key"))
    assert nested.doc_id == "k1"
    missing = prepare_document({"text": "t"}, FieldMapping(id_field="doc_id"))
    assert isinstance(missing, Rejected) and missing.reason == "missing id field 'doc_id'"
    assert "512" in prepare_document({"id": "x" * 600, "text": "t"}, mapping).reason
    assert "string or an integer" in prepare_document({"id": [1], "text": "t"}, mapping).reason
    # The source's own id (an index's _id) wins.
    assert prepare_document({"id": 1, "text": "t"}, mapping, source_id="src").doc_id == "src"


def test_engine_metadata_fields_in_a_document_are_dead_lettered_not_dropped():
    # Issue found as a new user: "_routing" in a body vanished without a word.
    mapping = FieldMapping()
    for field in ("_routing", "_index", "_source", "_version"):
        rejected = prepare_document({"id": "r1", "text": "t", field: "x"}, mapping)
        assert isinstance(rejected, Rejected), field
        assert rejected.doc_id == "r1" and rejected.reason.startswith(f"{field}: engine metadata field")
        assert "rename" in rejected.reason
    both = prepare_document({"_id": 3, "_routing": "a", "_score": 1.0, "text": "t"}, mapping)
    assert isinstance(both, Rejected) and both.reason.startswith("_routing, _score:") and both.doc_id == "3"
    # _id is the id, not a field: still taken, never copied into the body
    kept = prepare_document({"_id": "a", "text": "t", "routing": "r1"}, mapping)
    assert isinstance(kept, Prepared) and kept.units[0].body == {"text": "t", "routing": "r1"}


def test_text_rules():
    mapping = FieldMapping(text_fields=("title", "body"))
    ok = prepare_document({"id": 1, "title": "T", "body": ["p1", "p2"]}, mapping)
    assert isinstance(ok, Prepared) and ok.units[0].text == "T\np1\np2"
    assert prepare_document({"id": 1, "other": "x"}, mapping).reason.startswith("missing text")
    assert prepare_document({"id": 1, "title": "", "body": None}, mapping).reason.startswith("empty text")
    assert "holds a dict" in prepare_document({"id": 1, "title": {"a": 1}}, mapping).reason
    assert prepare_document({"id": 1, "title": 2024}, mapping).units[0].text == "2024"


def test_copied_fields_skip_metadata_and_colsplade_fields():
    doc = {"_id": "a", "text": "t", "year": 1, "splade": {"x": 1}, "colbert": [], "tags": ["q"]}
    body = prepare_document(doc, FieldMapping()).units[0].body
    assert body == {"text": "t", "year": 1, "tags": ["q"]}
    body = prepare_document(doc, FieldMapping(copy_fields=("year", "absent"))).units[0].body
    assert body == {"year": 1}
    assert prepare_document(doc, FieldMapping(copy_fields=())).units[0].body == {}


def test_truncate_and_chunk_long_documents():
    text = " ".join(f"w{i}" for i in range(1000))
    cut = prepare_document({"id": "L", "title": "Title", "text": text}, FieldMapping(), max_chars=100)
    assert cut.truncated and len(cut.units) == 1 and len(cut.units[0].text) == 100
    assert cut.units[0].body["text"] == text  # the stored field keeps the whole text
    chunked = prepare_document(
        {"id": "L", "title": "Title", "text": text, "year": 3},
        FieldMapping(),
        long_docs="chunk",
        passage_words=300,
        passage_overlap=50,
    )
    ids = [u.doc_id for u in chunked.units]
    assert ids == ["L", "L#p1", "L#p2", "L#p3"]
    for n, unit in enumerate(chunked.units):
        assert unit.body["parent_id"] == "L" and unit.body["passage"] == n
        assert unit.body["title"] == "Title" and unit.body["year"] == 3
        assert unit.body["text"] == unit.text
    assert chunked.units[1].text.split()[0] == "w249"  # "Title" is word 0 of the joined text
    assert split_passages("", 5) == []
    with pytest.raises(InvalidInputError):
        split_passages("a b", 2, overlap=2)


# ------------------------------------------------------------------------------------------ files


def test_checkpoint_atomic_and_bound_to_its_source(tmp_path):
    path = tmp_path / "c.json"
    ckpt = Checkpoint(path, {"kind": "files", "files": ["a"]}, "idx")
    assert ckpt.position is None
    ckpt.save({"file": 0, "offset": 10}, counts={"indexed": 3})
    assert not (tmp_path / "c.json.tmp").exists()
    again = Checkpoint(path, {"kind": "files", "files": ["a"]}, "idx")
    assert again.position == {"file": 0, "offset": 10} and again.state["counts"] == {"indexed": 3}
    with pytest.raises(InvalidInputError, match="another run"):
        Checkpoint(path, {"kind": "files", "files": ["b"]}, "idx")
    with pytest.raises(InvalidInputError, match="another run"):
        Checkpoint(path, {"kind": "files", "files": ["a"]}, "other")
    path.write_text("{torn")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        Checkpoint(path, {"kind": "files", "files": ["a"]}, "idx")


def test_dead_letter_lines(tmp_path):
    writer = DeadLetterWriter(tmp_path / "dl" / "dead.jsonl")
    writer.write(reason="malformed JSON: x", stage="read", position={"line": 2}, raw="{bad")
    writer.write(
        reason="empty text", stage="validate", doc_id="a", document={"id": "a", "v": np.float32(1.5)}
    )
    writer.write(reason="odd", stage="engine", document={"x": object()})
    writer.close()
    lines = [json.loads(line) for line in (tmp_path / "dl" / "dead.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in lines] == ["read", "validate", "engine"]
    assert lines[0]["raw"] == "{bad" and lines[1]["document"]["v"] == 1.5 and "object" in lines[2]["raw"]
    assert writer.count == 3 and writer.reasons["malformed JSON"] == 1
    DeadLetterWriter(None).write(reason="r", stage="read")  # no file: logged and counted only


# ------------------------------------------------------------------------------------------ misc


def test_retry_policy_backoff_is_capped_with_jitter():
    policy = RetryPolicy(initial_backoff=1, max_backoff=8)
    rng = random.Random(0)
    delays = [policy.delay(i, rng) for i in range(8)]
    assert all(0.5 <= d <= 1 for d in delays[:1]) and all(d <= 8 for d in delays)
    assert all(4 <= d <= 8 for d in delays[4:])
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jitter: not in lock step
    with pytest.raises(InvalidInputError):
        RetryPolicy(max_retries=-1)


def test_vectors_by_element_type_and_json():
    v = np.array([[0.6, -0.8, 0.0, 0.0, 0.1, -0.1, 0.2, 0.3]], dtype=np.float32)
    assert stored_vectors(v, FieldSpec(colbert_dim=8)).dtype == np.float32
    assert stored_vectors(v, FieldSpec(colbert_dim=8, element_type="byte")).tolist() == [
        [76, -102, 0, 0, 13, -13, 25, 38]
    ]
    bits = stored_vectors(v, FieldSpec(colbert_dim=8, element_type="bit"))
    assert bits.dtype == np.int8 and bits.shape == (1, 1)
    assert json.loads(dumps({"v": bits[0]})) == {"v": [int(bits[0, 0])]}
    assert json.loads(dumps({"v": v[0]}))["v"][0] == pytest.approx(0.6)


def test_summary_text_and_exit_code():
    summary = IngestSummary(
        index="i", read=10, indexed=8, dead_lettered=2, seconds=2.0, dead_letter="d.jsonl"
    )
    assert summary.exit_code == 3 and summary.docs_per_second == 4.0
    assert "8 indexed, 2 dead-lettered of 10 read" in str(summary) and "d.jsonl" in str(summary)
    assert summary.as_dict()["docs_per_second"] == 4.0
    assert IngestSummary(index="i").exit_code == 0


def test_a_malformed_bulk_action_is_refused_when_made_not_retried():
    from colsplade.engines import BulkAction
    from colsplade.exceptions import InvalidInputError

    assert BulkAction("docs", "1", {"t": 1}).op == "index"
    assert BulkAction("docs", "1", None, op="delete").source is None  # type: ignore[arg-type]
    for args, kwargs, what in [
        (("index", "docs", "1", {"t": 1}), {}, "op must be"),  # arguments shifted by one
        (("docs", "1", {"t": 1}), {"op": "upsert"}, "op must be"),
        (("", "1", {"t": 1}), {}, "index must be"),
        (("docs", 1, {"t": 1}), {}, "doc_id must be"),
        (("docs", "1", [1, 2]), {}, "source must be"),
    ]:
        with pytest.raises(InvalidInputError, match=what):
            BulkAction(*args, **kwargs)


def test_ingest_opens_a_model_directory_a_pair_or_an_encoder_in_one_place(tmp_path):
    pytest.importorskip("torch")
    from colsplade.encoders import EncoderPair
    from colsplade.ingest._target import open_encoder
    from colsplade.testing import make_tiny_model_dir

    splade = make_tiny_model_dir("splade", tmp_path / "splade")
    colbert = make_tiny_model_dir("colbert", tmp_path / "colbert")
    single = open_encoder(splade)
    assert single.config.kind == "splade" and single.variant == "int8"
    pair = open_encoder((splade, colbert))
    assert isinstance(pair, EncoderPair)
    assert open_encoder(single) is single  # an encoder object is used as it is
    with pytest.raises(InvalidInputError):
        open_encoder(None)


def test_the_document_cap_an_encoder_writes_with(tmp_path):
    pytest.importorskip("torch")
    from types import SimpleNamespace

    from colsplade.encoders import load_encoder
    from colsplade.ingest._target import doc_cap_of, open_encoder
    from colsplade.testing import make_tiny_model_dir

    splade = make_tiny_model_dir("splade", tmp_path / "splade")
    colbert = make_tiny_model_dir("colbert", tmp_path / "colbert")
    capped = load_encoder(splade, variant="int8", doc_top_k=12)
    assert doc_cap_of(capped) == (True, 12)  # the override the encoder was opened with
    assert doc_cap_of(open_encoder(splade)) == (True, capped.config.splade.doc_top_k)  # the model's own
    pair = open_encoder((splade, colbert))
    assert doc_cap_of(pair) == (True, pair.splade.doc_top_k)  # a pair: its SPLADE model's
    assert doc_cap_of(open_encoder(colbert)) == (True, None)  # ColBERT alone writes no SPLADE terms
    own = SimpleNamespace(config=SimpleNamespace(kind="joint"))  # a caller's encoder that does not say
    assert doc_cap_of(own) == (False, None)
