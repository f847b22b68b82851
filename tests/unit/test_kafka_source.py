"""The Kafka source without a broker: its URL (the offset bookkeeping is in test_offsets.py; the broker
tests are in tests/integration/test_kafka.py)."""

from __future__ import annotations

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.ingest import KafkaSource, as_source


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
