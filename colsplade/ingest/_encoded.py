"""Bulk writes of documents encoded elsewhere: SPLADE impacts and ColBERT token codes, no model pass.

Teams moving from another store already hold each document's SPLADE impacts and ColBERT token vectors
(or codes of this model's codec); benchmarks grow corpora from encoded copies. :func:`ingest_encoded`
writes them through the same index preparation, document layout, bulk retries and dead-letter file as
:func:`~colsplade.ingest.ingest`, without running the encoder: the model directory only names the model
the index records and supplies the token codec.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from colsplade.engines import BulkAction, EngineClient, RetryPolicy
from colsplade.exceptions import InvalidInputError
from colsplade.ingest._checkpoint import DeadLetterWriter
from colsplade.ingest._json import dumps
from colsplade.ingest._pipeline import Batching
from colsplade.ingest._summary import BulkSink, IngestSummary
from colsplade.ingest._target import Layout, Target, open_encoder
from colsplade.mappings import TokenWriter, colsplade_properties, escape_impacts

if TYPE_CHECKING:
    from colsplade.encoders import EncoderSource, TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["EncodedDocument", "ingest_encoded"]


@dataclass(frozen=True)
class EncodedDocument:
    """One document encoded elsewhere.

    ``impacts``: SPLADE ``{token: weight}`` as the model gives them (unescaped; weights <= 0 are dropped).
    ``codes``: the ColBERT token blob of the model's codec (bytes, or its base64 text, as read back from
    a colsplade index); or ``vectors``: the (n, dim) float token vectors, compressed here with the codec.
    ``fields``: the fields stored beside colsplade's (title, text, ...).
    """

    doc_id: str
    impacts: Mapping[str, float] | None = None
    codes: bytes | str | None = None
    vectors: Any = None
    fields: Mapping[str, Any] = field(default_factory=dict)


def _as_document(doc: EncodedDocument | Mapping[str, Any]) -> EncodedDocument:
    if isinstance(doc, EncodedDocument):
        return doc
    if isinstance(doc, Mapping):
        values = dict(doc)
        if "doc_id" not in values:
            values["doc_id"] = values.pop("_id", None) or values.pop("id", None)
        unknown = set(values) - {"doc_id", "impacts", "codes", "vectors", "fields"}
        if unknown or values["doc_id"] is None:
            raise InvalidInputError(
                "an encoded document has doc_id (or _id), impacts, codes or vectors, and fields; "
                f"got keys {sorted(doc)}"
            )
        return EncodedDocument(**values)
    raise InvalidInputError(
        f"an encoded document is an EncodedDocument or a mapping, got {type(doc).__name__}"
    )


@dataclass
class _Serialiser:
    """Turns encoded documents into engine sources, or a reason to refuse them."""

    tokens: TokenWriter
    reserved: frozenset[str]
    needs_tokens: bool

    def source(self, doc: EncodedDocument, meta: Mapping[str, str]) -> str:
        """The document's JSON source; raises InvalidInputError with the reason it is refused."""
        spec, codec = self.tokens.spec, self.tokens.codec
        taken = self.reserved & set(doc.fields)
        if taken:
            raise InvalidInputError(f"fields {sorted(taken)} are colsplade's own; rename them")
        body: dict[str, Any] = dict(doc.fields)
        if doc.impacts is not None:
            try:
                bad = [t for t, w in doc.impacts.items() if not math.isfinite(float(w))]
            except (TypeError, ValueError):
                raise InvalidInputError("SPLADE impacts must map tokens to numbers") from None
            if bad:
                raise InvalidInputError(f"SPLADE impacts that are not finite numbers: {bad[:5]}")
            body[spec.splade_field] = escape_impacts(doc.impacts)
        if doc.codes is not None:
            if codec is None or spec.codes_field is None:
                raise InvalidInputError("the index has no compact token store for codes; give vectors")
            blob = doc.codes
            if isinstance(blob, str):
                try:
                    blob = base64.b64decode(blob, validate=True)
                except binascii.Error as exc:
                    raise InvalidInputError(f"codes are not valid base64: {exc}") from None
            codec.split(blob)  # header, length, checksum and centroid ids (CorruptBlobError)
            body.update(self.tokens.blob_fields(bytes(blob)))
        elif doc.vectors is not None:
            vectors = np.asarray(doc.vectors, dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) == 0:
                raise InvalidInputError(
                    f"token vectors must be a non-empty (n, dim) array, got {vectors.shape}"
                )
            body.update(self.tokens.fields(vectors))
        elif self.needs_tokens:
            raise InvalidInputError("no ColBERT token codes or vectors (nothing to rerank with)")
        body[spec.meta_field] = dict(meta)
        try:
            return dumps(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"document cannot be serialised to JSON: {exc}") from None


