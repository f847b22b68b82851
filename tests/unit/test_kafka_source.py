"""The Kafka source without a broker: its URL, and its bounded close (the offset bookkeeping is in
test_offsets.py; the broker tests are in tests/integration/test_kafka.py)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.ingest import KafkaSource, as_source
from colsplade.ingest.sources import DEFAULT_CLOSE_TIMEOUT


def test_source_url() -> None:
    source = as_source("kafka://broker-1:9092,broker-2:9092/docs,more?group=indexers")
    assert isinstance(source, KafkaSource) and source.self_committing
    assert source.bootstrap == "broker-1:9092,broker-2:9092"
    assert source.topics == ["docs", "more"] and source.group == "indexers"
    assert KafkaSource.from_url("kafka://h:1/t", group="g").signature() == {
        "kind": "kafka",
        "bootstrap": "h:1",
        "topics": ["t"],
        "group": "g",
    }
    with pytest.raises(InvalidInputError, match="consumer group"):
        as_source("kafka://h:1/t")
    with pytest.raises(InvalidInputError, match="TOPIC"):
        as_source("kafka://h:1/")
    with pytest.raises(InvalidInputError, match="json or jsonl"):
        KafkaSource("h:1", "t", "g", value_format="xml")  # type: ignore[arg-type]


class _Consumer:
    """Stands in for confluent_kafka.Consumer in ``KafkaSource.close``: records the calls, and its
    ``close()`` blocks until released, like librdkafka's leaving the group in the middle of a rebalance."""

    def __init__(self, *, blocks: bool = False, fails: bool = False) -> None:
        self.calls: list[str] = []
        self.blocks = blocks
        self.fails = fails
        self.release = threading.Event()

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> None:
        self.calls.append("commit " + ",".join(f"{tp.topic}/{tp.partition}@{tp.offset}" for tp in offsets))

    def get_watermark_offsets(self, tp: Any, **kwargs: Any) -> tuple[int, int]:
        return 0, 8

    def close(self) -> None:
        self.calls.append("close")
        if self.blocks:
            self.release.wait(60)
        if self.fails:
            raise RuntimeError("KafkaError{code=_DESTROY}")


def _source_with(consumer: _Consumer, close_timeout: float) -> KafkaSource:
    pytest.importorskip("confluent_kafka")  # close builds TopicPartitions for the commit
    source = KafkaSource("h:1", "t", "g", close_timeout=close_timeout)
    # records() would make the consumer from the broker config; here a stand-in is handed over
    source._consumer = consumer
    offsets = source._offsets
    offsets.assign([("t", 0)])
    part = offsets.partition(("t", 0))
    assert part is not None
    part.deliver(7, 1)
    offsets.settle(("t", 0), part.epoch, 7)
    return source


def test_a_close_that_hangs_returns_within_its_deadline_after_the_final_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = _Consumer(blocks=True)
    source = _source_with(consumer, close_timeout=0.3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="colsplade.ingest.sources._kafka"):
        source.close()
    elapsed = time.monotonic() - started
    try:
        assert elapsed < 3, f"close took {elapsed:.1f} s"
        assert consumer.calls == ["commit t/0@8", "close"]  # the offsets were committed before the close
        warning = next(r for r in caplog.records if "did not close within" in r.getMessage())
        assert warning.levelno == logging.WARNING
        assert "already committed" in warning.getMessage()
        source.close()  # idempotent: no second close, no second wait
        assert consumer.calls == ["commit t/0@8", "close"]
    finally:
        consumer.release.set()


def test_a_close_that_returns_is_waited_for_and_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    consumer = _Consumer(blocks=False)
    source = _source_with(consumer, close_timeout=5)
    with caplog.at_level(logging.WARNING, logger="colsplade.ingest.sources._kafka"):
        source.close()
    assert consumer.calls == ["commit t/0@8", "close"]
    assert not [r for r in caplog.records if "did not close" in r.getMessage()]


def test_an_error_of_a_close_that_returned_is_raised() -> None:
    source = _source_with(_Consumer(fails=True), close_timeout=5)
    with pytest.raises(RuntimeError, match="_DESTROY"):
        source.close()


def test_the_close_deadline_is_an_option() -> None:
    assert KafkaSource("h:1", "t", "g").close_timeout == DEFAULT_CLOSE_TIMEOUT == 10.0
    assert KafkaSource.from_url("kafka://h:1/t?group=g", close_timeout=2.5).close_timeout == 2.5
