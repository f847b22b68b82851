"""Ingest pipeline: sources -> validate -> chunk -> encode -> bulk write, with checkpoints and dead letters.

Typical use::

    from colsplade.engines import connect_default
    from colsplade.ingest import FieldMapping, ingest

    with connect_default() as client:
        summary = ingest("corpus/*.jsonl", client, "docs", "models/joint",
                         fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
                         checkpoint="docs.checkpoint.json", dead_letter="docs.rejected.jsonl")
    print(summary)  # read, indexed, dead-lettered, retried, docs/s, encode vs write time

Kill it at any point and run it again with the same checkpoint: every document ends up in the index
exactly once (``_id`` s are the source ids or a stable content hash). A :class:`KafkaSource`
(``"kafka://HOST:PORT/TOPIC?group=NAME"``) reads a topic as a consumer group member and commits offsets
only once the engine acknowledged the documents before them. Every source and the factory
:func:`as_source` live in :mod:`colsplade.ingest.sources`. ``reindex`` re-encodes an existing
index into a new versioned index behind an alias, or in place.
"""

from colsplade.engines import RetryPolicy
from colsplade.ingest._checkpoint import Checkpoint, DeadLetterWriter
from colsplade.ingest._documents import FieldMapping, prepare_document, split_passages, stable_id
from colsplade.ingest._encoded import EncodedDocument, ingest_encoded
from colsplade.ingest._pipeline import Batching, CodecOptions, Passages, ingest
from colsplade.ingest._reindex import create_like, reindex
from colsplade.ingest._summary import IngestSummary
from colsplade.ingest._target import Layout, prepare_index, resolve_codec
from colsplade.ingest.sources import (
    FileSource,
    IndexSource,
    IterableSource,
    KafkaSource,
    Record,
    Source,
    StreamSource,
    as_source,
)

__all__ = [
    "Batching",
    "Checkpoint",
    "CodecOptions",
    "DeadLetterWriter",
    "EncodedDocument",
    "FieldMapping",
    "FileSource",
    "IndexSource",
    "IngestSummary",
    "IterableSource",
    "KafkaSource",
    "Layout",
    "Passages",
    "Record",
    "RetryPolicy",
    "Source",
    "StreamSource",
    "as_source",
    "create_like",
    "ingest",
    "ingest_encoded",
    "prepare_document",
    "prepare_index",
    "reindex",
    "resolve_codec",
    "split_passages",
    "stable_id",
]
