"""Label-free pairs (pure): pseudo-query kinds, the too-small-corpus refusal, near-duplicate filtering."""

from __future__ import annotations

import json
import random

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.training._label_free import corpus_documents
from colsplade.training._pseudo import (
    PseudoDocument,
    can_make,
    filter_near_duplicates,
    make_pair,
    make_pairs,
    near_duplicate,
    split_sentences,
)

BODY = (
    "Low dose aspirin lowers the risk of a first heart attack in adults over fifty. "
    "The effect is smaller in women than in men. Bleeding in the stomach is the main harm. "
    "Doctors weigh the two before they prescribe it."
)


def _docs(n: int, body: str = BODY) -> list[PseudoDocument]:
    return [
        PseudoDocument(f"d{i}", f"Aspirin trial number {i}", f"{body} Trial {i} ran for {i} years.")
        for i in range(n)
    ]


def test_each_kind_makes_a_pair_that_differs_from_the_document() -> None:
    doc = _docs(1)[0]
    rng = random.Random(0)
    title = make_pair(doc, "title", rng)
    assert title.query == doc.title and title.positive_text == doc.body  # the body only: no title match
    ict = make_pair(doc, "ict", rng)
    assert ict.query in split_sentences(doc.body) and ict.query not in ict.positive_text
    assert ict.positive_text.startswith(doc.title)
    crop = make_pair(doc, "crop", rng)
    words = doc.text.split()
    assert 4 <= len(crop.query.split()) <= 12 and crop.query in " ".join(words)
    assert len(crop.positive_text.split()) >= len(words) // 2 and crop.positive_text in doc.text


def test_kinds_need_enough_text() -> None:
    short = PseudoDocument("s", "A title here", "Too short.")
    assert not can_make(short, "title") and not can_make(short, "ict") and not can_make(short, "crop")
    untitled = PseudoDocument("u", "", BODY)
    assert not can_make(untitled, "title") and can_make(untitled, "ict") and can_make(untitled, "crop")
    with pytest.raises(InvalidInputError, match="unknown pseudo-query kind"):
        can_make(untitled, "summary")


def test_one_pair_per_document_seeded_and_mixed() -> None:
    docs = _docs(200)
    pairs = make_pairs(docs, seed=1)
    assert [p.doc_id for p in pairs] == [d.doc_id for d in docs]
    assert pairs == make_pairs(docs, seed=1)
    assert pairs != make_pairs(docs, seed=2)
    kinds = {p.kind for p in pairs}
    assert kinds == {"title", "ict", "crop"}
    only = make_pairs(docs, kinds=["crop"], seed=1, max_pairs=50)
    assert len(only) == 50 and {p.kind for p in only} == {"crop"}
    with pytest.raises(InvalidInputError, match="kinds must be among"):
        make_pairs(docs, kinds=["title", "bogus"])


def test_a_corpus_too_small_to_make_pairs_is_refused_with_counts() -> None:
    docs = [*_docs(10), PseudoDocument("e", "", ""), PseudoDocument("s", "Hi", "Short text.")]
    with pytest.raises(InvalidInputError) as info:
        make_pairs(docs, min_pairs=32)
    message = str(info.value)
    assert "too small for label-free training" in message
    assert "12 document(s) read, 10 gave a pseudo-query (1 empty, 1 too short" in message
    assert "at least 32" in message and "--data" in message


def test_near_duplicates_and_verbatim_copies_are_not_negatives() -> None:
    assert near_duplicate(BODY, BODY.replace("fifty", "sixty"))
    assert not near_duplicate(BODY, "The stock market fell on Tuesday after the bank report.")
    corpus = {
        "dup": BODY.upper(),  # the same text re-posted
        "copy": "Unrelated words. Bleeding in the stomach is the main harm. More unrelated words follow here.",
        "neg": "Vitamin D and bone density in older women: a cohort study of falls.",
        "partial": "stomachs bleeding is a harm",
    }
    kept, dropped = filter_near_duplicates(
        BODY, "Bleeding in the stomach is the main harm.", list(corpus), corpus, threshold=0.6
    )
    assert kept == ["neg", "partial"] and dropped == 2


def test_corpus_file_reader_reports_bad_lines(tmp_path) -> None:
    good = tmp_path / "corpus.jsonl"
    good.write_text(
        json.dumps({"_id": "1", "title": "T", "text": "body"})
        + "\n\n"
        + json.dumps({"id": 2, "body": "x"})
        + "\n"
    )
    docs = list(corpus_documents(good, "title", ["text", "body"]))
    assert [(d.doc_id, d.title, d.body) for d in docs] == [("1", "T", "body"), ("2", "", "x")]
    assert [d.doc_id for d in corpus_documents(tmp_path)] == ["1", "2"]  # a directory: its corpus.jsonl
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "a"}\nnot json\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2: not JSON"):
        list(corpus_documents(bad))
    bad.write_text('{"text": "no id"}\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:1: expected a JSON object with an '_id'"):
        list(corpus_documents(bad))
