"""``colsplade upgrade`` on both real engines with a tiny model: the whole run (gate, switch, the recorded
default plan, rollback, cleanup), a kill -9 and the resume, refusals before any model loads, writes that
arrive during the re-encode, and a user without the privileges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import colsplade
from colsplade.engines import BulkAction, alias_indices, bulk_write, connect, ingest_role, search_role
from colsplade.exceptions import EngineAuthorizationError, InvalidInputError

pytest.importorskip("torch")

from colsplade.testing import make_tiny_base_model

SAMPLE_CORPUS = Path(colsplade.__file__).parent / "data" / "scifact_sample" / "corpus.jsonl"
#: Short documents and few steps: the tiny model trains in seconds.
FAST = {"max_doc_length": 64, "train_max_doc_length": 48, "max_query_length": 16, "batch_size": 8, "dim": 16,
        "negatives_depth": 5, "save_steps": 2, "num_threads": 1}  # fmt: skip


def _documents(n: int, start: int = 0) -> list[dict]:
    with SAMPLE_CORPUS.open(encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh][start : start + n]
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"][:800]} for d in docs]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base_model(tmp_path_factory.mktemp("upgrade-tiny") / "base", hidden=32, layers=1)


def _team_index(client, name: str, docs: list[dict]) -> None:
    """The team's BM25 index: its own text fields and analyser, no colsplade field."""
    analyzer = client.capabilities().resolve_analyzer("auto")
    text = {"type": "text", "analyzer": analyzer}
    client.create_index(
        name, {"mappings": {"properties": {"title": text, "text": text, "year": {"type": "integer"}}}}
    )
    actions = [
        BulkAction(index=name, doc_id=d["_id"], source={"title": d["title"], "text": d["text"], "year": 2000})
        for d in docs
    ]
    assert all(r.ok for r in bulk_write(client, actions))
    client.refresh(name)


@pytest.fixture
def team(engine):
    """A team index ``<ns>-orig`` of 150 abstracts; the search reads alias ``<ns>`` (none yet)."""
    ns = f"colsplade-test-up-{uuid.uuid4().hex[:8]}"
    _team_index(engine, f"{ns}-orig", _documents(150))
    yield ns
    for name in [f"{ns}-orig", f"{ns}-v1", f"{ns}-v1-gate", f"{ns}-v1-preflight", f"{ns}-v2"]:
        if engine.index_exists(name):
            engine.delete_index(name)


def _upgrade(engine, ns: str, base: Path, work: Path, **kw):
    from colsplade.upgrade import upgrade

    options = dict(
        alias=ns, base=str(base), steps=3, budget_minutes=5, holdout=30, distractors=60, min_documents=100,
        work_dir=work, progress=False, train_overrides=FAST,
    )  # fmt: skip
    options.update(kw)
    return upgrade(f"{ns}-orig", client=engine, **options)


