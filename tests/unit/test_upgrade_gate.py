"""The upgrade gate's pure parts: queries that are no span of their target, paired intervals, the decision."""

from __future__ import annotations

import random

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.upgrade import choose, gate_queries, paired_bootstrap, spearman, text_fields_of

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
    "tumour",
    "receptor",
    "dose",
]


def _doc(rng: random.Random, title_in_body: bool = False) -> dict:
    title = " ".join(rng.choice(WORDS) for _ in range(5))
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "." for _ in range(5)
    ]
    body = " ".join(sentences)
    return {"title": title, "text": (title + ". " + body) if title_in_body else body}


def test_no_gate_query_is_a_span_of_its_positive_form():
    rng = random.Random(3)
    docs = [(f"d{i}", _doc(rng, title_in_body=i % 2 == 0)) for i in range(200)]
    queries = gate_queries(docs, title_field="title", text_fields=["text"], seed=1)
    assert len(queries) >= 190
    assert {q.kind for q in queries} == {"title", "ict"}
    sources = dict(docs)
    for q in queries:
        assert all(q.query.lower() not in v.lower() for v in q.fields.values())
        if q.kind == "title":  # the title is gone, and its repetition in the body too
            assert q.fields["title"] == "" and q.query == sources[q.doc_id]["title"]
        else:  # the sentence was cut out of the body; the title stays
            assert q.query in sources[q.doc_id]["text"] and q.fields["title"] == sources[q.doc_id]["title"]
    assert gate_queries(docs, title_field="title", text_fields=["text"], seed=1) == queries  # seeded


def test_gate_without_titles_uses_sentences_and_skips_short_documents():
    rng = random.Random(4)
    docs = [(f"d{i}", {"body": _doc(rng)["text"]}) for i in range(20)] + [("short", {"body": "Too short."})]
    queries = gate_queries(docs, title_field=None, text_fields=["body"])
    assert {q.kind for q in queries} == {"ict"} and "short" not in {q.doc_id for q in queries}
    with pytest.raises(InvalidInputError, match="gate query kinds"):
        gate_queries(docs, title_field=None, text_fields=["body"], kinds=["crop"])


def test_paired_bootstrap_interval_and_errors():
    rng = random.Random(0)
    base = [rng.random() for _ in range(300)]
    better = [b + 0.05 + rng.gauss(0, 0.05) for b in base]
    r = paired_bootstrap(better, base, seed=1)
    assert 0.04 < r["mean"] < 0.06 and 0 < r["lo"] < r["mean"] < r["hi"]
    noise = [b + rng.gauss(0, 0.2) for b in base]
    r = paired_bootstrap(noise, base)
    assert r["lo"] < 0 < r["hi"]
    with pytest.raises(InvalidInputError):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_choose_switches_only_above_zero_or_forced():
    gains = {"a": {"mean": 0.02, "lo": -0.01, "hi": 0.05}, "b": {"mean": -0.01, "lo": -0.03, "hi": 0.01}}
    kept = choose(gains)
    assert kept["plan"] == "a" and not kept["switch"] and "not shown to beat" in kept["reason"]
    forced = choose(gains, force=True)
    assert forced["switch"] and "--force" in forced["reason"]
    assert not choose({"b": gains["b"]})["switch"] and "does not beat" in choose({"b": gains["b"]})["reason"]


def test_spearman_and_text_fields():
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0 and spearman([1, 1, 1], [1, 2, 3]) is None
    props = {"title": {"type": "text"}, "tags": {"type": "keyword"}, "splade": {"type": "rank_features"}}
    assert text_fields_of(props) == {"title": "standard"}