def ingest_encoded(
    documents: Iterable[EncodedDocument | Mapping[str, Any]],
    client: EngineClient,
    index: str,
    encoder: TextEncoder | EncoderSource,
    *,
    layout: Layout | None = None,
    batching: Batching | None = None,
    retry: RetryPolicy | None = None,
    dead_letter: str | os.PathLike[str] | None = None,
    on_batch: Callable[[IngestSummary], None] | None = None,
    refresh: bool = True,
) -> IngestSummary:
    """Write pre-encoded ``documents`` into ``index``: no model pass, the same index layout as ``ingest``.

    ``encoder``: the model (directory or loaded encoder) the impacts and codes come from: the index records
    its name and version, and its codec (``colbert_codec.npz``) checks the codes and compresses ``vectors``.
    The model must have a codec when the index keeps the compact token store (fit one with
    :func:`colsplade.scoring.fit_codec` and :func:`colsplade.encoders.save_model_codec`, or run one
    :func:`~colsplade.ingest.ingest` first). ``layout``, ``batching`` (``bulk_docs`` / ``bulk_bytes``),
    ``retry``, ``dead_letter`` and ``refresh`` mean what they mean for ``ingest``; a document refused here
    (a corrupt blob, a colsplade field name among its fields) or by the engine is dead-lettered with the
    reason. ``_id`` s are the documents' ids, so a rerun writes each document once. While one bulk request
    is in flight, the next one is prepared.

    Raises:
        InvalidInputError: the model has no codec for an index with a compact token store.
        ModelVersionMismatchError / CodecMismatchError: the index holds another model's encodings.
        EngineUnreachableError: the engine stayed away longer than ``retry`` allows (rerun to finish).
    """
    started = time.monotonic()
    batching = batching or Batching()
    target = Target.open(
        client, index, open_encoder(encoder), reencode=False, layout=layout, chunked=False, prepare=True
    )
    if target.needs_codec and target.codec is None:
        raise InvalidInputError(
            f"the model {target.name}@{target.version} has no token codec, so pre-encoded codes cannot be "
            "checked nor vectors compressed; fit one (colsplade.scoring.fit_codec + "
            "colsplade.encoders.save_model_codec) or run one ingest with the model first"
        )
    serialiser = _Serialiser(
        TokenWriter(target.spec, target.codec),
        frozenset(colsplade_properties(client.engine, target.spec)),
        target.needs_codec,
    )
    summary = IngestSummary(
        index=index,
        dead_letter=str(dead_letter) if dead_letter is not None else None,
        model=f"{target.name}@{target.version}",
        codec=target.codec.hash if target.codec else None,
    )
    dead = DeadLetterWriter(dead_letter)
    sink = BulkSink(client, summary, dead, retry or RetryPolicy(), batching.bulk_docs, batching.bulk_bytes)
    try:
        _write_all(
            documents,
            serialiser,
            sink,
            index,
            {"model_name": target.name, "model_version": target.version},
            on_batch,
        )
    finally:
        dead.close()
        summary.reasons = dict(dead.reasons)
    target.close(summary, refresh=refresh)
    summary.seconds = time.monotonic() - started
    logger.info("ingest_encoded: %s", summary)
    return summary


def _write_all(
    documents: Iterable[EncodedDocument | Mapping[str, Any]],
    serialiser: _Serialiser,
    sink: BulkSink,
    index: str,
    meta: Mapping[str, str],
    on_batch: Callable[[IngestSummary], None] | None,
) -> None:
    """Serialise and write every document; while one bulk request is in flight, the next is prepared."""
    summary = sink.summary

    def settle(actions: list[BulkAction], pending: Future) -> None:
        results = pending.result()
        refused = sink.settle(actions, results)
        for _, action, result in refused:
            sink.dead_letter(action, result)
        summary.dead_lettered += len(refused)
        summary.indexed += len(actions) - len(refused)
        sink.dead.sync()
        if on_batch is not None:
            on_batch(summary)

    encoded_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    doc_meta = {**meta, "encoded_at": encoded_at}
    in_flight: tuple[list[BulkAction], Future] | None = None
    actions: list[BulkAction] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="colsplade-bulk") as pool:
        for raw in documents:
            summary.read += 1
            try:
                doc = _as_document(raw)
                source = serialiser.source(doc, doc_meta)
            except InvalidInputError as exc:
                summary.dead_lettered += 1
                doc_id = raw.doc_id if isinstance(raw, EncodedDocument) else None
                sink.dead.write(reason=str(exc), stage="validate", doc_id=doc_id)
                continue
            actions.append(BulkAction(index=index, doc_id=str(doc.doc_id), source=source))
            if len(actions) >= sink.bulk_docs:
                if in_flight is not None:
                    settle(*in_flight)
                in_flight = (actions, pool.submit(sink.send, actions))
                actions = []
        if in_flight is not None:
            settle(*in_flight)
        if actions:
            settle(actions, pool.submit(sink.send, actions))
