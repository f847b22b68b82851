"""The pure parts of the Kafka source: the offset tracker and the source URL (the broker tests are in
tests/integration/test_kafka.py)."""

from __future__ import annotations

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.ingest import KafkaSource, as_source
from colsplade.ingest._kafka import _Offsets, _Partition


def test_commit_offset_is_after_the_longest_settled_prefix() -> None:
    part = _Partition(epoch=1)
    for offset in (10, 11, 12, 15):  # offsets may skip (compaction, transaction markers)
        part.deliver(offset, 1)
    assert part.done_to is None
    part.settle(11)  # out of order: 10 is still in flight, nothing can be committed
    assert part.done_to is None
    part.settle(10)
    assert part.done_to == 12
    part.settle(15)
    assert part.done_to == 12  # 12 still open
    part.settle(12)
    assert part.done_to == 16 and not part.open


def test_a_message_of_several_records_is_settled_when_all_are() -> None:
    part = _Partition(epoch=1)
    part.deliver(0, 3)  # a JSONL message holding three documents
    part.deliver(1, 0)  # a message with no document at all (blank lines) is settled at once
    part.settle(0)
    part.settle(0)
    assert part.done_to is None
    part.settle(0)
    assert part.done_to == 2


def test_revoked_partitions_are_forgotten_and_reassignment_is_a_new_epoch() -> None:
    offsets = _Offsets()
    offsets.assign([("t", 0), ("t", 1)])
    epoch = offsets.parts[("t", 0)].epoch
    offsets.parts[("t", 0)].deliver(5, 1)
    offsets.parts[("t", 0)].settle(5)
    assert offsets.to_commit() == {("t", 0): 6}
    offsets.committed({("t", 0): 6})
    assert offsets.to_commit() == {}
    offsets.revoke([("t", 0)])
    assert not offsets.current(("t", 0), epoch)
    offsets.assign([("t", 0)])
    # a record read under the old assignment is not the new owner's
    assert not offsets.current(("t", 0), epoch) and offsets.current(("t", 0), offsets.parts[("t", 0)].epoch)


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
