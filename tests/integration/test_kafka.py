"""Kafka stream ingest on a real broker (KRaft, from Maven Central) and real engines.

Workers are separate processes (the CLI, or ``kafka_worker.py`` where a test needs fast retries or an RSS
trace), so SIGKILL and SIGTERM hit what users run. The stream logic does not depend on the engine (both
go through the same bulk path in ``engines/``), so the long multi-worker scenarios run on Elasticsearch
and the tombstone / single-worker checks on both engines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from colsplade.engines import connect, create_index
from colsplade.ingest import KafkaSource, ingest
from colsplade.mappings import FieldSpec
from colsplade.testing import ForwardingProxy

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

WORDS = ["cell", "gene", "protein", "virus", "immune", "cancer", "patient", "blood", "brain", "heart"]
WORKER = Path(__file__).with_name("kafka_worker.py")
#: Short sessions so a killed worker's partitions move within seconds; short transactions so its open
#: dead-letter transaction is aborted soon.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000", "transaction.timeout.ms": "8000"}


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def stream_model(tiny_joint_model: Path) -> Path:
    """The tiny joint model with a fitted token codec (a stream should not wait for a codec fit)."""
    from colsplade.encoders import load_encoder, save_model_codec
    from colsplade.scoring import fit_codec

    encoder = load_encoder(tiny_joint_model, variant="int8")
    vectors = encoder.encode_documents([_text(i) for i in range(300)]).colbert
    save_model_codec(encoder, fit_codec(list(vectors), n_centroids=64, iterations=4))
    return tiny_joint_model


def _text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(24))


def _topic(bootstrap: str, partitions: int) -> str:
    name = f"colsplade-test-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def _poison(i: int) -> bytes:
    """Four kinds of bad messages: malformed JSON, not UTF-8, no text, a field the mapping refuses."""
    kind = (i // 100) % 4
    if kind == 0:
        return b'{"title": "broken'
    if kind == 1:
        return b'{"title": "caf\xe9"}'
    if kind == 2:
        return json.dumps({"year": 2001}).encode()
    return json.dumps({"title": "t", "text": _text(i), "year": "nineteen"}).encode()


def _messages(n: int, *, poison_every: int = 0, pad: int = 0, start: int = 0) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(start, start + n):
        if poison_every and i % poison_every == poison_every // 2:
            out.append((f"doc-{i}".encode(), _poison(i)))
        else:
            doc = {"title": f"title {i}", "text": _text(i) + (" x" * pad), "year": 2000 + i % 20}
            out.append((f"doc-{i}".encode(), json.dumps(doc).encode()))
    return out


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes | None]]) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.2)
    assert producer.flush(60) == 0


def _partitions(bootstrap: str, topic: str) -> list:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "colsplade-test-probe"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return [ck.TopicPartition(topic, p) for p in sorted(meta.partitions)]
    finally:
        consumer.close()


def _offsets(bootstrap: str, topic: str, group: str) -> tuple[dict, dict]:
    """(end offsets, the group's committed offsets) per partition."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = _partitions(bootstrap, topic)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        return ends, committed
    finally:
        consumer.close()


def _caught_up(bootstrap: str, topic: str, group: str) -> bool:
    try:
        ends, committed = _offsets(bootstrap, topic, group)
    except ck.KafkaException:  # offsets of a transaction still pending
        return False
    return ends == committed


def _read_all(bootstrap: str, topic: str, idle: float = 5.0) -> list:
    """Every committed message of ``topic`` (read_committed), until none came for ``idle`` seconds."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out, last = [], time.monotonic()
    try:
        while time.monotonic() - last < idle:
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is None:
                    out.append(m)
                    last = time.monotonic()
    finally:
        consumer.close()
    return out


def _wait(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs:
            assert proc.poll() is None, f"a worker died while waiting for {what}: {_tail(proc)}"
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}: " + " | ".join(_tail(p) for p in procs))


def _tail(proc) -> str:
    path = getattr(proc, "err_path", None)
    return Path(path).read_text(errors="replace")[-2000:] if path and Path(path).exists() else ""


def _count(client, index: str) -> int:
    if not client.index_exists(index):
        return 0
    client.refresh(index)
    return client.count(index)


def _ids(client, index: str) -> list[str]:
    client.refresh(index)
    body = {"size": 10000, "_source": False, "query": {"match_all": {}}}
    return [h["_id"] for h in client.search(index, body)["hits"]["hits"]]


def _cli_worker(tmp_path: Path, name: str, url: str, engine: str, bootstrap: str, topic: str, **kw):
    command = [
        sys.executable, "-m", "colsplade.cli", "--url", url, "--engine", engine, "-v",
        "ingest", f"kafka://{bootstrap}/{topic}", "--group", kw["group"], "--index", kw["index"],
        "--model", str(kw["model"]), "--dead-letter", str(tmp_path / f"{name}.dead.jsonl"),
        "--batch-size", "16", "--bulk-docs", "64", "--no-progress", "--json",
    ]  # fmt: skip
    if kw.get("dlq_topic"):
        command += ["--dlq-topic", kw["dlq_topic"]]
    for key, value in FAST_GROUP.items():
        command += ["-X", f"{key}={value}"]
    return _spawn(command, tmp_path, name)


def _py_worker(tmp_path: Path, name: str, config: dict):
    return _spawn([sys.executable, str(WORKER), json.dumps(config)], tmp_path, name)


def _spawn(command: list[str], tmp_path: Path, name: str):
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(command, env=env, stdout=o, stderr=e)
    proc.out_path, proc.err_path = out, err
    return proc


def _finish(proc, timeout: float = 90) -> dict:
    """SIGTERM a worker: it drains, commits and prints its summary."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout)
    text = Path(proc.out_path).read_text()
    assert proc.returncode in (0, 3), f"exit {proc.returncode}: {_tail(proc)}"
    return json.loads(text[text.index("{") :])


def _dead_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("value_format", ["json", "jsonl"])
def test_tombstones_delete_and_offsets_are_committed(
    engine, engine_index, kafka_bootstrap, stream_model, tmp_path, value_format
):
    topic = _topic(kafka_bootstrap, 2)
    group = f"g-{topic}"
    if value_format == "json":
        messages = _messages(60)
        expected = {f"doc-{i}" for i in range(60)}
    else:  # three documents per message, ids from the key and the line
        messages = [
            (f"doc-{i}".encode(), b"\n".join(v for _, v in _messages(3, start=3 * i))) for i in range(20)
        ]
        expected = {f"doc-{i}:{n}" for i in range(20) for n in (1, 2, 3)}
    _produce(kafka_bootstrap, topic, messages)
    source = KafkaSource(kafka_bootstrap, topic, group, value_format=value_format, until_caught_up=True)
    first = ingest(source, engine, engine_index, stream_model, progress=False)
    assert first.indexed == len(expected) and first.dead_lettered == 0 and first.deleted == 0
    assert set(_ids(engine, engine_index)) == expected
    assert first.stream["lag"] == 0 and first.stream["consumed"] == len(messages)

    # tombstones of five keys (one of them never indexed: deleting it is no error), then one more doc
    gone = [f"doc-{i}" for i in (1, 7, 12, 19)] + ["never-there"]
    _produce(kafka_bootstrap, topic, [(k.encode(), None) for k in gone])
    _produce(kafka_bootstrap, topic, [(b"late", json.dumps({"title": "late", "text": _text(3)}).encode())])
    again = KafkaSource(kafka_bootstrap, topic, group, value_format=value_format, until_caught_up=True)
    second = ingest(again, engine, engine_index, stream_model, progress=False)
    # only the new messages are read: the first run's offsets were committed
    assert second.read == len(gone) + 1 and second.deleted == len(gone) and second.indexed == 1
    remaining = set(_ids(engine, engine_index))
    if value_format == "json":
        assert remaining == (expected - set(gone)) | {"late"}
    else:  # a JSONL message's documents are keyed key:line, so the key's tombstone deletes none of them
        assert remaining == expected | {"late"}
    ends, committed = _offsets(kafka_bootstrap, topic, group)
    assert committed == ends and sum(ends.values()) == len(messages) + len(gone) + 1


def test_a_partition_paused_when_revoked_is_read_again_when_reassigned(kafka_bootstrap):
    """librdkafka keeps a partition's pause flag across a revoke and a re-assignment: a worker whose
    read-ahead was full when a rebalance took a partition away must still read it when it comes back
    (before the fix, the worker waited forever for messages of a partition it had paused itself)."""
    topic = _topic(kafka_bootstrap, 2)
    group = f"g-{topic}"
    _produce(kafka_bootstrap, topic, _messages(120))
    source = KafkaSource(
        kafka_bootstrap, topic, group, config=FAST_GROUP, max_buffered_messages=4, until_caught_up=True
    )
    records = source.records()
    seen: list = []

    def take(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len({r.doc_id for r in seen}) < n and time.monotonic() < deadline:
            record = next(records, None)
            if record is not None:
                seen.append(record)
                source.acknowledge([record])

    try:
        take(2, 60)  # reading started; the tiny buffer fills and both partitions pause
        _wait(lambda: source.stats()["paused"], 30, "the read-ahead to pause")
        other = ck.Consumer(
            {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False,
             "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": "6000"}
        )  # fmt: skip
        other.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(source.stats()["assigned"]) != 1 and time.monotonic() < deadline:
            other.poll(0.2)  # the newcomer takes one partition (while the first worker holds it paused)
        assert len(source.stats()["assigned"]) == 1, source.stats()
        other.close()  # ... and gives it back
        take(120, 120)
    finally:
        source.close()
    # a record read again after the rebalance may come twice (at least once); none may be missing
    assert {r.doc_id for r in seen} == {f"doc-{i}" for i in range(120)}


@pytest.mark.slow
def test_two_workers_one_killed_every_doc_once_poison_dead_lettered_once(
    elasticsearch_url, kafka_bootstrap, stream_model, tmp_path
):
    n = 5000
    client = connect(url=elasticsearch_url, engine="elasticsearch")
    index = f"colsplade-test-{uuid.uuid4().hex[:10]}"
    create_index(client, index, FieldSpec(colbert_dim=16))
    client.put_mapping(index, {"properties": {"year": {"type": "integer"}}})  # "nineteen" is refused
    topic, dlq = _topic(kafka_bootstrap, 4), _topic(kafka_bootstrap, 1)
    group = f"g-{topic}"
    messages = _messages(n, poison_every=100)
    poison = {i for i in range(n) if i % 100 == 50}
    assert len(poison) == n // 100
    _produce(kafka_bootstrap, topic, messages)
    kw = {"group": group, "index": index, "model": stream_model, "dlq_topic": dlq}
    workers = [
        _cli_worker(tmp_path, f"w{k}", elasticsearch_url, "elasticsearch", kafka_bootstrap, topic, **kw)
        for k in range(2)
    ]
    try:
        _wait(lambda: _count(client, index) >= 1500, 240, "1500 documents", workers)
        workers[0].kill()  # SIGKILL mid-stream: no commit, no goodbye
        workers[0].wait(30)
        assert _count(client, index) < n - len(poison), "the stream was over before the kill"
        _wait(lambda: _caught_up(kafka_bootstrap, topic, group), 300, "the group to catch up", workers[1:])
        summary = _finish(workers[1])
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
    assert workers[0].returncode == -signal.SIGKILL
    good = {f"doc-{i}" for i in range(n) if i not in poison}
    ids = _ids(client, index)
    assert len(ids) == len(good) and set(ids) == good  # every good message indexed exactly once
    assert summary["stream"]["rebalances"] >= 2 and summary["dead_lettered"] > 0
    ends, committed = _offsets(kafka_bootstrap, topic, group)
    assert committed == ends and sum(ends.values()) == n

    # the DLQ topic (transactional with the offsets): each poison message exactly once, with its origin
    letters = _read_all(kafka_bootstrap, dlq)
    origins = [
        (int(dict(m.headers())["colsplade.partition"]), int(dict(m.headers())["colsplade.offset"]))
        for m in letters
    ]
    keys = sorted(m.key().decode() for m in letters)
    assert len(origins) == len(set(origins)) == len(poison), (len(origins), len(set(origins)))
    assert keys == sorted(f"doc-{i}" for i in poison)
    body = json.loads(letters[0].value())
    assert body["reason"] and body["position"]["topic"] == topic and "offset" in body["position"]
    # the files: every poison message is in one of them (at least once: a file cannot be transactional)
    filed = _dead_entries(tmp_path / "w0.dead.jsonl") + _dead_entries(tmp_path / "w1.dead.jsonl")
    assert {(e["position"]["partition"], e["position"]["offset"]) for e in filed} == set(origins)
    stages = {e["stage"] for e in filed}
    assert {"read", "validate", "engine"} <= stages
    client.delete_index(index)
    client.close()


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(elasticsearch_url, kafka_broker, stream_model, tmp_path):
    bootstrap = kafka_broker.bootstrap
    client = connect(url=elasticsearch_url, engine="elasticsearch")
    index = f"colsplade-test-{uuid.uuid4().hex[:10]}"
    topic = _topic(bootstrap, 3)
    group = f"g-{topic}"
    _produce(bootstrap, topic, _messages(1500))
    worker = _cli_worker(
        tmp_path, "w", elasticsearch_url, "elasticsearch", bootstrap, topic,
        group=group, index=index, model=stream_model,
    )  # fmt: skip
    try:
        _wait(lambda: _count(client, index) >= 400, 180, "400 documents", [worker])
        kafka_broker.restart()  # down for several seconds; the worker's fetches and commits fail meanwhile
        _produce(bootstrap, topic, _messages(1000, start=1500))
        _wait(lambda: _caught_up(bootstrap, topic, group), 240, "the group to catch up", [worker])
        summary = _finish(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0 and summary["dead_lettered"] == 0
    ids = _ids(client, index)
    assert len(ids) == 2500 and set(ids) == {f"doc-{i}" for i in range(2500)}
    client.delete_index(index)
    client.close()


@pytest.mark.slow
def test_429s_pause_the_partitions_nothing_lost_memory_flat(
    elasticsearch_url, kafka_bootstrap, stream_model, tmp_path
):
    n, pad = 3000, 20_000  # ~40 KB a message: a 120 MB backlog, which an unbounded read-ahead would hold
    topic = _topic(kafka_bootstrap, 2)
    _produce(kafka_bootstrap, topic, _messages(n, pad=pad))
    client = connect(url=elasticsearch_url, engine="elasticsearch")
    index = f"colsplade-test-{uuid.uuid4().hex[:10]}"
    with ForwardingProxy(elasticsearch_url) as proxy:
        config = {
            "bootstrap": kafka_bootstrap, "topic": topic, "group": f"g-{topic}", "until_caught_up": True,
            "url": proxy.url, "engine": "elasticsearch", "index": index, "model": str(stream_model),
            "rss_file": str(tmp_path / "rss.txt"), "kafka": FAST_GROUP, "max_buffered_messages": 200,
        }  # fmt: skip
        worker = _py_worker(tmp_path, "w", config)
        try:
            # the baseline is taken once the worker is warm: after only 300 documents its RSS could still
            # be growing on its own, which read as the 429 phase's growth (40.3 MB once, against the bound
            # of 40); after 800, 2,200 messages (88 MB) are still behind, for a read-ahead to show
            _wait(lambda: _count(client, index) >= 800, 240, "800 documents", [worker])
            t_429 = float((tmp_path / "rss.txt").read_text().splitlines()[-1].split()[0])
            proxy.fail_next(60)  # every bulk answers 429 for a while (~15 s of backoff)
            _wait(lambda: proxy.refused >= 60, 120, "the 429s to be served", [worker])
            worker.wait(300)
        finally:
            if worker.poll() is None:
                worker.kill()
    text = Path(worker.out_path).read_text()
    assert worker.returncode == 0, _tail(worker)
    summary = json.loads(text[text.index("{") :])
    assert summary["retried"] >= 60 and summary["indexed"] == n
    assert set(_ids(client, index)) == {f"doc-{i}" for i in range(n)}
    assert summary["stream"]["pauses"] >= 1  # the partitions were paused while the writer waited
    samples = [tuple(map(float, line.split())) for line in (tmp_path / "rss.txt").read_text().splitlines()]
    before = max(rss for t, rss in samples if t <= t_429)
    during = max(rss for t, rss in samples if t > t_429)
    # flat: the 429 phase adds less than a third of the backlog (120 MB of message values alone)
    assert during - before < 40, (before, during)
    client.delete_index(index)
    client.close()


@pytest.mark.slow
def test_third_worker_joins_mid_stream_nothing_doubled(
    elasticsearch_url, kafka_bootstrap, stream_model, tmp_path
):
    n, first = 4000, 1500
    client = connect(url=elasticsearch_url, engine="elasticsearch")
    index = f"colsplade-test-{uuid.uuid4().hex[:10]}"
    topic = _topic(kafka_bootstrap, 6)
    group = f"g-{topic}"
    _produce(kafka_bootstrap, topic, _messages(first))
    kw = {"group": group, "index": index, "model": stream_model}
    start = lambda k: _cli_worker(  # noqa: E731
        tmp_path, f"w{k}", elasticsearch_url, "elasticsearch", kafka_bootstrap, topic, **kw
    )
    workers = [start(0), start(1)]
    try:
        _wait(lambda: _count(client, index) >= 500, 180, "500 documents", workers)
        workers.append(start(2))  # joins mid-stream: 1,500 produced before it, 2,500 after
        # the rest of the stream is produced once the newcomer holds partitions: produced earlier, on a busy
        # machine the first two workers could drain every partition before the rebalance gives it any
        _wait(
            lambda: re.search(r"kafka: assigned \S+/\d", Path(workers[2].err_path).read_text()) is not None,
            120,
            "the third worker to get partitions",
            workers,
        )
        producer = threading.Thread(
            target=_produce, args=(kafka_bootstrap, topic, _messages(n - first, start=first))
        )
        producer.start()
        producer.join()
        _wait(lambda: _caught_up(kafka_bootstrap, topic, group), 240, "the group to catch up", workers)
        summaries = [_finish(proc) for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
    ids = _ids(client, index)
    assert len(ids) == n and set(ids) == {f"doc-{i}" for i in range(n)}
    indexed = [s["indexed"] for s in summaries]
    assert sum(indexed) >= n and indexed[2] > 0, indexed  # the newcomer took partitions over
    assert all(s["stream"]["rebalances"] >= 2 for s in summaries[:2])
    client.delete_index(index)
    client.close()
