"""Ingest into real Elasticsearch and OpenSearch nodes: search-back, bad input, 429s, reindex, model versions."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np
import pytest

from colsplade.engines import connect, create_index
from colsplade.exceptions import ModelVersionMismatchError
from colsplade.ingest import FieldMapping, IterableSource, RetryPolicy, ingest, reindex
from colsplade.mappings import FieldSpec, unescape_impacts
from colsplade.query import sparse_query

FAST_RETRY = RetryPolicy(max_retries=8, initial_backoff=0.05, max_backoff=0.5)
WORDS = "cell gene protein virus immune cancer patient blood brain heart liver lung mouse drug dose trial".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from colsplade.training._tiny import make_tiny_model_dir

    return make_tiny_model_dir("joint", tmp_path_factory.mktemp("model") / "joint", dim=16)


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_model, variant="int8")


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
    summary = ingest(docs, engine, engine_index, encoder, progress=False, encode_batch_size=8, bulk_docs=16)
    assert summary.read == 40 and summary.indexed == 40 and summary.dead_lettered == 0
    assert summary.exit_code == 0
    ids = _all_ids(engine, engine_index)
    assert sorted(ids) == sorted(d["_id"] for d in docs)
    stored = engine.get_document(engine_index, "d3")["_source"]
    assert stored["title"] == docs[3]["title"] and stored["year"] == docs[3]["year"]
    assert stored["colsplade"]["model_version"] == str(encoder.config.version)
    assert len(stored["colbert"]) > 0 and len(stored["colbert"][0]["v"]) == 16
    expected = encoder.encode_documents([docs[3]["title"] + "\n" + docs[3]["text"]])
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
