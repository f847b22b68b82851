"""Kafka stream ingest: docs/s with one and two workers next to file ingest, produce -> searchable latency,
RSS over a long stream. Writes ``benchmarks/results/kafka.json``.

One run, one machine, one engine (default: the local Elasticsearch node, as ``colsplade engine up``), one
local Kafka broker started here (KRaft, from Maven Central) and stopped at the end:

1. ``--docs`` generated documents (title + 40-word text) as a JSONL file and as a 4-partition topic;
2. file ingest of the file: one worker process running ``ingest(path)``;
3. the topic by one worker, then (another group, another index) by two workers in one consumer group,
   each a process running ``ingest(KafkaSource(..., until_caught_up=True))``; docs/s = documents /
   wall time from the workers' launch to the last one's exit (process start, model load and the group
   join included, as a team's job sees it) and, beside it, documents / the longest ``ingest()`` call;
4. latency: one worker running forever, ``--latency-messages`` produced at ``--rate`` per second; the
   benchmark searches the index for the pending ids every 50 ms and takes produce -> first hit; the
   engine's 1 s refresh interval is part of it;
5. RSS: one worker over ``--rss-messages`` messages, its RSS read from /proc every 0.5 s.

With ``--build-model DIR`` (the default when no ``--model`` is given) a tiny random joint model is built
(needs the [train] extra), so the figures show the stream machinery rather than the encoder; pass a real
``--model`` to see an encoder-bound run.

    python benchmarks/bench_kafka.py --docs 10000 --rss-messages 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

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
    "liver",
    "lung",
    "mouse",
    "drug",
    "dose",
    "trial",
]


def _doc(i: int) -> dict[str, Any]:
    return {
        "title": f"title {i}",
        "text": " ".join(WORDS[(i * 7 + k * 5 + k * k) % len(WORDS)] for k in range(40)),
        "year": 2000 + i % 20,
    }


def _rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ------------------------------------------------------------------------------------------ worker mode


def worker(config: dict[str, Any]) -> None:
    """One ingest process: a file or a Kafka topic; prints its summary and RSS trace as JSON."""
    from colsplade.engines import connect
    from colsplade.ingest import Batching, KafkaSource, ingest

    trace: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            trace.append((round(time.monotonic() - started, 1), round(_rss_mb(), 1)))
            stop.wait(0.5)

    threading.Thread(target=sample, daemon=True).start()
    if config.get("topic"):
        source: Any = KafkaSource(
            config["bootstrap"], config["topic"], config["group"], until_caught_up=config["until_caught_up"]
        )
        import signal

        signal.signal(signal.SIGTERM, lambda signum, frame: source.stop())
    else:
        source = config["file"]
    client = connect(url=config["url"], engine=config["engine"])
    summary = ingest(
        source,
        client,
        config["index"],
        config["model"],
        batching=Batching(encode_batch_size=32, bulk_docs=200),
        progress=False,
        dead_letter=config.get("dead_letter"),
    )
    stop.set()
    print(json.dumps({"summary": summary.as_dict(), "rss": trace, "max_rss_mb": max(r for _, r in trace)}))


def _spawn(config: dict[str, Any]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _result(proc: subprocess.Popen, timeout: float = 3600) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"a worker failed with exit {proc.returncode}: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ the runs


def _topic(bootstrap: str, partitions: int) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def _produce(bootstrap: str, topic: str, start: int, n: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(start, start + n):
        while True:
            try:
                producer.produce(topic, key=f"doc-{i}".encode(), value=json.dumps(_doc(i)).encode())
                break
            except BufferError:
                producer.poll(0.2)
    producer.flush(120)


def _throughput(base: dict[str, Any], n: int, configs: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.monotonic()
    procs = [_spawn({**base, **c}) for c in configs]
    results = [_result(p) for p in procs]
    wall = time.monotonic() - t0
    indexed = sum(r["summary"]["indexed"] for r in results)
    longest = max(r["summary"]["seconds"] for r in results)
    return {
        "workers": len(configs),
        "docs": n,
        "indexed_total": indexed,
        "wall_seconds": round(wall, 1),
        "docs_per_second_wall": round(n / wall, 1),
        "docs_per_second_ingest_call": round(n / longest, 1),
        "per_worker_indexed": [r["summary"]["indexed"] for r in results],
        "max_rss_mb": [r["max_rss_mb"] for r in results],
    }


def _latency(args: argparse.Namespace, base: dict[str, Any], client: Any, bootstrap: str) -> dict[str, Any]:
    from confluent_kafka import Producer

    from colsplade.exceptions import ColspladeError

    topic = _topic(bootstrap, 4)
    index = f"bench-kafka-latency-{uuid.uuid4().hex[:6]}"
    proc = _spawn({**base, "topic": topic, "group": f"g-{topic}", "index": index, "until_caught_up": False})
    # warm-up: the worker's start, group join and the index's creation are not part of the latency
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    producer.produce(topic, key=b"warm", value=json.dumps(_doc(0)).encode())
    producer.flush(10)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if client.index_exists(index) and client.count(index) > 0:
                break
        except ColspladeError:
            pass
        time.sleep(0.2)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(seen) < len(sent):
            pending = [k for k in sent if k not in seen]
            if pending:
                body = {"size": len(pending), "_source": False, "query": {"ids": {"values": pending}}}
                now = time.monotonic()
                try:
                    hits = client.search(index, body)["hits"]["hits"]
                except ColspladeError:  # the index's shard not yet ready
                    hits = []
                for hit in hits:
                    seen.setdefault(hit["_id"], now)
            if done.is_set() and time.monotonic() > stop_at:
                return
            time.sleep(0.05)

    stop_at = float("inf")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for i in range(args.latency_messages):
        key = f"lat-{i}"
        producer.produce(topic, key=key.encode(), value=json.dumps(_doc(i)).encode())
        producer.poll(0)
        sent[key] = time.monotonic()
        time.sleep(1.0 / args.rate)
    producer.flush(10)
    stop_at = time.monotonic() + 30
    done.set()
    watcher.join()
    proc.terminate()
    result = _result(proc)
    latencies = sorted(seen[k] - sent[k] for k in seen)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "messages": args.latency_messages,
        "rate_per_second": args.rate,
        "searchable": len(latencies),
        "p50_ms": round(q[49] * 1000, 1),
        "p95_ms": round(q[94] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "poll_interval_ms": 50,
        "engine_refresh_interval": "1s (default)",
        "worker_exit_code": proc.returncode,
        "worker_stream": result["summary"]["stream"],
    }


def _rss(args: argparse.Namespace, base: dict[str, Any], bootstrap: str) -> dict[str, Any]:
    topic = _topic(bootstrap, 4)
    _produce(bootstrap, topic, 0, args.rss_messages)
    index = f"bench-kafka-rss-{uuid.uuid4().hex[:6]}"
    result = _result(
        _spawn({**base, "topic": topic, "group": f"g-{topic}", "index": index, "until_caught_up": True})
    )
    trace = result["rss"]
    step = max(1, len(trace) // 40)
    return {
        "messages": args.rss_messages,
        "indexed": result["summary"]["indexed"],
        "seconds": round(result["summary"]["seconds"], 1),
        "docs_per_second": result["summary"]["docs_per_second"],
        "max_rss_mb": result["max_rss_mb"],
        "rss_at_10_50_90_100_percent_mb": [
            trace[min(len(trace) - 1, int(len(trace) * f))][1] for f in (0.1, 0.5, 0.9, 1.0)
        ],
        "rss_trace_mb": trace[::step],
        "stream": result["summary"]["stream"],
        "index": index,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help="model directory (default: build a tiny random one)")
    parser.add_argument(
        "--build-model", default="/tmp/bench-kafka-tiny", help="where the tiny model is built"
    )
    parser.add_argument("--url", help="engine URL (default: the local node)")
    parser.add_argument("--engine", default="elasticsearch")
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--latency-messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second in the latency run")
    parser.add_argument("--rss-messages", type=int, default=100000)
    parser.add_argument("--out", default="benchmarks/results/kafka.json")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    from colsplade.engines import connect, connect_default
    from colsplade.local import start_broker

    model = Path(args.model) if args.model else _tiny_model(Path(args.build_model), args)
    client = connect(url=args.url, engine=args.engine) if args.url else connect_default()
    url = client.settings.urls[0]
    broker = start_broker(name="bench", ephemeral=True)
    work = Path(f"/tmp/bench-kafka-{uuid.uuid4().hex[:6]}")
    work.mkdir(parents=True)
    base = {"url": url, "engine": client.engine, "model": str(model), "bootstrap": broker.bootstrap}
    report: dict[str, Any] = {"settings": {}, "runs": {}}
    try:
        n = args.docs
        path = work / "docs.jsonl"
        path.write_text("".join(json.dumps({"_id": f"doc-{i}", **_doc(i)}) + "\n" for i in range(n)))
        topic = _topic(broker.bootstrap, 4)
        _produce(broker.bootstrap, topic, 0, n)
        runs = report["runs"]
        runs["file_1_worker"] = _throughput(base, n, [{"file": str(path), "index": "bench-kafka-file"}])
        runs["kafka_1_worker"] = _throughput(
            base,
            n,
            [{"topic": topic, "group": "bench-one", "index": "bench-kafka-one", "until_caught_up": True}],
        )
        runs["kafka_2_workers"] = _throughput(
            base,
            n,
            [{"topic": topic, "group": "bench-two", "index": "bench-kafka-two", "until_caught_up": True}] * 2,
        )
        report["latency"] = _latency(args, base, client, broker.bootstrap)
        report["rss"] = _rss(args, base, broker.bootstrap)
        for index in ("bench-kafka-file", "bench-kafka-one", "bench-kafka-two", report["rss"]["index"]):
            if client.index_exists(index):
                client.delete_index(index)
    finally:
        broker.stop()
    import confluent_kafka

    report["settings"] = {
        "engine": client.engine,
        "engine_url": url,
        "model": str(model),
        "tiny_model": not args.model,
        "topic_partitions": 4,
        "batching": {"encode_batch_size": 32, "bulk_docs": 200},
        "kafka": {
            "broker": f"Apache Kafka {broker.version} (KRaft, single node, heap {broker.heap}, local)",
            "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0],
            "source_defaults": {
                "max_buffered_messages": 1000,
                "commit_interval_s": 1.0,
                "idle_flush_s": 0.05,
            },
        },
        "note": "2 shared cores: two workers share the CPU with each other, the engine and the broker",
    }
    client.close()
    write_report(args.out, report)


def _tiny_model(path: Path, args: argparse.Namespace) -> Path:
    """A tiny random joint model with a fitted codec (built once)."""
    if (path / "colbert_codec.npz").is_file():
        return path
    from colsplade.encoders import load_encoder, save_model_codec
    from colsplade.scoring import fit_codec
    from colsplade.testing import make_tiny_model_dir

    make_tiny_model_dir("joint", path, variants=("int8",))
    encoder = load_encoder(path, variant="int8")
    vectors = encoder.encode_documents(
        [_doc(i)["title"] + "\n" + _doc(i)["text"] for i in range(500)]
    ).colbert
    save_model_codec(encoder, fit_codec(list(vectors)))
    return path


if __name__ == "__main__":
    main()
