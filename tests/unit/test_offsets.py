"""The Kafka source's pure bookkeeping (colsplade.ingest.sources: OffsetTracker, PartitionOffsets,
ReadAheadBuffer), through public names only; the broker tests are in tests/integration/test_kafka.py."""

from __future__ import annotations

import random
import threading
import time

import pytest

from colsplade.exceptions import InvalidInputError
from colsplade.ingest.sources import OffsetTracker, PartitionOffsets, ReadAheadBuffer

# ---------------------------------------------------------------------- one partition


def test_commit_offset_is_after_the_longest_settled_prefix() -> None:
    part = PartitionOffsets(epoch=1)
    for offset in (10, 11, 12, 15):  # offsets may skip (compaction, transaction markers)
        part.deliver(offset, 1)
    assert part.done_to is None and part.read_to == 16
    part.settle(11)  # out of order: 10 is still in flight, nothing can be committed
    assert part.done_to is None
    part.settle(10)
    assert part.done_to == 12
    part.settle(15)
    assert part.done_to == 12  # 12 still open
    part.settle(12)
    assert part.done_to == 16 and not part.unsettled


def test_a_message_of_several_records_is_settled_when_all_are() -> None:
    part = PartitionOffsets(epoch=1)
    part.deliver(0, 3)  # a JSONL message holding three documents
    part.deliver(1, 0)  # a message with no document at all (blank lines) is settled at once
    part.settle(0)
    part.settle(0)
    assert part.done_to is None
    part.settle(0)
    assert part.done_to == 2


def test_an_empty_message_at_the_head_is_committable_at_once() -> None:
    part = PartitionOffsets(epoch=1)
    part.deliver(4, 0)
    assert part.done_to == 5 and not part.unsettled


def test_settling_an_offset_never_delivered_or_already_done_changes_nothing() -> None:
    part = PartitionOffsets(epoch=1)
    part.deliver(3, 1)
    part.settle(2)  # not delivered here (read before a rewind, say)
    assert part.done_to is None and part.unsettled == {3: 1}
    part.settle(3)
    part.settle(3)  # a second settlement of a finished message
    assert part.done_to == 4 and not part.unsettled


def test_settlements_in_any_order_commit_exactly_the_settled_prefix() -> None:
    rng = random.Random(7)
    offsets = sorted(rng.sample(range(200), 60))
    for _ in range(20):
        part = PartitionOffsets(epoch=1)
        for offset in offsets:
            part.deliver(offset, 1)
        order = offsets[:]
        rng.shuffle(order)
        settled: set[int] = set()
        for offset in order:
            part.settle(offset)
            settled.add(offset)
            prefix = 0
            while prefix < len(offsets) and offsets[prefix] in settled:
                prefix += 1
            expected = offsets[prefix - 1] + 1 if prefix else None
            assert part.done_to == expected


# ---------------------------------------------------------------------- the tracker: commits, rebalances


def test_to_commit_offers_each_partition_once_per_advance() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0), ("t", 1)])
    epoch0 = tracker.partition(("t", 0)).epoch  # type: ignore[union-attr]
    tracker.partition(("t", 0)).deliver(5, 1)  # type: ignore[union-attr]
    assert tracker.to_commit() == {}  # delivered, not settled
    assert tracker.in_flight() == 1
    assert tracker.settle(("t", 0), epoch0, 5)
    assert tracker.to_commit() == {("t", 0): 6}
    tracker.committed({("t", 0): 6})
    assert tracker.to_commit() == {}  # committed already: nothing new to commit
    assert tracker.partition(("t", 0)).committed == 6  # type: ignore[union-attr]
    assert tracker.in_flight() == 0


def test_revoke_drops_the_partition_and_its_work_in_flight() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0), ("t", 1)])
    parts = tracker.partitions()
    epoch0, epoch1 = parts[("t", 0)].epoch, parts[("t", 1)].epoch
    parts[("t", 0)].deliver(0, 1)
    parts[("t", 1)].deliver(0, 1)
    tracker.revoke([("t", 0)])
    assert set(tracker.partitions()) == {("t", 1)}
    assert tracker.partition(("t", 0)) is None
    assert tracker.in_flight() == 1
    # a record of the revoked partition settles nothing and commits nothing: the new owner redoes it
    assert not tracker.settle(("t", 0), epoch0, 0)
    assert tracker.settle(("t", 1), epoch1, 0)
    assert tracker.to_commit() == {("t", 1): 1}
    # a commit that raced the revoke does not bring the partition back
    tracker.committed({("t", 0): 1, ("t", 1): 1})
    assert set(tracker.partitions()) == {("t", 1)}
    tracker.revoke([("t", 9)])  # revoking what was never assigned is harmless


