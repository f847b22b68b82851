"""Kafka topics as an ingest source: a consumer group, offsets committed only after the engine acknowledged.

How a message becomes a committed offset:

* a poller thread owns the consumer: it polls, serves rebalances, pauses every assigned partition
  while its bounded buffer is full (the pipeline behind it is slow, or the engine answers 429) and
  resumes them once it drained, so memory stays flat and the group never times the worker out;
* the ingest pipeline reads the buffer (:meth:`KafkaSource.records`), encodes, writes and, once a batch
  is settled (acknowledged by the engine or dead-lettered, the dead-letter file synced), calls
  :meth:`KafkaSource.acknowledge`;
* per partition, an offset tracker keeps the messages delivered and not yet settled; the committable
  offset is the one after the longest settled prefix, so a commit never passes a message that is
  still in flight, whatever order the acknowledgements come in (the tracker and the buffer are the
  pure :mod:`colsplade.ingest.sources._offsets`);
* the poller commits that offset every ``commit_interval`` seconds, when partitions are revoked (then
  the revoked partitions' queued work is dropped: the new owner redoes it) and when the run ends;
* closing leaves the group with ``consumer.close()``, waited for ``close_timeout`` seconds at most: the
  final offsets are committed before it, and librdkafka's close can hang when it comes during a
  rebalance, which must not keep a stopped worker from exiting.

With idempotent ``_id`` s (the key, an id field or a content hash), a redelivery after a crash overwrites a
document; it never doubles it. Dead letters go to the run's file and, with ``dlq_topic``, to a topic:
then every commit is a Kafka transaction holding the dead letters of the settled messages and the
group's offsets (``send_offsets_to_transaction``), so a poison message is dead-lettered exactly once even
when a worker is killed (read the DLQ topic with ``isolation.level=read_committed``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from colsplade.exceptions import ColspladeError, InvalidInputError, MissingExtraError, StreamError
from colsplade.ingest._checkpoint import DeadLetterWriter
from colsplade.ingest._json import dumps
from colsplade.ingest.sources._base import DEFAULT_MAX_RECORD_BYTES, Record, Source, parse_json_line
from colsplade.ingest.sources._offsets import OffsetTracker, ReadAheadBuffer, TopicPartition

logger = logging.getLogger(__name__)

__all__ = ["KafkaSource"]

#: Seconds :meth:`KafkaSource.close` waits for librdkafka's ``consumer.close()`` (leaving the group).
DEFAULT_CLOSE_TIMEOUT = 10.0

_PRODUCER_ONLY = ("transaction", "acks", "linger.ms", "batch.", "compression.", "enable.idempotence")
_CONSUMER_ONLY = (
    "group.",
    "session.",
    "heartbeat.",
    "auto.",
    "enable.auto",
    "isolation.",
    "max.poll",
    "partition.assignment",
    "fetch.",
    "queued.",
)


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("confluent-kafka", "kafka") from exc
    return confluent_kafka


@dataclass
class _KafkaRecord(Record):
    """A record with the partition it came from and the assignment (epoch) it was read under."""

    tp: TopicPartition = ("", 0)
    offset: int = 0
    epoch: int = 0
    key: bytes | None = None


class KafkaSource(Source):
    """Documents from Kafka topics, read by a member of a consumer group.

    Args:
        bootstrap: ``host:port[,host:port]`` of the brokers.
        topics: topic name(s) to subscribe to.
        group: the consumer group; workers of one group share the partitions.
        value_format: ``json`` (one object per message) or ``jsonl`` (one object per line of a message).
        key_as_id: a message's key is the document id (the tombstone of that key deletes it); turn it
            off when the id comes from a field of the document (the CLI does with ``--id-field``).
        until_caught_up: stop once the group has committed every partition of the topics up to its end
            offset (measured when checked); otherwise run until :meth:`stop` (SIGTERM in the CLI).
        dlq_topic: also produce dead letters to this topic, transactionally with the offsets.
        config: librdkafka properties for the consumer and producer (``security.protocol``,
            ``sasl.*``, ``session.timeout.ms`` ...); ``auto.offset.reset`` defaults to ``earliest``.
        max_buffered_messages / max_buffered_bytes: the read-ahead buffer; past it the partitions pause.
        commit_interval: seconds between commits of settled offsets.
        idle_flush: seconds without a message after which what is batched is passed on (latency).
        max_record_bytes: a message (or a line of a ``jsonl`` message) longer than this is dead-lettered.
        close_timeout: seconds :meth:`close` waits for the consumer to leave the group; past it the run
            ends anyway (the final offsets are committed first; the group notices the departed member
            after ``session.timeout.ms``).
    """

    kind = "kafka"
    self_committing = True

    def __init__(
        self,
        bootstrap: str,
        topics: str | Sequence[str],
        group: str,
        *,
        value_format: Literal["json", "jsonl"] = "json",
        key_as_id: bool = True,
        until_caught_up: bool = False,
        dlq_topic: str | None = None,
        config: Mapping[str, Any] | None = None,
        max_buffered_messages: int = 1000,
        max_buffered_bytes: int = 16 * 1024 * 1024,
        commit_interval: float = 1.0,
        idle_flush: float = 0.05,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if not group:
            raise InvalidInputError("a Kafka source needs a consumer group (--group NAME or ?group=NAME)")
        if value_format not in ("json", "jsonl"):
            raise InvalidInputError(f"value format must be json or jsonl, not {value_format!r}")
        self.bootstrap = bootstrap
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics or not all(self.topics):
            raise InvalidInputError("a Kafka source needs at least one topic")
        self.group = group
        self.value_format = value_format
        self.key_as_id = key_as_id
        self.until_caught_up = until_caught_up
        self.dlq_topic = dlq_topic
        self.config = dict(config or {})
        self.commit_interval = commit_interval
        self.idle_flush = idle_flush
        self.max_record_bytes = max_record_bytes
        self.close_timeout = close_timeout
        self._buffer: ReadAheadBuffer[_KafkaRecord] = ReadAheadBuffer(
            max_buffered_messages, max_buffered_bytes
        )
        self._offsets = OffsetTracker()
        self._stop = threading.Event()
        self._closed = False
        self._caught_up = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._pending_dead: list[dict[str, Any]] = []
        self._paused: set[TopicPartition] = set()
        # librdkafka keeps a partition's pause flag across a revoke (or loss) and a later re-assignment,
        # so every newly assigned partition gets an explicit resume before flow control decides again.
        self._fresh: set[TopicPartition] = set()
        self._assigned_once = False
        self._seq = 0
        self._figures = {
            "consumed": 0,
            "rebalances": 0,
            "pauses": 0,
            "commits": 0,
            "dlq_produced": 0,
            "aborted_transactions": 0,
        }
        self._lag: int | None = None
        self._committed: dict[TopicPartition, int] = {}  # what this worker committed, partition by partition
        self._group_lag: int | None = None
        self._started: float | None = None

    @classmethod
    def from_url(cls, url: str, *, group: str | None = None, **options: Any) -> KafkaSource:
        """``kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=NAME`` (``group`` may come as an argument)."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "kafka" or not parsed.netloc or not parsed.path.strip("/"):
            raise InvalidInputError(f"not a Kafka source URL: {url!r}; expected kafka://HOST:PORT/TOPIC")
        query = dict(urllib.parse.parse_qsl(parsed.query))
        group = group or query.pop("group", None)
        topics = [t for t in parsed.path.strip("/").split(",") if t]
        return cls(parsed.netloc, topics, group or "", **options)

    def signature(self) -> dict[str, Any]:
        return {"kind": self.kind, "bootstrap": self.bootstrap, "topics": self.topics, "group": self.group}

    # ------------------------------------------------------------------ the pipeline's side

    def records(self, resume: Mapping[str, Any] | None = None) -> Iterator[Record | None]:  # type: ignore[override]
        self._start()
        while True:
            if self._failure is not None:
                raise self._failure
            if self._stop.is_set():
                return
            batch = self._buffer.get(self.idle_flush)
            if batch is None:
                if self._caught_up.is_set() and self._buffer.empty():
                    return
                yield None  # idle: the pipeline passes on what it has batched
                continue
            yield from batch

    def accepts(self, record: Record) -> bool:
        return isinstance(record, _KafkaRecord) and self._offsets.current(record.tp, record.epoch)

    def acknowledge(self, records: Sequence[Record]) -> None:
        with self._offsets.lock:
            if self._pending_dead:
                self._bind_dead_letters(records)
            for record in records:
                if isinstance(record, _KafkaRecord):
                    self._offsets.settle(record.tp, record.epoch, record.offset)
            if self._producer is not None:
                self._produce_dead_letters()

    def dead_letters(self, path: str | os.PathLike[str] | None) -> DeadLetterWriter:
        return _KafkaDeadLetters(path, self)

    def stop(self) -> None:
        """Stop reading (SIGTERM): the run drains what is in flight, commits it and returns."""
        self._stop.set()

    def close(self) -> None:
        """Commit what was settled, leave the group, close the clients (idempotent)."""
        if self._closed or self._consumer is None:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        committed = False
        try:
            self._commit(final=True)
            committed = True
            self._quietly(self._update_lag, cached=False)
        finally:
            # leaves the group; the revoke callback commits again (no-op)
            _close_within(self._consumer, self.close_timeout, committed=committed)
            if self._producer is not None:
                self._producer.flush(10)

    def stats(self) -> dict[str, Any] | None:
        with self._offsets.lock:
            assigned = [f"{t}/{p}" for t, p in sorted(self._offsets.partitions())]
            committed = {f"{t}/{p}": o for (t, p), o in sorted(self._committed.items())}
        elapsed = time.monotonic() - self._started if self._started else 0.0
        return {
            "topics": self.topics,
            "group": self.group,
            "lag": self._lag,
            "group_lag": self._group_lag,
            "assigned": assigned,
            "committed": committed,
            "in_flight": self._offsets.in_flight(),
            "buffered": self._buffer.messages,
            "paused": bool(self._paused),
            "messages_per_second": round(self._figures["consumed"] / elapsed, 1) if elapsed else 0.0,
            **self._figures,
        }

    # ------------------------------------------------------------------ the poller thread

    def _client_config(self, role: str) -> dict[str, Any]:
        """The caller's properties for one client: those of the other role only are left out (librdkafka
        would warn about each)."""
        other = _PRODUCER_ONLY if role == "consumer" else _CONSUMER_ONLY
        return {
            "bootstrap.servers": self.bootstrap,
            **{k: v for k, v in self.config.items() if not k.startswith(other)},
        }

    def _start(self) -> None:
        if self._thread is not None:
            return
        ck = _kafka()
        kafka_logger = logging.getLogger("colsplade.ingest.kafka.client")
        conf = {
            "group.id": self.group,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "queued.max.messages.kbytes": 8192,
            "enable.partition.eof": False,
            **self._client_config("consumer"),
        }
        self._consumer = ck.Consumer(conf, logger=kafka_logger)
        if self.dlq_topic:
            producer_conf = self._client_config("producer")
            producer_conf.setdefault("transactional.id", f"colsplade-{self.group}-{uuid.uuid4().hex[:12]}")
            producer_conf.setdefault("transaction.timeout.ms", 30000)
            self._producer = ck.Producer(producer_conf, logger=kafka_logger)
            self._producer.init_transactions(30)
            self._producer.begin_transaction()
        self._consumer.subscribe(
            self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._poll_loop, name="colsplade-kafka-poll", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        last = {"commit": time.monotonic(), "lag": 0.0, "caught_up": 0.0}
        try:
            while not (self._closed and self._stop.is_set()):
                self._flow_control()
                for message in self._consumer.consume(num_messages=500, timeout=0.1):
                    self._take(message)
                now = time.monotonic()
                if now - last["commit"] >= self.commit_interval:
                    self._commit()
                    last["commit"] = now
                if now - last["lag"] >= 1.0:
                    self._quietly(self._update_lag)
                    last["lag"] = now
                if (
                    self.until_caught_up
                    and not self._caught_up.is_set()
                    and now - last["caught_up"] >= 1.0
                    and self._assigned_once
                ):
                    last["caught_up"] = now
                    self._quietly(self._check_caught_up)
                if self._stop.is_set() and self._closed:
                    return
        except BaseException as exc:
            logger.error("kafka: the poller stopped: %s", exc)
            self._failure = exc if isinstance(exc, ColspladeError) else StreamError(f"Kafka client: {exc}")
            self._buffer.wake()

    def _quietly(self, check: Any, **kwargs: Any) -> None:
        """A lag or caught-up query that fails now (broker away, offsets of a pending transaction) is
        retried at the next tick."""
        try:
            check(**kwargs)
        except _kafka().KafkaException as exc:
            logger.debug("kafka: %s failed, retried later: %s", check.__name__, exc)

    def _flow_control(self) -> None:
        """Pause every assigned partition while the buffer is full (or the run stops); resume at half."""
        ck = _kafka()
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        fresh = self._fresh & assigned
        if fresh:
            self._consumer.resume([ck.TopicPartition(t, p) for t, p in fresh])
            self._paused -= fresh
            self._fresh -= fresh
        want_pause = self._stop.is_set() or self._caught_up.is_set() or self._buffer.full()
        if want_pause or (self._paused and not self._buffer.low()):
            to_pause = assigned - self._paused
            if to_pause:
                self._consumer.pause([ck.TopicPartition(t, p) for t, p in to_pause])
                if not self._paused:
                    self._figures["pauses"] += 1
                    logger.debug("kafka: buffer full, pausing %d partition(s)", len(to_pause))
                self._paused |= to_pause
        elif self._paused:
            resume = self._paused & assigned
            if resume:
                self._consumer.resume([ck.TopicPartition(t, p) for t, p in resume])
            self._paused = set()
        self._paused &= assigned

    def _take(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise StreamError(f"fatal Kafka consumer error: {error}")
            logger.warning("kafka: %s", error)
            return
        tp = (message.topic(), message.partition())
        with self._offsets.lock:
            part = self._offsets.partition(tp)
            if part is None:  # a message of a partition revoked meanwhile
                return
            records = self._records_of(message, tp, part.epoch)
            part.deliver(message.offset(), len(records))
        self._figures["consumed"] += 1
        if records:
            self._buffer.put(tp, records, len(message.value() or b"") + 64)

    def _records_of(self, message: Any, tp: TopicPartition, epoch: int) -> list[_KafkaRecord]:
        value, key = message.value(), message.key()
        position = {"topic": tp[0], "partition": tp[1], "offset": message.offset()}
        common = {"tp": tp, "offset": message.offset(), "epoch": epoch, "key": key}
        doc_id: str | None = None
        if key is not None:
            try:
                doc_id = key.decode("utf-8")
            except UnicodeDecodeError:
                doc_id = None
        if value is None:  # a tombstone
            record = _KafkaRecord(self._next_seq(), position, doc_id=doc_id, delete=True, **common)
            if doc_id is None:
                record.delete, record.error = False, "tombstone without a UTF-8 key: nothing to delete"
            return [record]
        lines = value.split(b"\n") if self.value_format == "jsonl" else [value]
        out = []
        for n, line in enumerate(lines):
            if self.value_format == "jsonl" and not line.strip():
                continue
            where = {**position, "line": n + 1} if len(lines) > 1 else position
            parsed = parse_json_line(line, self._next_seq(), where, self.max_record_bytes)
            record = _KafkaRecord(
                parsed.seq, where, doc=parsed.doc, error=parsed.error, raw=parsed.raw, **common
            )
            if self.key_as_id and doc_id is not None:
                record.doc_id = doc_id if len(lines) == 1 else f"{doc_id}:{n + 1}"
            out.append(record)
        return out

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------------ rebalances

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        self._offsets.assign(tps)
        self._fresh |= set(tps)
        self._assigned_once = True
        self._figures["rebalances"] += 1
        logger.info("kafka: assigned %s", ", ".join(f"{t}/{p}" for t, p in tps) or "nothing new")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Commit what is settled, then forget the revoked partitions and drop their queued work."""
        tps = [(p.topic, p.partition) for p in partitions]
        try:
            self._commit()
        except Exception as exc:  # a commit that cannot happen now is redone by the new owner
            logger.warning("kafka: could not commit on revoke: %s", exc)
        self._offsets.revoke(tps)
        self._buffer.purge(set(tps))
        self._paused -= set(tps)
        self._fresh -= set(tps)
        self._figures["rebalances"] += 1
        logger.info("kafka: revoked %s", ", ".join(f"{t}/{p}" for t, p in tps))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        logger.warning("kafka: lost %s (session timed out); their work is redone by the new owner", tps)
        self._offsets.revoke(tps)
        self._buffer.purge(set(tps))
        self._paused -= set(tps)
        self._fresh -= set(tps)

    # ------------------------------------------------------------------ commits

    def _commit(self, *, final: bool = False) -> None:
        """Commit the settled offsets (in a transaction with the dead letters when there is a DLQ topic)."""
        ck = _kafka()
        with self._offsets.lock:
            offsets = self._offsets.to_commit()
            if not offsets and not (self._producer is not None and final):
                return
            tps = [ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            try:
                if self._producer is None:
                    self._consumer.commit(offsets=tps, asynchronous=False)
                else:
                    self._commit_transaction(tps, final=final)
            except ck.KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if err is not None and getattr(err, "fatal", lambda: False)():
                    raise StreamError(f"Kafka commit failed for good: {err}") from exc
                if err is not None and self._producer is not None and err.txn_requires_abort():
                    # The group moved on under the transaction (a rebalance: ILLEGAL_GENERATION, ...): its
                    # offsets and dead letters are void. Abort it and read every partition again from its
                    # committed offset, so that nothing it held is lost (engine ids are idempotent).
                    self._abort_and_rewind(err)
                    if final:
                        raise StreamError(f"the final Kafka commit failed: {err}") from exc
                    return
                if final:
                    raise StreamError(f"the final Kafka commit failed: {err}") from exc
                logger.warning("kafka: commit failed, retried later: %s", err)
                return
            self._offsets.committed(offsets)
            self._committed.update(offsets)
            self._figures["commits"] += 1
            logger.debug("kafka: committed %s", offsets)

    def _abort_and_rewind(self, err: Any) -> None:
        """Abort the current transaction and restart every assigned partition at its committed offset: a
        new epoch, so work of the old one settles nothing and its dead letters are produced again."""
        ck = _kafka()
        logger.warning("kafka: transaction aborted (%s); re-reading from the committed offsets", err)
        self._producer.abort_transaction(30)
        self._producer.begin_transaction()
        self._figures["aborted_transactions"] += 1
        with self._offsets.lock:
            tps = list(self._offsets.partitions())
            self._offsets.revoke(tps)
            self._buffer.purge(set(tps))
            self._offsets.assign(tps)
        if not tps:
            return
        try:
            committed = self._consumer.committed([ck.TopicPartition(t, p) for t, p in tps], timeout=10)
            for tp in committed:
                offset = tp.offset if tp.offset is not None and tp.offset >= 0 else ck.OFFSET_BEGINNING
                self._consumer.seek(ck.TopicPartition(tp.topic, tp.partition, offset))
        except ck.KafkaException as exc:
            # mid-rebalance the partitions may be gone already: their new owner starts from the commit
            logger.warning("kafka: could not rewind %s: %s", tps, exc)

    def _commit_transaction(self, tps: list[Any], *, final: bool) -> None:
        producer = self._producer
        if tps:
            producer.send_offsets_to_transaction(tps, self._consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        if not final:
            producer.begin_transaction()

    def _queue_dead_letter(self, entry: dict[str, Any]) -> None:
        self._pending_dead.append({**entry, "epoch": None, "key": None})

    def _bind_dead_letters(self, records: Sequence[Record]) -> None:
        """Give the dead letters written while settling ``records`` the assignment they were read under."""
        by_position = {
            _where(r.position): r for r in records if isinstance(r, _KafkaRecord) and r.position is not None
        }
        for entry in self._pending_dead:
            record = by_position.get(_where(entry.get("position") or {}))
            if entry["epoch"] is None and record is not None:
                entry["epoch"], entry["key"] = record.epoch, record.key

    def _produce_dead_letters(self) -> None:
        """Produce the dead letters whose messages are settled (their offsets join the next commit)."""
        keep = []
        for entry in self._pending_dead:
            pos = entry.get("position") or {}
            tp = (pos.get("topic"), pos.get("partition"))
            part = self._offsets.partition(tp)  # type: ignore[arg-type]
            if part is None or entry["epoch"] is None or part.epoch != entry["epoch"]:
                continue  # revoked: the new owner dead-letters it again
            if part.done_to is None or pos["offset"] >= part.done_to:
                keep.append(entry)
                continue
            self._produce(entry)
        self._pending_dead = keep

    def _produce(self, entry: dict[str, Any]) -> None:
        pos = entry["position"]
        body = {k: v for k, v in entry.items() if k not in ("epoch", "key")}
        headers = [
            ("colsplade.reason", str(entry.get("reason", ""))[:1000].encode()),
            ("colsplade.topic", str(pos["topic"]).encode()),
            ("colsplade.partition", str(pos["partition"]).encode()),
            ("colsplade.offset", str(pos["offset"]).encode()),
        ]
        try:
            value = dumps(body)
        except (TypeError, ValueError):
            body.pop("document", None)
            value = json.dumps(body, default=str)
        while True:
            try:
                self._producer.produce(self.dlq_topic, value=value, key=entry.get("key"), headers=headers)
                break
            except BufferError:
                self._producer.poll(0.5)
        self._producer.poll(0)
        self._figures["dlq_produced"] += 1

    # ------------------------------------------------------------------ lag

    def _update_lag(self, cached: bool = True) -> None:
        """Messages of the assigned partitions not yet settled: end offset - settled (or read) offset."""
        ck = _kafka()
        lag = 0
        for (t, p), part in self._offsets.partitions().items():
            tp = ck.TopicPartition(t, p)
            _low, high = (
                self._consumer.get_watermark_offsets(tp, cached=True)
                if cached
                else self._consumer.get_watermark_offsets(tp, timeout=5)
            )
            done = part.done_to if part.done_to is not None else part.committed
            if high is not None and high >= 0 and done is not None:
                lag += max(0, high - done)
            elif high is not None and high >= 0 and part.read_to is not None:
                lag += max(0, high - part.read_to)
        self._lag = lag

    def _check_caught_up(self) -> None:
        """Caught up: nothing is left to read. Every partition of the topics is read to its end offset by
        this worker, or committed to it by the group (another worker's). What this worker read then
        drains through the pipeline and is committed when the run closes."""
        self._commit()
        ck = _kafka()
        all_tps = []
        for topic in self.topics:
            meta = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                return
            all_tps.extend(ck.TopicPartition(topic, p) for p in sorted(meta.partitions))
        committed = {(c.topic, c.partition): c.offset for c in self._consumer.committed(all_tps, timeout=10)}
        read = {tp: p.read_to for tp, p in self._offsets.partitions().items() if p.read_to is not None}
        behind = 0
        for tp in all_tps:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            offset = committed.get((tp.topic, tp.partition), -1)
            offset = max(offset if offset >= 0 else low, read.get((tp.topic, tp.partition), -1))
            behind += max(0, high - offset)
        self._group_lag = behind
        if behind == 0:
            logger.info("kafka: the group %s is caught up on %s", self.group, ", ".join(self.topics))
            self._caught_up.set()


def _close_within(consumer: Any, timeout: float, *, committed: bool) -> bool:
    """``consumer.close()``, waited for ``timeout`` seconds at most; False (and a warning) if it hangs.

    The close runs in a daemon thread, so one that never returns (librdkafka leaving the group in the
    middle of a rebalance) cannot keep the process from exiting. An error of a close that did return
    is raised here. ``committed`` says whether the final commit happened, for the warning.
    """
    failure: list[BaseException] = []

    def close() -> None:
        try:
            consumer.close()
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    closer = threading.Thread(target=close, name="colsplade-kafka-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        logger.warning(
            "kafka: the consumer did not close within %g s (leaving the group during a rebalance can hang); "
            "%s; exiting without waiting for it",
            timeout,
            "the offsets of the settled messages were already committed"
            if committed
            else "the final commit failed, so the next owner re-reads from the last committed offsets",
        )
        return False
    if failure:
        raise failure[0]
    return True


def _where(position: Mapping[str, Any]) -> tuple[Any, ...]:
    return (position.get("topic"), position.get("partition"), position.get("offset"), position.get("line"))


class _KafkaDeadLetters(DeadLetterWriter):
    """The run's dead-letter file, and with a DLQ topic the same entries queued for the next transaction."""

    def __init__(self, path: str | os.PathLike[str] | None, source: KafkaSource) -> None:
        super().__init__(path)
        self.source = source

    def write(self, **entry: Any) -> None:  # type: ignore[override]
        super().write(**entry)
        if self.source.dlq_topic is not None:
            self.source._queue_dead_letter(entry)
