"""The pure bookkeeping of a stream consumer: which offsets may be committed, and the read-ahead buffer.

Neither class talks to Kafka; :class:`~colsplade.ingest.sources.KafkaSource` drives them from its poller
thread (deliveries, rebalances, commits) and the pipeline's thread (settlements), hence the locks.

The commit rule: a partition's committable offset is the one after the longest *settled prefix* of what
was delivered, so a commit never passes a message still in flight, whatever order settlements come in::

    delivered 10 11 12 15      settled 11        -> nothing committable (10 is in flight)
                               settled 10        -> 12  (10 and 11 done; offsets may skip: 13, 14 absent)
                               settled 15        -> 12  (12 is still in flight)
                               settled 12        -> 16
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from colsplade.exceptions import InvalidInputError

__all__ = ["OffsetTracker", "PartitionOffsets", "ReadAheadBuffer", "TopicPartition"]

#: ``(topic, partition number)``.
TopicPartition = tuple[str, int]

T = TypeVar("T")


class PartitionOffsets:
    """Delivered-but-unsettled messages of one assigned partition, in delivery order.

    ``epoch``: which assignment this is (a partition revoked and assigned again gets a new one, so work
    read under the old assignment settles nothing); ``unsettled``: offset -> records of that message not
    yet settled; ``done_to``: the offset after the longest settled prefix (what may be committed), None
    before the first message settles; ``committed``: the last offset committed; ``read_to``: the offset
    after the last delivered message.

    >>> part = PartitionOffsets(epoch=1)
    >>> part.deliver(7, n_records=2)  # one message, two documents (JSONL in a message)
    >>> part.settle(7); part.done_to is None
    True
    >>> part.settle(7); part.done_to
    8
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.unsettled: dict[int, int] = {}  # insertion order is delivery order, so the head is the oldest
        self.done_to: int | None = None
        self.committed: int | None = None
        self.read_to: int | None = None

    def deliver(self, offset: int, n_records: int) -> None:
        """The message at ``offset`` was read and became ``n_records`` records (0: settled at once)."""
        self.read_to = offset + 1
        self.unsettled[offset] = n_records
        self._advance()

    def settle(self, offset: int) -> None:
        """One record of the message at ``offset`` is settled (an offset not delivered here is ignored)."""
        if offset in self.unsettled:
            self.unsettled[offset] -= 1
            self._advance()

    def _advance(self) -> None:
        while self.unsettled:
            head = next(iter(self.unsettled))
            if self.unsettled[head] > 0:
                return
            del self.unsettled[head]
            self.done_to = head + 1


class OffsetTracker:
    """The :class:`PartitionOffsets` of every assigned partition; every method holds :attr:`lock`.

    :attr:`lock` is re-entrant: hold it around several calls that must see one state (read a
    partition's epoch, then deliver to it) while a rebalance may come from another thread.

    >>> tracker = OffsetTracker()
    >>> tracker.assign([("docs", 0)])
    >>> epoch = tracker.partition(("docs", 0)).epoch
    >>> tracker.partition(("docs", 0)).deliver(41, 1)
    >>> tracker.settle(("docs", 0), epoch, 41)
    True
    >>> tracker.to_commit()
    {('docs', 0): 42}
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._parts: dict[TopicPartition, PartitionOffsets] = {}
        self._epoch = 0

    def assign(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions assigned to this worker: each starts empty under a new epoch."""
        with self.lock:
            for tp in tps:
                self._epoch += 1
                self._parts[tp] = PartitionOffsets(self._epoch)

    def revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions revoked or lost: forgotten, with whatever they had in flight (the new owner redoes it)."""
        with self.lock:
            for tp in tps:
                self._parts.pop(tp, None)

    def partition(self, tp: TopicPartition) -> PartitionOffsets | None:
        """The partition's state, None when it is not assigned."""
        with self.lock:
            return self._parts.get(tp)

    def partitions(self) -> dict[TopicPartition, PartitionOffsets]:
        """A snapshot of the assigned partitions (the states themselves are live)."""
        with self.lock:
            return dict(self._parts)

    def current(self, tp: TopicPartition, epoch: int) -> bool:
        """Whether work read from ``tp`` under ``epoch`` still belongs to this worker."""
        with self.lock:
            part = self._parts.get(tp)
            return part is not None and part.epoch == epoch

    def settle(self, tp: TopicPartition, epoch: int, offset: int) -> bool:
        """Settle one record of the message at ``offset``; False (and nothing done) when ``tp`` was
        revoked or re-assigned since the record was read under ``epoch``."""
        with self.lock:
            part = self._parts.get(tp)
            if part is None or part.epoch != epoch:
                return False
            part.settle(offset)
            return True

    def to_commit(self) -> dict[TopicPartition, int]:
        """The offsets to commit now: each partition's settled prefix, where it moved past the last commit."""
        with self.lock:
            return {
                tp: p.done_to
                for tp, p in self._parts.items()
                if p.done_to is not None and (p.committed is None or p.done_to > p.committed)
            }

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """``offsets`` were committed (partitions revoked meanwhile are ignored)."""
        with self.lock:
            for tp, offset in offsets.items():
                if tp in self._parts:
                    self._parts[tp].committed = offset

    def in_flight(self) -> int:
        """Messages delivered and not yet settled, over every assigned partition."""
        with self.lock:
            return sum(len(p.unsettled) for p in self._parts.values())