def test_reassignment_is_a_new_epoch_and_starts_empty() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0)])
    old = tracker.partition(("t", 0))
    assert old is not None
    old.deliver(5, 1)
    tracker.revoke([("t", 0)])
    tracker.assign([("t", 0)])
    new = tracker.partition(("t", 0))
    assert new is not None and new.epoch != old.epoch
    assert new.unsettled == {} and new.done_to is None and new.committed is None
    # a record read under the old assignment is not the new owner's
    assert not tracker.current(("t", 0), old.epoch) and tracker.current(("t", 0), new.epoch)
    assert not tracker.settle(("t", 0), old.epoch, 5)
    assert tracker.to_commit() == {}


def test_the_partitions_snapshot_is_a_copy() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0)])
    snapshot = tracker.partitions()
    tracker.revoke([("t", 0)])
    assert ("t", 0) in snapshot and tracker.partitions() == {}


# ---------------------------------------------------------------------- the read-ahead buffer


def test_buffer_is_full_at_either_limit_and_low_at_half_of_both() -> None:
    by_count: ReadAheadBuffer[str] = ReadAheadBuffer(max_messages=4, max_bytes=10_000)
    for n in range(4):
        assert not by_count.full()
        by_count.put(("t", 0), [f"m{n}"], 10)
    assert by_count.full() and not by_count.low() and by_count.messages == 4
    by_count.get(timeout=0)
    assert not by_count.full() and not by_count.low()  # 3 of 4: no longer full, not yet low
    by_count.get(timeout=0)
    assert by_count.low()  # 2 of 4: a paused reader may resume

    by_size: ReadAheadBuffer[str] = ReadAheadBuffer(max_messages=100, max_bytes=1000)
    by_size.put(("t", 0), ["big"], 999)
    assert not by_size.full()
    by_size.put(("t", 0), ["more"], 1)
    assert by_size.full() and by_size.nbytes == 1000
    # put never refuses: the reader pauses its partitions instead of blocking (group heartbeats)
    by_size.put(("t", 0), ["past the limit"], 500)
    assert by_size.messages == 3 and by_size.nbytes == 1500


def test_buffer_gives_messages_in_order_and_none_when_idle() -> None:
    buffer: ReadAheadBuffer[int] = ReadAheadBuffer(max_messages=10, max_bytes=1000)
    assert buffer.empty() and buffer.get(timeout=0.01) is None
    buffer.put(("t", 0), [1, 2], 10)
    buffer.put(("t", 1), [3], 10)
    assert buffer.get(timeout=0) == [1, 2]
    assert buffer.get(timeout=0) == [3]
    assert buffer.empty() and buffer.nbytes == 0


def test_purge_drops_only_the_revoked_partitions_and_frees_their_room() -> None:
    buffer: ReadAheadBuffer[str] = ReadAheadBuffer(max_messages=3, max_bytes=1000)
    buffer.put(("t", 0), ["a"], 100)
    buffer.put(("t", 1), ["b"], 200)
    buffer.put(("t", 0), ["c"], 300)
    assert buffer.full()
    assert buffer.purge({("t", 0), ("u", 5)}) == 2
    assert buffer.messages == 1 and buffer.nbytes == 200 and buffer.low()
    assert buffer.get(timeout=0) == ["b"]


def test_a_waiting_get_wakes_on_put() -> None:
    buffer: ReadAheadBuffer[str] = ReadAheadBuffer(max_messages=10, max_bytes=1000)
    got: list[list[str] | None] = []
    waiter = threading.Thread(target=lambda: got.append(buffer.get(timeout=5)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.05)
    buffer.put(("t", 0), ["late"], 1)
    waiter.join(timeout=5)
    assert got == [["late"]] and time.monotonic() - started < 2


def test_a_buffer_without_room_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="max_messages=0"):
        ReadAheadBuffer(max_messages=0, max_bytes=10)
    with pytest.raises(InvalidInputError, match="max_bytes=0"):
        ReadAheadBuffer(max_messages=1, max_bytes=0)