@pytest.mark.integration
def test_upgrade_gate_switch_default_plan_rollback_cleanup(engine, team, tiny_base, tmp_path):
    from colsplade.query import SearchClient
    from colsplade.upgrade import cleanup, rollback

    ns, work = team, tmp_path / "work"
    before = engine.get_mapping(f"{ns}-orig")
    summary = _upgrade(engine, ns, tiny_base, work, force=True)

    # every stage ran and was recorded; the figures are there for every plan
    state = json.loads((work / "state.json").read_text())
    assert list(state["stages"]) == [
        "inspect", "holdout", "train", "export", "reencode", "gate_index", "measure", "decide",
    ]  # fmt: skip
    assert summary["train"]["steps"] == 3 and summary["export"]["variant"] in ("int8", "fp32")
    assert summary["reencode"]["indexed"] == 150 and summary["reencode"]["dead_lettered"] == 0
    gate = summary["gate"]
    assert gate["queries"] >= 10 and set(gate["plans"]) >= {"bm25", "bm25+colbert(fused)", "splade"}
    for g in gate["gains"].values():
        assert g["lo"] <= g["mean"] <= g["hi"]
    assert summary["decision"]["plan"] in gate["gains"] and summary["switched"]  # forced
    assert (work / "report.md").read_text().startswith(f"# colsplade upgrade of `{ns}`")
    assert (work / "report.png").stat().st_size > 1000

    # the source index is untouched; the new one holds every document, and the recorded default plan
    assert engine.get_mapping(f"{ns}-orig") == before and engine.count(f"{ns}-orig") == 150
    assert alias_indices(engine, ns) == [f"{ns}-v1"] and engine.count(ns) == 150
    meta = engine.get_mapping(f"{ns}-v1")["_meta"]["colsplade"]
    assert meta["search"] == {"plan": summary["decision"]["plan"], "text_fields": ["title", "text"]}
    assert meta["upgrade"]["from"] == f"{ns}-orig"
    with SearchClient(
        ns, work / "model", client=engine, encoder_options={"variant": summary["export"]["variant"]}
    ) as search:
        result = search.search("cancer cells", k=5)
    assert result.plan == summary["decision"]["plan"] and len(result.hits) == 5

    # the team adds a document through the alias with colsplade ingest: the recorded plan and the
    # rollback target survive it (an ingest that records its model merges into _meta: merge_meta)
    from colsplade.encoders import as_encoder
    from colsplade.ingest import FieldMapping, ingest

    added = ingest(
        [{"id": "new-1", "title": "cancer cells", "text": "cells of a new cancer study"}],
        engine,
        ns,
        as_encoder(work / "model", variant=summary["export"]["variant"]),
        fields=FieldMapping(id_field="id"),
        progress=False,
    )
    assert added.indexed == 1
    meta = engine.get_mapping(f"{ns}-v1")["_meta"]["colsplade"]
    assert meta["search"]["plan"] == summary["decision"]["plan"] and meta["upgrade"]["from"] == f"{ns}-orig"
    engine.request("DELETE", f"/{ns}-v1/_doc/new-1", params={"refresh": "true"})  # the counts below

    # the same command again: done, nothing redone or doubled
    again = _upgrade(engine, ns, tiny_base, work, force=True)
    assert again["target_index"] == f"{ns}-v1" and not engine.index_exists(f"{ns}-v2")
    assert engine.count(f"{ns}-v1") == 150

    # rollback: the alias reads the old index again; the new one is kept until cleanup
    back = rollback(ns, client=engine)
    assert back == {"alias": ns, "now": f"{ns}-orig", "was": f"{ns}-v1"}
    assert alias_indices(engine, ns) == [f"{ns}-orig"] and engine.index_exists(f"{ns}-v1")
    with pytest.raises(InvalidInputError, match="no colsplade upgrade made"):
        rollback(ns, client=engine)
    gone = cleanup(ns, client=engine, work_dir=work)
    assert set(gone["deleted"]) == {f"{ns}-v1", f"{ns}-v1-gate"} and gone["kept"] == [f"{ns}-orig"]
    assert engine.count(ns) == 150


@pytest.mark.integration
def test_upgrade_refuses_before_any_model_loads(engine, engine_index, tmp_path):
    from colsplade.upgrade import upgrade

    missing_model = str(tmp_path / "no-such-model")  # loading it would fail with another error
    _team_index(engine, engine_index, _documents(40))
    with pytest.raises(InvalidInputError, match=r"holds 40 documents; an upgrade needs at least 200"):
        upgrade(engine_index, alias=f"{engine_index}-a", client=engine, base=missing_model, work_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="is an index, not an alias"):
        upgrade(engine_index, client=engine, base=missing_model, work_dir=tmp_path)
    keywords = f"{engine_index}-kw"
    engine.create_index(keywords, {"mappings": {"properties": {"sku": {"type": "keyword"}}}})
    try:
        with pytest.raises(InvalidInputError, match="no searchable text field"):
            upgrade(keywords, alias=f"{keywords}-a", client=engine, min_documents=0, work_dir=tmp_path)
    finally:
        engine.delete_index(keywords)
    with pytest.raises(InvalidInputError, match="no index or alias named"):
        upgrade(f"{engine_index}-nothing", client=engine, work_dir=tmp_path)
    assert not (tmp_path / "state.json").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_upgrade_killed_then_resumed_nothing_doubled(engine, team, tiny_base, tmp_path):
    """kill -9 once the model is trained and exported (the re-encode under way), then the same command."""
    ns, work = team, tmp_path / "work"
    command = [
        sys.executable, "-m", "colsplade.cli", "--url", engine.url, "--engine", engine.engine, "-v",
        "upgrade", f"{ns}-orig", "--alias", ns, "--base", str(tiny_base), "--steps", "3", "--holdout", "30",
        "--distractors", "60", "--min-documents", "100", "--work-dir", str(work), "--no-progress", "--force",
        "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    err = tmp_path / "first.err"
    with err.open("wb") as fh:  # a file, not a pipe: a full pipe would block the worker
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 600
    state = work / "state.json"
    while time.monotonic() < deadline and first.poll() is None:
        if state.exists() and "export" in json.loads(state.read_text())["stages"]:
            break
        time.sleep(0.2)
    assert first.poll() is None, err.read_text(errors="replace")[-2000:]
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    stages = list(json.loads(state.read_text())["stages"])
    assert "decide" not in stages and "export" in stages
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout[second.stdout.index("{") :])
    assert summary["target_index"] == f"{ns}-v1" and summary["switched"]
    assert "stage 3/8 train: done before, skipped" in second.stderr
    engine.refresh(f"{ns}-v1")
    assert engine.count(f"{ns}-v1") == 150 and not engine.index_exists(f"{ns}-v2")


