"""Training data: BEIR loading + validation (every bad-input case), JSONL formats, negatives sampling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from colsplade.evaluation import load_beir
from colsplade.exceptions import InvalidInputError
from colsplade.training import (
    TrainExample,
    check_base_model,
    examples_from_beir,
    load_negatives,
    load_training_jsonl,
    sample_negatives,
    save_negatives,
    split_dev,
    validate_examples,
)


def write_beir(root: Path, *, corpus=None, queries=None, qrels=None, split: str = "train") -> Path:
    corpus = (
        corpus
        if corpus is not None
        else {f"d{i}": f"document number {i} about topic {i % 3}" for i in range(12)}
    )
    queries = queries if queries is not None else {f"q{i}": f"what about topic {i}" for i in range(4)}
    qrels = qrels if qrels is not None else [(f"q{i}", f"d{i}", 1) for i in range(4)]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as f:
        for d, t in corpus.items():
            f.write(json.dumps({"_id": d, "title": "", "text": t}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for q, t in queries.items():
            f.write(json.dumps({"_id": q, "text": t}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    with (root / "qrels" / f"{split}.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, r in qrels:
            f.write(f"{q}\t{d}\t{r}\n")
    return root


def test_load_beir_ok(tmp_path):
    data = load_beir(write_beir(tmp_path / "b"), "train")
    assert len(data.corpus) == 12 and len(data.queries) == 4
    ex = examples_from_beir(data)
    validate_examples(ex, data.corpus)
    assert [e.positives for e in ex] == [["d0"], ["d1"], ["d2"], ["d3"]]


def test_missing_split(tmp_path):
    with pytest.raises(InvalidInputError, match=r"no 'dev' split.*train"):
        load_beir(write_beir(tmp_path / "b"), "dev")


def test_missing_directory(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_beir(tmp_path / "nope", "train")


def test_unknown_document_id_in_qrels(tmp_path):
    root = write_beir(tmp_path / "b", qrels=[("q0", "d0", 1), ("q1", "ghost", 1)])
    with pytest.raises(InvalidInputError, match=r"document id.*ghost"):
        load_beir(root, "train")


def test_unknown_query_id_in_qrels(tmp_path):
    root = write_beir(tmp_path / "b", qrels=[("q0", "d0", 1), ("q99", "d1", 1)])
    with pytest.raises(InvalidInputError, match=r"query id.*q99"):
        load_beir(root, "train")


def test_empty_query(tmp_path):
    root = write_beir(
        tmp_path / "b", queries={"q0": "fine", "q1": "   "}, qrels=[("q0", "d0", 1), ("q1", "d1", 1)]
    )
    with pytest.raises(InvalidInputError, match=r"empty text.*q1"):
        load_beir(root, "train")


def test_query_without_positive(tmp_path):
    root = write_beir(tmp_path / "b", qrels=[("q0", "d0", 1), ("q1", "d1", 0)])
    data = load_beir(root, "train")
    with pytest.raises(InvalidInputError, match=r"no positive.*q1"):
        validate_examples(examples_from_beir(data), data.corpus)


def test_bad_qrels_row(tmp_path):
    root = write_beir(tmp_path / "b")
    (root / "qrels" / "train.tsv").write_text("q0\td0\n")
    with pytest.raises(InvalidInputError, match="3 tab-separated"):
        load_beir(root, "train")


def test_empty_training_set():
    with pytest.raises(InvalidInputError, match="no training queries"):
        validate_examples([])


def test_positive_listed_as_negative():
    with pytest.raises(InvalidInputError, match="positive also listed as a negative"):
        validate_examples([TrainExample("q", "text", ["d1"], ["d1", "d2"])])


def test_wrong_architecture(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(InvalidInputError, match="'gpt2' model"):
        check_base_model(tmp_path / "gpt2", "splade")
    with pytest.raises(InvalidInputError, match="kind"):
        check_base_model(tmp_path / "gpt2", "dense")


def test_base_model_not_a_directory(tmp_path):
    with pytest.raises(InvalidInputError):
        check_base_model(tmp_path / "missing", "colbert")


def test_triples_jsonl_ids_and_texts(tmp_path):
    corpus = {"d1": "one", "d2": "two", "d3": "three"}
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(
            {
                "query": "a",
                "positives": ["d1"],
                "negatives": ["d2", "d3"],
                "scores": {"d1": 3, "d2": 1, "d3": 0},
            }
        )
        + "\n"
        + json.dumps(
            {
                "query": "b",
                "positive": "raw positive text",
                "negative": "raw negative text",
                "scores": {"raw positive text": 1, "raw negative text": 0},
            }
        )
        + "\n"
    )
    with pytest.raises(InvalidInputError, match="missing teacher"):
        load_training_jsonl(path, corpus=corpus)  # second line's teacher keys are texts, not the new ids
    path.write_text(
        json.dumps({"query": "a", "positives": ["d1"], "negatives": ["d2", "d3"]})
        + "\n"
        + json.dumps({"query": "b", "positive": "raw positive text", "negative": "raw negative text"})
        + "\n"
    )
    ex = load_training_jsonl(path, corpus=corpus)
    assert ex[0].negatives == ["d2", "d3"]
    assert corpus[ex[1].positives[0]] == "raw positive text"


def test_ranked_list_jsonl(tmp_path):
    corpus = {f"d{i}": str(i) for i in range(5)}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"query_id": "q0", "ranking": [["d3", 9.0], ["d1", 8.0], ["d4", 1.0]]}) + "\n")
    ex = load_training_jsonl(path, queries={"q0": "hello"}, qrels={"q0": {"d1": 1}}, corpus=corpus)
    assert ex[0].positives == ["d1"] and ex[0].negatives == ["d3", "d4"]
    assert ex[0].teacher == {"d3": 9.0, "d1": 8.0, "d4": 1.0}
    path.write_text(json.dumps({"query_id": "q7"}) + "\n")
    with pytest.raises(InvalidInputError, match="q7"):
        load_training_jsonl(path, queries={"q0": "hello"}, corpus=corpus)
    path.write_text("{not json\n")
    with pytest.raises(InvalidInputError, match="not JSON"):
        load_training_jsonl(path, corpus=corpus)


def test_sample_negatives_never_returns_a_positive():
    rng = random.Random(0)
    corpus_ids = [f"d{i}" for i in range(20)]
    # a negatives list polluted with a positive, and random top-up from a corpus holding the positives
    e = TrainExample("q", "t", ["d0", "d1"], ["d1", "d2", "d3"])
    for _ in range(500):
        negs = sample_negatives(e, 5, rng, corpus_ids)
        assert len(negs) == 5 and not {"d0", "d1"} & set(negs) and len(set(negs)) == 5


def test_negatives_file_round_trip(tmp_path):
    corpus = {f"d{i}": str(i) for i in range(5)}
    ex = [TrainExample("q0", "t", ["d0"], ["d0", "d1"]), TrainExample("q1", "u", ["d1"], ["d2"])]
    path = save_negatives(tmp_path / "n.jsonl", ex)
    back = load_negatives(path, [TrainExample("q0", "t", ["d0"]), TrainExample("q1", "u", ["d1"])], corpus)
    assert back[0].negatives == ["d1"] and back[1].negatives == ["d2"]  # the positive d0 was dropped
    path.write_text(json.dumps({"query_id": "q0", "negatives": ["ghost"]}) + "\n")
    with pytest.raises(InvalidInputError, match="ghost"):
        load_negatives(path, ex, corpus)


def test_split_dev_deterministic():
    ex = [TrainExample(f"q{i}", "t", ["d"]) for i in range(10)]
    a, b = split_dev(ex, 3, seed=1)
    assert len(a) == 7 and len(b) == 3 and split_dev(ex, 3, seed=1)[1] == b
    with pytest.raises(InvalidInputError):
        split_dev(ex, 10)


def test_teacher_rankings_score_candidates_by_maxsim(tmp_path):
    import json

    import numpy as np

    from colsplade.scoring import maxsim
    from colsplade.testing import make_tiny_model_dir
    from colsplade.training import TrainExample, load_model_dir, load_training_jsonl, teacher_rankings

    model_dir = make_tiny_model_dir("colbert", tmp_path / "colbert", export=False)
    corpus = {
        "d1": "the gene expression of cancer cells",
        "d2": "drug therapy and the heart",
        "d3": "the brain of the mouse",
        "d4": "virus infection in patients",
    }
    examples = [
        TrainExample("q1", "gene expression in cells", ["d1"], ["d2", "d3"]),
        TrainExample("q2", "heart drug", ["d2"], ["d4", "d1", "d3"]),
    ]
    out = tmp_path / "teacher.jsonl"
    records = teacher_rankings(model_dir, examples, corpus, out=out, depth=2)
    model = load_model_dir(model_dir)
    for e, r in zip(examples, records, strict=True):
        ids = [d for d, _ in r["ranking"]]
        assert sorted(ids) == sorted([*e.positives, *e.negatives[:2]])
        scores = [s for _, s in r["ranking"]]
        assert scores == sorted(scores, reverse=True)
        q = model.encode([e.query], is_query=True)["colbert"][0]
        for d, s in r["ranking"]:
            assert s == pytest.approx(
                float(maxsim(q, model.encode([corpus[d]], is_query=False)["colbert"][0])), abs=1e-4
            )
    assert [json.loads(line)["query_id"] for line in out.read_text().splitlines()] == ["q1", "q2"]
    # the file is a valid distillation input: teacher scores for every candidate
    loaded = load_training_jsonl(out, corpus=corpus)
    assert all(set(x.teacher) == set(x.positives) | set(x.negatives) for x in loaded)
    assert np.isfinite([s for x in loaded for s in x.teacher.values()]).all()
    with pytest.raises(InvalidInputError, match="no negatives"):
        teacher_rankings(model_dir, [TrainExample("q1", "gene", ["d1"], [])], corpus)
