"""Pre-encoded bulk writes (no model pass) on real nodes: what ``ingest`` wrote, read back and written again
through ``ingest_encoded``, is the same index; bad documents are dead-lettered with their reason."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from colsplade.encoders import load_model_codec
from colsplade.engines import scan_index
from colsplade.exceptions import InvalidInputError
from colsplade.ingest import EncodedDocument, FieldMapping, ingest, ingest_encoded
from colsplade.mappings import unescape_impacts
from colsplade.query import SearchClient
from colsplade.testing import TINY_WORDS

WORDS = [w for w in TINY_WORDS if len(w) > 3]


@pytest.fixture(scope="module")
def encoder(tiny_joint_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint_model, variant="int8")


def _docs(n: int) -> list[dict]:
    rng = np.random.default_rng(7)
    return [{"_id": f"d{i}", "text": " ".join(rng.choice(WORDS, 20))} for i in range(n)]


def _read_back(client, index) -> dict[str, dict]:
    return {h.doc_id: h.source for h in scan_index(client, index)}


def test_encoded_documents_round_trip(engine, engine_index, encoder, tmp_path):
    docs = _docs(60)
    ingest(docs, engine, engine_index, encoder, fields=FieldMapping(id_field="_id"), progress=False)
    original = _read_back(engine, engine_index)
    codec = load_model_codec(encoder)
    copy = engine_index + "-copy"
    vectors_doc = encoder.encode_documents([docs[0]["text"]]).colbert[0]
    encoded = [
        # the impacts unescaped as the model gives them, the codes as raw bytes or as their base64 text
        EncodedDocument(
            doc_id,
            unescape_impacts(src["splade"]),
            base64.b64decode(src["colbert_codes"]) if i % 2 else src["colbert_codes"],
            fields={"text": src["text"]},
        )
        for i, (doc_id, src) in enumerate(sorted(original.items()))
    ]
    bad = bytearray(base64.b64decode(original["d1"]["colbert_codes"]))
    bad[-1] ^= 0xFF
    encoded += [
        {"_id": "from-vectors", "impacts": {"cell": 1.0}, "vectors": vectors_doc, "fields": {"text": "x"}},
        EncodedDocument("corrupt", {"cell": 1.0}, bytes(bad)),
        EncodedDocument("no-tokens", {"cell": 1.0}),
        EncodedDocument("bad-impacts", {"cell": "lots"}, codec.encode(vectors_doc)),
        EncodedDocument("reserved", {"cell": 1.0}, codec.encode(vectors_doc), fields={"splade": {"a": 1}}),
    ]
    dead = tmp_path / "dead.jsonl"
    try:
        summary = ingest_encoded(encoded, engine, copy, encoder, dead_letter=dead)
        assert (summary.read, summary.indexed, summary.dead_lettered) == (65, 61, 4), summary
        rejected = {
            json.loads(line)["id"]: json.loads(line)["reason"] for line in dead.read_text().splitlines()
        }
        assert set(rejected) == {"corrupt", "no-tokens", "reserved", "bad-impacts"}
        assert "checksum" in rejected["corrupt"] and "colsplade's own" in rejected["reserved"]
        written = _read_back(engine, copy)
        assert engine.count(copy) == 61
        for doc_id, src in original.items():
            assert written[doc_id]["splade"] == src["splade"]
            assert written[doc_id]["colbert_codes"] == src["colbert_codes"]
            assert written[doc_id]["colsplade"]["model_version"] == src["colsplade"]["model_version"]
        # the vectors were compressed with the model's codec, as ingest would
        assert (
            written["from-vectors"]["colbert_codes"] == base64.b64encode(codec.encode(vectors_doc)).decode()
        )
        # the copy answers as the original does (same impacts, same codes, same codec in its _meta)
        for query in ("cell gene protein", "virus infection immune"):
            a = SearchClient(engine_index, encoder, client=engine).search(query, k=10)
            b = SearchClient(copy, encoder, client=engine).search(
                query, k=10, filters=[{"ids": {"values": sorted(original)}}]
            )
            assert a.ids() == b.ids() and not b.partial
    finally:
        if engine.index_exists(copy):
            engine.delete_index(copy)


def test_encoded_documents_need_a_codec(engine, engine_index, tiny_joint_model, tmp_path):
    import shutil

    from colsplade.encoders import CODEC_FILE, load_encoder

    bare = tmp_path / "bare"
    shutil.copytree(tiny_joint_model, bare)
    (bare / CODEC_FILE).unlink(missing_ok=True)
    with pytest.raises(InvalidInputError, match="no token codec"):
        ingest_encoded([EncodedDocument("a", {"cell": 1.0}, b"x")], engine, engine_index, load_encoder(bare))