@pytest.mark.integration
def test_writes_during_the_reencode_are_caught_up(engine, engine_index, tiny_joint_model):
    """Documents written to the source while it is re-encoded reach the new index before the switch."""
    from colsplade.encoders import load_encoder
    from colsplade.ingest import FieldMapping, reindex

    source, alias = f"{engine_index}-src", f"{engine_index}"
    _team_index(engine, source, _documents(120))
    late = _documents(25, start=200)
    written = threading.Event()

    def write_late(summary) -> None:  # after the first batch of the first pass: the source moves on
        if written.is_set():
            return
        written.set()
        actions = [BulkAction(index=source, doc_id=d["_id"], source={"title": d["title"], "text": d["text"]})
                   for d in late]  # fmt: skip
        assert all(r.ok for r in bulk_write(engine, actions))

    try:
        summary = reindex(
            engine, source, load_encoder(tiny_joint_model, variant="int8"), alias=alias,
            fields=FieldMapping(text_fields=("title", "text")), progress=False, on_batch=write_late,
        )  # fmt: skip
        assert written.is_set() and summary.alias_switched
        assert summary.caught_up >= len(late) and summary.dead_lettered == 0
        target = alias_indices(engine, alias)[0]
        engine.refresh(target)
        assert engine.count(target) == 120 + len(late) == engine.count(source)
    finally:
        for name in [*alias_indices(engine, alias), source]:
            if engine.index_exists(name):
                engine.delete_index(name)


@pytest.mark.integration
def test_upgrade_without_write_privileges_names_the_action(secured_engine, tiny_base, tmp_path):
    from colsplade.upgrade import upgrade

    ns = f"sec-up-{uuid.uuid4().hex[:8]}"
    secured_engine.add_role(f"{ns}-search", search_role([f"{ns}*"], engine=secured_engine.engine))
    reader = secured_engine.add_user([f"{ns}-search"])
    with secured_engine.admin_client() as admin:
        _team_index(admin, f"{ns}-orig", _documents(120))
    try:
        with connect(reader) as client, pytest.raises(EngineAuthorizationError) as info:
            upgrade(f"{ns}-orig", alias=ns, client=client, base=str(tiny_base), min_documents=100,
                    work_dir=tmp_path, progress=False)  # fmt: skip
        if secured_engine.engine == "opensearch":
            # the search role reads documents but not aliases: refused at the first request, naming the action
            assert "colsplade upgrade needs to read" in str(info.value)
            assert "indices:admin/aliases/get" in str(info.value)
        else:
            # Elasticsearch's search role holds view_index_metadata (aliases, mapping): the inspection
            # passes, and the preflight refuses before any model is trained
            assert "colsplade upgrade needs to create its new index" in str(info.value)
            assert "indices:admin/create" in str(info.value)
        assert not (tmp_path / "model").exists() and not (tmp_path / "state.json").exists()
        # a user that may read the team's index and write elsewhere only: refused at the preflight
        secured_engine.add_role(
            f"{ns}-mover",
            ingest_role([f"other-{ns}*"], source_patterns=[f"{ns}*"], engine=secured_engine.engine),
        )
        mover = secured_engine.add_user([f"{ns}-mover"])
        with connect(mover) as client, pytest.raises(EngineAuthorizationError) as info:
            upgrade(f"{ns}-orig", alias=ns, client=client, base=str(tiny_base), min_documents=100,
                    work_dir=tmp_path, progress=False)  # fmt: skip
        assert "colsplade upgrade needs to create its new index" in str(info.value)
        assert "indices:admin/create" in str(info.value)
        assert not (tmp_path / "model").exists() and not (tmp_path / "state.json").exists()
    finally:
        with secured_engine.admin_client() as admin:
            for name in (f"{ns}-orig", f"{ns}-v1-preflight"):
                if admin.index_exists(name):
                    admin.delete_index(name)
