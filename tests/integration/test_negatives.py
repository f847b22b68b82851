"""BM25 hard negatives mined on the real engines (Elasticsearch and OpenSearch) through colsplade.engines."""

from __future__ import annotations

import pytest

from colsplade.training import TrainExample, mine_bm25_negatives, sample_negatives
from colsplade.training._negatives import bm25_search, index_corpus_text

CORPUS = {
    "d0": "aspirin reduces the risk of heart attack in adults",
    "d1": "aspirin and heart attack: a randomised trial of low dose aspirin",
    "d2": "heart attack risk factors include smoking and hypertension",
    "d3": "vitamin d supplements and bone density in older women",
    "d4": "bone fractures and vitamin d deficiency",
    "d5": "the stock market fell on tuesday",
    "d6": "aspirin dosage for children with fever",
}


@pytest.fixture
def bm25_index(engine):
    name = "colsplade-test-negatives"
    yield name
    if engine.index_exists(name):
        engine.delete_index(name)


def test_mined_negatives_are_bm25_hits_and_never_positives(engine, bm25_index):
    examples = [
        TrainExample("q0", "does aspirin prevent heart attack", ["d0", "d1"]),
        TrainExample("q1", "vitamin d and bone", ["d3"]),
    ]
    mined = mine_bm25_negatives(engine, bm25_index, examples, CORPUS, depth=3)
    assert engine.count(bm25_index) == len(CORPUS)
    for e in mined:
        assert e.negatives and not set(e.negatives) & set(e.positives)
        assert len(e.negatives) <= 3
    # BM25 order: the heart-attack document is the best non-positive hit for the aspirin query
    assert mined[0].negatives[0] in ("d2", "d6")
    assert mined[1].negatives[0] == "d4"
    run = bm25_search(engine, bm25_index, {"q1": "vitamin d and bone"}, k=2)
    assert set(run["q1"]) == {"d3", "d4"}


def test_skip_top_and_reuse(engine, bm25_index):
    examples = [TrainExample("q0", "aspirin heart attack", ["d0"])]
    first = mine_bm25_negatives(engine, bm25_index, examples, CORPUS, depth=5)
    skipped = mine_bm25_negatives(engine, bm25_index, examples, CORPUS, depth=5, skip_top=1)
    assert skipped[0].negatives == first[0].negatives[1:6]
    assert index_corpus_text(engine, bm25_index, CORPUS) == len(CORPUS)  # reused, not rebuilt


def test_sampling_from_mined_negatives_never_returns_positive(engine, bm25_index):
    import random

    examples = [TrainExample("q0", "aspirin heart attack", ["d0", "d1"])]
    mined = mine_bm25_negatives(engine, bm25_index, examples, CORPUS, depth=10)
    rng = random.Random(0)
    for _ in range(200):
        negs = sample_negatives(mined[0], 3, rng, list(CORPUS))
        assert len(negs) == 3 and not {"d0", "d1"} & set(negs)
