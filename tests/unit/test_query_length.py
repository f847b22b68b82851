"""Per-client query length: up to the backbone's position limit, through the ONNX graphs' dynamic axis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colsplade.encoders import load_encoder, position_limit, read_model_config
from colsplade.exceptions import InvalidInputError
from colsplade.query import DEFAULT_PLAN, FALLBACK_PLAN, QUERY_PLANS, SearchClient, plan_arguments

LONG_QUERY = " ".join(["the immune response of mice to the virus and the drug dose"] * 8)


@pytest.fixture(scope="module")
def joint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from colsplade.testing import make_tiny_model_dir

    return make_tiny_model_dir("joint", tmp_path_factory.mktemp("qlen") / "joint", max_query_length=16)


def test_position_limit_reads_the_backbone(joint_dir: Path) -> None:
    assert position_limit(joint_dir) == 512


def test_position_limit_takes_the_smaller_and_falls_back(tmp_path: Path, joint_dir: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    assert position_limit(tmp_path, read_model_config(joint_dir)) == 128
    # the tokenizers' "no limit" sentinel is no limit; nothing known: the lengths colsplade.json uses
    (tmp_path / "config.json").unlink()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))
    assert position_limit(tmp_path, read_model_config(joint_dir)) == 48


def test_default_length_truncates(joint_dir: Path) -> None:
    enc = load_encoder(joint_dir, variant="int8")
    out = enc.encode_queries([LONG_QUERY])
    assert out.colbert[0].shape[0] == 16
    assert enc.truncated_count == 1


@pytest.mark.parametrize("length", [64, 128])
def test_longer_queries_run_through_the_onnx_graph(joint_dir: Path, length: int) -> None:
    enc = load_encoder(joint_dir, variant="int8", max_query_length=length)
    assert enc.config.max_query_length == length
    long_out, short_out = enc.encode_queries([LONG_QUERY, "mice"]), None
    n_tokens = len(enc.tokenizer.tokenizer.encode(LONG_QUERY, add_special_tokens=False).ids)
    # augmentation pads every query with [MASK] to the new length; the long one is cut only past it
    assert long_out.colbert[0].shape[0] == length
    assert long_out.colbert[1].shape[0] == length
    assert enc.truncated_count == (1 if n_tokens + 3 > length else 0)
    short_out = load_encoder(joint_dir, variant="int8").encode_queries(["mice"])
    assert short_out.colbert[0].shape[0] == 16
    assert long_out.splade[0]


def test_length_past_the_position_limit_is_refused(joint_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="limit of 512 tokens"):
        load_encoder(joint_dir, max_query_length=513)
    with pytest.raises(InvalidInputError, match="at least 4"):
        load_encoder(joint_dir, max_query_length=2)
    with pytest.raises(InvalidInputError, match="must be an int"):
        load_encoder(joint_dir, max_query_length="64")  # type: ignore[arg-type]


def test_search_client_takes_and_checks_the_length(joint_dir: Path) -> None:
    no_engine = object()  # the client is not used before the first search
    with pytest.raises(InvalidInputError, match="limit of 512"):
        SearchClient("x", str(joint_dir), client=no_engine, max_query_length=1024)  # type: ignore[arg-type]
    search = SearchClient("x", str(joint_dir), client=no_engine, max_query_length=64)  # type: ignore[arg-type]
    impacts, vectors = search.encode_query(LONG_QUERY)
    assert vectors.shape[0] == 64 and impacts
    opened = load_encoder(joint_dir, variant="int8")
    with pytest.raises(InvalidInputError, match="cannot change an encoder"):
        SearchClient("x", opened, client=no_engine, max_query_length=64)  # type: ignore[arg-type]


def test_named_plans() -> None:
    assert DEFAULT_PLAN in QUERY_PLANS and FALLBACK_PLAN in QUERY_PLANS
    assert {"bm25", "splade", "splade+colbert", "bm25+colbert", "hybrid(bm25+splade)+colbert"} <= set(
        QUERY_PLANS
    )
    args = plan_arguments("bm25+colbert", ["title", "text"])
    assert args == {"splade": False, "bm25_fields": ["title", "text"], "hybrid": "sum", "rerank": "auto"}
    assert plan_arguments("splade", ["title"]) == {"splade": True, "rerank": "none"}
    with pytest.raises(InvalidInputError, match="unknown query plan"):
        plan_arguments("nope", [])
    with pytest.raises(InvalidInputError, match="unknown query plan"):
        SearchClient("x", object(), client=object(), plan="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(("slots", "expect_at_most"), [(1, 1), (2, 2), (None, 6)])
def test_compute_slots_bound_concurrent_encodes(
    joint_dir: Path, slots: int | None, expect_at_most: int
) -> None:
    """``compute_slots``: at most that many callers of one client encode at once; None: no bound."""
    import threading
    import time

    search = SearchClient("x", str(joint_dir), client=object(), compute_slots=slots)  # type: ignore[arg-type]
    inner = search._encoder.encode_queries
    lock, now, peak = threading.Lock(), [0], [0]

    def counting(*args: object, **kwargs: object) -> object:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)  # long enough for the other callers to pile up
        try:
            return inner(*args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    search._encoder.encode_queries = counting  # type: ignore[method-assign]
    threads = [threading.Thread(target=search.encode_query, args=("mice",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] <= expect_at_most
    if slots is None:
        assert peak[0] > 2  # unbounded: the callers did overlap
    else:
        assert peak[0] == slots


def test_compute_slots_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match="compute_slots"):
        SearchClient("x", object(), client=object(), compute_slots=0)  # type: ignore[arg-type]


def test_compute_slots_default_counts_the_cores_this_process_may_use():
    import inspect
    import os

    from colsplade.query import SearchClient

    default = inspect.signature(SearchClient.__init__).parameters["compute_slots"].default
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default == cores + 1
