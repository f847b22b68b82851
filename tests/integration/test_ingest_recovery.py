"""Ingest survives what real runs meet: kill -9 of the CLI mid-run, and a node restarting mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colsplade.engines import connect
from colsplade.ingest import Batching, RetryPolicy, ingest
from colsplade.local import start_node
from colsplade.testing import ForwardingProxy

WORDS = ["cell", "gene", "protein", "virus", "immune", "cancer", "patient", "blood", "brain", "heart"]


def _write_docs(path: Path, n: int) -> list[str]:
    ids = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            doc_id = f"doc-{i}"
            ids.append(doc_id)
            text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(40))
            f.write(json.dumps({"id": doc_id, "title": f"title {i}", "text": text}) + "\n")
    return ids


def _ids(engine, index: str) -> list[str]:
    engine.refresh(index)
    hits = engine.search(index, {"size": 10000, "_source": False, "query": {"match_all": {}}})["hits"]["hits"]
    return [h["_id"] for h in hits]


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_every_doc_exactly_once(
    engine, engine_index, tiny_joint_model, tmp_path
):
    n = 600
    ids = _write_docs(tmp_path / "docs.jsonl", n)
    checkpoint = tmp_path / "ckpt.json"
    command = [
        sys.executable, "-m", "colsplade.cli", "--url", engine.settings.urls[0], "--engine", engine.engine,
        "ingest", str(tmp_path / "docs.jsonl"), "--index", engine_index, "--model", str(tiny_joint_model),
        "--checkpoint", str(checkpoint), "--dead-letter", str(tmp_path / "dead.jsonl"),
        "--batch-size", "8", "--bulk-docs", "8", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    # Kill once some batches are acknowledged: the checkpoint file moves past them.
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.is_file():
            position = json.loads(checkpoint.read_text()).get("position") or {}
            if position.get("line", 0) >= 40:
                break
        time.sleep(0.05)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads(checkpoint.read_text())["position"]["line"]
    assert 0 < killed_at < n
    first_ids = _ids(engine, engine_index)
    assert len(first_ids) >= killed_at  # everything up to the checkpoint is in the index

    rerun = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["resumed_from"]["line"] == killed_at
    assert summary["read"] == n - killed_at and summary["dead_lettered"] == 0
    got = _ids(engine, engine_index)
    assert len(got) == n and sorted(got) == sorted(ids)
    assert engine.count(engine_index) == n
    assert json.loads(checkpoint.read_text())["complete"] is True


@pytest.mark.slow
def test_node_restart_mid_run_loses_nothing(engine, tiny_joint_model, tmp_path):
    from colsplade.encoders import load_encoder

    name = f"ingest-restart-{os.getpid()}"
    node = start_node(engine.engine, name=name, ephemeral=False)
    data_dir = node.data_dir
    # the client keeps the proxy's URL while the node restarts on a new port (the old one lingers in
    # TIME_WAIT for a minute)
    proxy = ForwardingProxy(node.url)
    restarted: list = []
    try:
        client = connect(url=proxy.url, engine=engine.engine)
        ids = _write_docs(tmp_path / "docs.jsonl", 240)
        encoder = load_encoder(tiny_joint_model, variant="int8")
        outage = {}

        def bring_back():
            # Same node, same data directory: the documents acknowledged before the stop must survive it.
            back = start_node(engine.engine, name=name)
            restarted.append(back)
            proxy.target = back.url

        def on_batch(summary):
            if not outage:
                # The node goes away for real (SIGTERM to the JVM) and comes back.
                outage["at"] = summary.indexed
                node.stop()
                threading.Thread(target=bring_back, daemon=True).start()

        summary = ingest(
            tmp_path / "docs.jsonl",
            client,
            "restart-test",
            encoder,
            checkpoint=tmp_path / "ckpt.json",
            batching=Batching(encode_batch_size=8, bulk_docs=8),
            retry=RetryPolicy(max_retries=60, initial_backoff=0.2, max_backoff=2.0, max_elapsed=240),
            progress=False,
            on_batch=on_batch,
        )
        assert restarted, "the node did not come back"
        assert 0 < outage["at"] < 240
        assert summary.retried > 0
        assert summary.indexed == 240 and summary.dead_lettered == 0
        got = _ids(client, "restart-test")
        assert sorted(got) == sorted(ids)
        client.close()
    finally:
        proxy.close()
        for n in restarted or [node]:
            n.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