class ReadAheadBuffer(Generic[T]):
    """Messages read ahead of the pipeline, each a list of records of one partition.

    Bounded by the reader pausing its partitions, not by blocking: :meth:`put` always takes the message
    (a poller that blocked would miss its group heartbeats); the reader checks :meth:`full` to pause and
    :meth:`low` (half of both limits) to resume, so it does not flap around the limit. ``size`` is what a
    message counts against ``max_bytes`` (its value's length, plus a little for the records' overhead).

    >>> buffer = ReadAheadBuffer(max_messages=2, max_bytes=1000)
    >>> buffer.put(("docs", 0), ["a"], 10); buffer.full()
    False
    >>> buffer.put(("docs", 1), ["b", "c"], 10); buffer.full()
    True
    >>> buffer.purge({("docs", 0)}); buffer.get(timeout=0)
    1
    ['b', 'c']
    """

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise InvalidInputError(
                f"the read-ahead buffer needs room for a message: max_messages={max_messages}, "
                f"max_bytes={max_bytes}"
            )
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: collections.deque[tuple[TopicPartition, list[T], int]] = collections.deque()
        self._nbytes = 0
        self._cond = threading.Condition()

    @property
    def messages(self) -> int:
        """Messages held."""
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held, as counted by :meth:`put`."""
        return self._nbytes

    def full(self) -> bool:
        """At or past either limit: the reader should pause."""
        return self.messages >= self.max_messages or self._nbytes >= self.max_bytes

    def low(self) -> bool:
        """At or below half of both limits: a paused reader may resume."""
        return self.messages <= self.max_messages // 2 and self._nbytes <= self.max_bytes // 2

    def empty(self) -> bool:
        """Nothing held."""
        return not self._items

    def put(self, tp: TopicPartition, records: list[T], size: int) -> None:
        """Append one message's records (read from ``tp``) and wake a waiting :meth:`get`."""
        with self._cond:
            self._items.append((tp, records, size))
            self._nbytes += size
            self._cond.notify()

    def get(self, timeout: float) -> list[T] | None:
        """The oldest message's records, waiting up to ``timeout`` seconds for one; None if none came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            _tp, records, size = self._items.popleft()
            self._nbytes -= size
            return records

    def purge(self, tps: set[TopicPartition]) -> int:
        """Drop the messages of ``tps`` (revoked: the new owner reads them again); returns how many."""
        with self._cond:
            kept = [item for item in self._items if item[0] not in tps]
            dropped = len(self._items) - len(kept)
            self._items = collections.deque(kept)
            self._nbytes = sum(size for _tp, _records, size in kept)
            return dropped

    def wake(self) -> None:
        """Wake every waiting :meth:`get` (the reader failed: the waiter should look at why)."""
        with self._cond:
            self._cond.notify_all()
