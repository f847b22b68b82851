"""A stream ingest worker in its own process, for tests that need what the CLI has no flag for (fast retry
backoff, an RSS trace): ``python kafka_worker.py CONFIG_JSON``. It runs :func:`colsplade.ingest.ingest` on a
:class:`~colsplade.ingest.KafkaSource`, stops on SIGTERM like the CLI, samples its own RSS every 0.2 s into
``rss_file`` and prints the summary as JSON."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _sample(path: str, stop: threading.Event) -> None:
    started = time.monotonic()
    with open(path, "w") as f:
        while not stop.is_set():
            f.write(f"{time.monotonic() - started:.2f} {_rss_mb():.1f}\n")
            f.flush()
            stop.wait(0.2)


def main(config: dict) -> int:
    from colsplade.engines import connect
    from colsplade.ingest import Batching, FieldMapping, KafkaSource, RetryPolicy, ingest

    source = KafkaSource(
        config["bootstrap"],
        config["topic"],
        config["group"],
        until_caught_up=config.get("until_caught_up", False),
        dlq_topic=config.get("dlq_topic"),
        config=config.get("kafka", {}),
        max_buffered_messages=config.get("max_buffered_messages", 1000),
        max_buffered_bytes=config.get("max_buffered_bytes", 16 * 1024 * 1024),
    )
    signal.signal(signal.SIGTERM, lambda signum, frame: source.stop())
    stop = threading.Event()
    if config.get("rss_file"):
        threading.Thread(target=_sample, args=(config["rss_file"], stop), daemon=True).start()
    client = connect(url=config["url"], engine=config["engine"])
    try:
        summary = ingest(
            source,
            client,
            config["index"],
            config["model"],
            fields=FieldMapping(copy_fields=tuple(config.get("copy_fields", ("title",)))),
            dead_letter=config.get("dead_letter"),
            retry=RetryPolicy(max_retries=400, initial_backoff=0.05, max_backoff=0.3, max_elapsed=600),
            batching=Batching(encode_batch_size=16, bulk_docs=64),
            progress=False,
        )
    finally:
        stop.set()
        client.close()
    print(json.dumps(summary.as_dict(), default=str))
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
