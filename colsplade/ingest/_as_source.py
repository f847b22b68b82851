"""The one factory of sources: what a caller hands ``ingest`` -> a :class:`Source`.

It lives apart from the source classes so that ``_sources`` (the base and the file, stream, iterable and
index sources) and ``_kafka`` (the Kafka source, built on that base) import in one direction only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

from colsplade.exceptions import InvalidInputError
from colsplade.ingest._kafka import KafkaSource
from colsplade.ingest._sources import FileSource, IterableSource, Source, StreamSource

__all__ = ["as_source"]


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
