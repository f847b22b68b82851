"""The shared readers: strict JSONL (``colsplade.read_jsonl``) and a document's text (``_text.document_text``).

Every strict JSONL reader of the package names the file and line of a bad line; ingest, label-free
training and BEIR evaluation read the same text for the same document (pure: no torch, no engine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import colsplade
from colsplade._text import document_text
from colsplade.evaluation import doc_text, load_corpus, load_queries
from colsplade.exceptions import InvalidInputError
from colsplade.ingest import FieldMapping, prepare_document
from colsplade.ingest._documents import Prepared

# -- read_jsonl ---------------------------------------------------------------------------------------


def test_read_jsonl_yields_the_objects_in_file_order(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n   \n{"a": 2}\n{"a": 3}')  # BOM, CRLF, blanks, no final newline
    assert [r["a"] for r in colsplade.read_jsonl(p)] == [1, 2, 3]
    assert [n for n, _ in colsplade.read_jsonl(str(p), line_numbers=True)] == [1, 4, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"a": 1}\n{"a": 2,}\n',
            r"x\.jsonl:2: not JSON \(.*column 9\); each line must hold one JSON object",
        ),
        (
            b'{"a": 1}\n\n"text"\n',
            r"x\.jsonl:3: expected a JSON object, got a string; .*fix or remove that line",
        ),
        (
            b'{"a": 1}\n' * 5000 + b'{"a": "\xff"}\n',
            r"x\.jsonl:5001: not UTF-8 text .*save the file as UTF-8",
        ),
    ],
)
def test_read_jsonl_names_the_file_and_line_of_a_bad_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        list(colsplade.read_jsonl(p))


def test_read_jsonl_refuses_a_missing_file_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"missing\.jsonl does not exist.*one JSON object a line"):
        colsplade.read_jsonl(tmp_path / "missing.jsonl")  # not only once iterated


def test_the_strict_readers_share_the_line_numbered_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "a"}\n[1, 2]\n', encoding="utf-8")
    for read in (load_corpus, load_queries):
        with pytest.raises(InvalidInputError, match=r"bad\.jsonl:2: expected a JSON object, got a list"):
            read(bad)
    bad.write_text('{"_id": "1", "text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:2: a record needs an '_id'"):
        load_corpus(bad)
    bad.write_text('{"_id": "1", "title": {"x": 1}, "text": "a"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:1: text field 'title' holds a dict, not text"):
        load_corpus(bad)


def test_the_training_readers_share_the_line_numbered_errors(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from colsplade.training import TrainExample, load_negatives, load_training_jsonl

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positives": ["a"]}\nnot json\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:2: not JSON"):
        load_training_jsonl(bad)
    bad.write_text('{"query_id": "q1", "negatives": ["d1"]}\n{"query_id": "q2", "negatives": "d2"}\n')
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:2: expected \{'query_id': \.\.\., 'negatives'"):
        load_negatives(bad, [TrainExample("q1", "q", ["d0"])])


# -- document_text: one text for ingest, label-free training and evaluation ----------------------------

DOCUMENTS = [
    {"_id": "plain", "title": "Aspirin", "text": "Aspirin thins the blood."},
    {"_id": "no-title", "text": "  Only a body, padded.  "},
    {"_id": "empty-title", "title": "", "text": "Body.", "year": 2020},
    {"_id": "lists", "title": ["Part one", "part two"], "text": ["First line.", "Second line."]},
    {"_id": "number", "title": 1984, "text": "A novel."},
    {"_id": "dotted-key", "title": "T", "meta.abstract": "literal dotted key"},
    {"_id": "nested", "title": "T", "meta": {"abstract": "nested value"}},
    {"_id": "nulls", "title": None, "text": "x", "meta": {"abstract": None}},
]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[d["_id"] for d in DOCUMENTS])
@pytest.mark.parametrize("text_fields", [("text",), ("text", "meta.abstract")])
def test_label_free_text_is_the_text_ingest_encodes(doc: dict, text_fields: tuple[str, ...]) -> None:
    from colsplade.training._label_free import _document

    prepared = prepare_document(doc, FieldMapping(id_field="_id", text_fields=("title", *text_fields)))
    pseudo = _document(doc["_id"], doc, "title", text_fields)
    if isinstance(prepared, Prepared):
        assert pseudo.text == prepared.units[0].text == document_text(doc, ("title", *text_fields))
    else:
        assert pseudo.text == ""  # ingest refuses an empty text; label-free gets no pair from it


@pytest.mark.parametrize("doc", DOCUMENTS[:5], ids=[d["_id"] for d in DOCUMENTS[:5]])
def test_beir_evaluation_reads_the_text_ingest_encodes(doc: dict) -> None:
    prepared = prepare_document(doc, FieldMapping(id_field="_id", text_fields=("title", "text")))
    assert isinstance(prepared, Prepared)
    assert doc_text(doc) == prepared.units[0].text


def test_label_free_corpus_leaves_out_what_ingest_refuses(tmp_path: Path, caplog) -> None:
    from colsplade.training._label_free import corpus_documents

    corpus = tmp_path / "corpus.jsonl"
    records = [
        {"_id": "1", "title": "Cats", "text": ["purr", "sleep"]},
        {"_id": "2", "title": "Dogs", "text": {"not": "text"}},  # ingest dead-letters this one
        {"id": 3, "title": "Birds", "text": "sing"},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with caplog.at_level("WARNING"):
        docs = list(corpus_documents(corpus))
    assert [(d.doc_id, d.text) for d in docs] == [("1", "Cats\npurr\nsleep"), ("3", "Birds\nsing")]
    assert "1 document(s) left out" in caplog.text and "text field 'text' holds a dict" in caplog.text
    rejected = prepare_document(records[1], FieldMapping())
    assert (
        not isinstance(rejected, Prepared) and rejected.reason == "text field 'text' holds a dict, not text"
    )
