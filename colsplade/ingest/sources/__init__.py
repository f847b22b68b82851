"""Where ingested documents come from: files, a byte stream, Python iterables, an index, Kafka topics.

Every source is a :class:`Source`: a named, ordered, resumable stream of :class:`Record` objects, each
with the position right after it (what a checkpoint stores). :func:`as_source` turns what a caller has
into one::

    as_source("corpus/*.jsonl")                          # FileSource: JSONL / JSON files, globs
    as_source("-")                                       # StreamSource: JSONL on stdin
    as_source([{"_id": "1", "text": "..."}])             # IterableSource
    as_source("kafka://broker:9092/docs?group=indexers")  # KafkaSource: a consumer group member

:func:`parse_json_line` is the one JSON-line parser of the file, stream and Kafka sources: a bad line
becomes a record with ``error`` set (a dead letter at its position), never an exception.
:class:`OffsetTracker` and :class:`ReadAheadBuffer` are the pure bookkeeping of the Kafka source: the
committable offset of each partition (the end of its settled prefix) and the bounded read-ahead.

Modules, imported in one direction: ``_base`` (the contract and the parser) <- ``_files``, ``_objects``,
``_offsets`` <- ``_kafka`` <- this package's :func:`as_source`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

from colsplade.exceptions import InvalidInputError
from colsplade.ingest.sources._base import DEFAULT_MAX_RECORD_BYTES, Record, Source, parse_json_line
from colsplade.ingest.sources._files import FileSource, StreamSource
from colsplade.ingest.sources._kafka import DEFAULT_CLOSE_TIMEOUT, KafkaSource
from colsplade.ingest.sources._objects import IndexSource, IterableSource
from colsplade.ingest.sources._offsets import OffsetTracker, PartitionOffsets, ReadAheadBuffer, TopicPartition

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_RECORD_BYTES",
    "FileSource",
    "IndexSource",
    "IterableSource",
    "KafkaSource",
    "OffsetTracker",
    "PartitionOffsets",
    "ReadAheadBuffer",
    "Record",
    "Source",
    "StreamSource",
    "TopicPartition",
    "as_source",
    "parse_json_line",
]


def as_source(value: Any) -> Source:
    """A :class:`Source` from what the caller has: a Source, ``"-"`` (stdin), a path / glob / list of
    paths, a binary stream, an iterable of dicts, or ``kafka://HOST:PORT/TOPIC?group=NAME``."""
    if isinstance(value, Source):
        return value
    if isinstance(value, str) and value.startswith("kafka://"):
        return KafkaSource.from_url(value)
    if isinstance(value, str) and value == "-":
        return StreamSource()
    if isinstance(value, str | os.PathLike):
        return FileSource(value)
    if isinstance(value, io.IOBase) or hasattr(value, "readline"):
        return StreamSource(value, name=getattr(value, "name", "stream"))
    if isinstance(value, list | tuple) and value and all(isinstance(v, str | os.PathLike) for v in value):
        return FileSource(value)
    if isinstance(value, Iterable):
        return IterableSource(value)
    raise InvalidInputError(f"cannot read documents from a {type(value).__name__}")
