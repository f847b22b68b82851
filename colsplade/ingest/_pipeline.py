"""The ingest pipeline: read -> validate -> chunk/truncate -> encode -> bulk write -> acknowledge.

Three stages run at once, linked by bounded queues so memory stays flat on an endless stream:

* the reader thread parses and validates records and groups them into encode batches;
* the encoder thread runs the ONNX encoders (which release the GIL) and serialises the engine documents;
* the calling thread writes bulks, dead-letters rejects, and moves the checkpoint.

Batches reach the writer in source order and each is fully settled (acknowledged by the engine or
dead-lettered) before the checkpoint moves past it: at-least-once from the source, and with idempotent
``_id`` s exactly once in the index.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from colsplade.engines import EngineClient
from colsplade.engines._bulk import BulkAction, RetryPolicy, bulk_write
from colsplade.exceptions import InvalidInputError, ModelVersionMismatchError
from colsplade.ingest._checkpoint import Checkpoint, DeadLetterWriter
from colsplade.ingest._documents import FieldMapping, Prepared, Rejected, prepare_document
from colsplade.ingest._json import dumps
from colsplade.ingest._sources import Record, Source, as_source
from colsplade.mappings import (
    FieldSpec,
    colsplade_properties,
    escape_impacts,
    index_meta,
    pack_token_vectors,
    spec_from_meta,
)

logger = logging.getLogger(__name__)

__all__ = ["IngestSummary", "ingest", "prepare_index"]


@dataclass
class IngestSummary:
    """What a run did. ``exit_code``: 0 when everything read was indexed, 3 when some was dead-lettered."""

    index: str
    read: int = 0
    indexed: int = 0
    passages: int = 0
    dead_lettered: int = 0
    retried: int = 0
    truncated: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0
    resumed_from: dict[str, Any] | None = None
    checkpoint: str | None = None
    dead_letter: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    model: str = ""
    alias: str | None = None
    alias_switched: bool = False

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 3 if self.dead_lettered else 0

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "docs_per_second": round(self.docs_per_second, 2)}

    def __str__(self) -> str:
        text = (
            f"{self.indexed} indexed, {self.dead_lettered} dead-lettered of {self.read} read into "
            f"{self.index} in {self.seconds:.1f} s ({self.docs_per_second:.1f} docs/s; encode "
            f"{self.encode_seconds:.1f} s, write {self.write_seconds:.1f} s; {self.retried} retried)"
        )
        if self.dead_lettered and self.dead_letter:
            text += f"; rejects in {self.dead_letter}"
        return text


# ------------------------------------------------------------------------------------------ the index


def _model_of(encoder: Any) -> tuple[str, str]:
    config = encoder.config
    return str(config.name), str(config.version)


def prepare_index(
    client: EngineClient,
    index: str,
    encoder: Any,
    *,
    reencode: bool = False,
    element_type: str | None = None,
    index_vectors: bool = True,
    chunked: bool = False,
) -> tuple[FieldSpec, bool]:
    """Make ``index`` ready for documents of ``encoder``'s model; returns its spec and whether the index's
    recorded model must be switched to this one once the run is done (re-encode).

    Creates the index when missing; adds colsplade's fields to an index without them; refuses
    (:class:`ModelVersionMismatchError`) an index encoded with another model unless ``reencode``.
    """
    from colsplade.engines import create_index

    name, version = _model_of(encoder)
    colbert = getattr(encoder.config, "colbert", None)
    dim = colbert.dim if colbert is not None else 128
    switch_model = False
    if not client.index_exists(index):
        wanted = FieldSpec(colbert_dim=dim, element_type=element_type or "float", index_vectors=index_vectors)
        spec = create_index(client, index, wanted, model_name=name, model_version=version)["spec"]
    else:
        mapping = client.get_mapping(index)
        spec = spec_from_meta(mapping.get("_meta"))
        block = (mapping.get("_meta") or {}).get("colsplade") or {}
        if spec is None:
            if (
                index_vectors
                and client.engine == "opensearch"
                and client.get_settings(index).get("index.knn") != "true"
            ):
                # OpenSearch cannot switch index.knn on later: the vectors are stored for rerank only.
                logger.warning(
                    "%s was created without index.knn; its token vectors are stored for rerank only "
                    "(reindex into a new index for nested kNN)",
                    index,
                )
                index_vectors = False
            wanted = FieldSpec(
                colbert_dim=dim, element_type=element_type or "float", index_vectors=index_vectors
            )
            spec = create_index(
                client, index, wanted, model_name=name, model_version=version, existing_ok=True
            )["spec"]
        elif block.get("model_name") is None:
            # An index made by `colsplade index create` records no model yet: this run's model becomes it.
            meta = dict(mapping.get("_meta") or {})
            meta.update(index_meta(spec, name, version))
            client.put_mapping(index, {"_meta": meta})
        elif (block.get("model_name"), str(block.get("model_version"))) != (name, version):
            current = f"{block.get('model_name')}@{block.get('model_version')}"
            if not reencode:
                raise ModelVersionMismatchError(index, current, f"{name}@{version}")
            logger.warning(
                "re-encoding %s: its documents were encoded with %s, now %s@%s", index, current, name, version
            )
            switch_model = True
        if element_type is not None and spec.element_type != element_type:
            raise InvalidInputError(
                f"index {index!r} stores {spec.element_type} ColBERT vectors, not {element_type}; "
                "use a new index to change the element type"
            )
    if colbert is not None and spec.colbert_dim != dim:
        raise InvalidInputError(
            f"index {index!r} holds {spec.colbert_dim}-dimensional ColBERT vectors but the model makes {dim}"
        )
    if chunked:
        properties = client.get_mapping(index).get("properties", {})
        extra = {
            k: v
            for k, v in {"parent_id": {"type": "keyword"}, "passage": {"type": "integer"}}.items()
            if k not in properties
        }
        if extra:
            client.put_mapping(index, {"properties": extra})
    return spec, switch_model


def _record_model(client: EngineClient, index: str, spec: FieldSpec, name: str, version: str) -> None:
    meta = dict(client.get_mapping(index).get("_meta") or {})
    meta.update(index_meta(spec, name, version))
    client.put_mapping(index, {"_meta": meta})


# ------------------------------------------------------------------------------------------ encoding


def _vectors(array: np.ndarray, spec: FieldSpec) -> np.ndarray:
    from colsplade.scoring import quantize_bits, quantize_int8

    if spec.element_type == "byte":
        return quantize_int8(array)
    if spec.element_type == "bit":
        # The engines take bit vectors as signed bytes.
        return quantize_bits(array).view(np.int8)
    return np.ascontiguousarray(array, dtype=np.float32)


def _encode(encoder: Any, texts: list[str]) -> tuple[list[dict[str, float] | None], list[np.ndarray | None]]:
    out = encoder.encode_documents(texts)
    kind = encoder.config.kind
    if kind == "joint":
        return list(out.splade), list(out.colbert)
    if kind == "splade":
        return list(out), [None] * len(texts)
    return [None] * len(texts), list(out)


@dataclass
class _Item:
    """One record on its way through the stages."""

    record: Record
    prepared: Prepared | None = None
    rejected: Rejected | None = None
    # filled by the encoder: (unit id, JSON source) per unit, or the reason the encoder failed
    sources: list[tuple[str, str]] = field(default_factory=list)
    encode_error: str | None = None


@dataclass
class _Batch:
    items: list[_Item]
    encode_seconds: float = 0.0


_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put with a bounded wait, giving up when the run is being stopped (so no thread hangs)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


# ------------------------------------------------------------------------------------------ the run


def ingest(
    source: Any,
    client: EngineClient,
    index: str,
    encoder: Any,
    *,
    fields: FieldMapping | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    dead_letter: str | os.PathLike[str] | None = None,
    reencode: bool = False,
    long_docs: Literal["truncate", "chunk"] = "truncate",
    passage_words: int | None = None,
    passage_overlap: int = 20,
    element_type: str | None = None,
    index_vectors: bool = True,
    encode_batch_size: int = 32,
    bulk_docs: int = 200,
    bulk_bytes: int = 16 * 1024 * 1024,
    queue_batches: int = 4,
    retry: RetryPolicy | None = None,
    progress: bool | None = None,
    op: Literal["index", "update"] = "index",
    prepare: bool = True,
    on_batch: Callable[[IngestSummary], None] | None = None,
    refresh: bool = True,
) -> IngestSummary:
    """Ingest ``source`` into ``index`` with ``encoder`` (an encoder or a model directory, int8 variant).

    ``source``: a :class:`~colsplade.ingest.Source`, a path / glob / list of paths (JSONL, JSON), ``"-"``
    for stdin, a binary stream, or an iterable of dicts. ``fields`` says which fields are the id, the text
    and the copied fields. ``checkpoint``: file recording the acknowledged source position; a rerun with the
    same file resumes after it. ``dead_letter``: JSONL file receiving every rejected document with its
    reason (without one, rejects are only logged and counted). ``reencode``: allow an index encoded with
    another model version. ``long_docs``: ``truncate`` (the model's maximum length) or ``chunk`` (passages
    with a parent id). ``op="update"`` writes only colsplade's fields into existing documents.
    ``bulk_docs`` / ``bulk_bytes`` cut bulk requests by count and by size. ``progress``: a tqdm bar on
    stderr (None: only when stderr is a terminal); without it, progress is logged every 30 s.
    ``refresh``: refresh the index once at the end, so a search right after the run sees every document.

    Raises:
        ModelVersionMismatchError: the index holds another model's encodings and ``reencode`` is False.
        EngineUnreachableError: the engine stayed away longer than ``retry`` allows; the checkpoint holds
            the last acknowledged position, so rerunning resumes there.
    """
    started = time.monotonic()
    fields = fields or FieldMapping()
    retry = retry or RetryPolicy()
    src: Source = as_source(source)
    if isinstance(encoder, str | os.PathLike):
        from colsplade.encoders import load_encoder

        encoder = load_encoder(encoder, variant="int8")
    name, version = _model_of(encoder)
    if prepare:
        spec, switch_model = prepare_index(
            client,
            index,
            encoder,
            reencode=reencode,
            element_type=element_type,
            index_vectors=index_vectors,
            chunked=long_docs == "chunk",
        )
    else:
        spec = spec_from_meta(client.get_mapping(index).get("_meta")) or FieldSpec()
        switch_model = False
    max_doc_length = int(getattr(encoder.config, "max_doc_length", 256))
    words = passage_words or max(8, int(max_doc_length * 0.6))
    overlap = min(passage_overlap, words // 2)
    max_chars = max_doc_length * 16

    ckpt = Checkpoint(checkpoint, src.signature(), index) if checkpoint is not None else None
    resume = ckpt.position if ckpt is not None else None
    summary = IngestSummary(
        index=index,
        resumed_from=resume,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        dead_letter=str(dead_letter) if dead_letter is not None else None,
        model=f"{name}@{version}",
    )
    if ckpt is not None and ckpt.state.get("counts"):
        logger.info("previous runs of this checkpoint: %s", ckpt.state["counts"])
    dead = DeadLetterWriter(dead_letter)
    reserved = tuple(colsplade_properties(client.engine, spec))
    truncated_before = getattr(encoder, "truncated_count", 0)

    stop = threading.Event()
    to_encode: queue.Queue = queue.Queue(maxsize=queue_batches)
    to_write: queue.Queue = queue.Queue(maxsize=queue_batches)

    def read() -> None:
        try:
            batch: list[_Item] = []
            units = 0
            for record in src.records(resume):
                if stop.is_set():
                    return
                item = _Item(record)
                if record.doc is not None:
                    result = prepare_document(
                        record.doc,
                        fields,
                        source_id=record.doc_id,
                        reserved=reserved,
                        long_docs=long_docs,
                        max_chars=max_chars,
                        passage_words=words,
                        passage_overlap=overlap,
                    )
                    if isinstance(result, Rejected):
                        item.rejected = result
                    else:
                        item.prepared = result
                        units += len(result.units)
                batch.append(item)
                # A record's passages stay in one batch, so a batch settles whole records.
                if units >= encode_batch_size or len(batch) >= encode_batch_size * 4:
                    if not _put(to_encode, _Batch(batch), stop):
                        return
                    batch, units = [], 0
            if batch and not _put(to_encode, _Batch(batch), stop):
                return
            _put(to_encode, _DONE, stop)
        except BaseException as exc:  # handed to the writer, which raises it in the caller's thread
            _put(to_encode, _Failure(exc), stop)

    def encode_batch(batch: _Batch) -> None:
        units = [(item, unit) for item in batch.items if item.prepared for unit in item.prepared.units]
        if not units:
            return
        t0 = time.monotonic()
        texts = [unit.text for _, unit in units]
        try:
            splade, colbert = _encode(encoder, texts)
            failed: dict[int, str] = {}
        except (InvalidInputError, ValueError, RuntimeError) as exc:
            # One bad text must not sink its batch: encode one by one to find it.
            logger.warning("encoding a batch failed (%s); retrying its texts one by one", exc)
            splade, colbert, failed = [], [], {}
            for i, text in enumerate(texts):
                try:
                    s, c = _encode(encoder, [text])
                    splade.append(s[0])
                    colbert.append(c[0])
                except (InvalidInputError, ValueError, RuntimeError) as one:
                    splade.append(None)
                    colbert.append(None)
                    failed[i] = f"encoder failed: {one}"
        encoded_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        meta = {"model_name": name, "model_version": version, "encoded_at": encoded_at}
        for i, (item, unit) in enumerate(units):
            if i in failed:
                item.encode_error = failed[i]
                continue
            body: dict[str, Any] = {} if op == "update" else dict(unit.body)
            if splade[i] is not None:
                body[spec.splade_field] = escape_impacts(splade[i])
            if colbert[i] is not None:
                vectors = _vectors(colbert[i], spec)
                body[spec.colbert_field] = [{spec.vector_field: row} for row in vectors]
                packed_field = getattr(spec, "packed_field", None)
                if packed_field:
                    # The exact matrix in one binary field: what the client-side rerank reads back.
                    body[packed_field] = pack_token_vectors(vectors, spec.element_type)
            body[spec.meta_field] = meta
            try:
                item.sources.append((unit.doc_id, dumps(body)))
            except (TypeError, ValueError) as exc:
                item.encode_error = f"document cannot be serialised to JSON: {exc}"
        batch.encode_seconds = time.monotonic() - t0

    def encode() -> None:
        try:
            while not stop.is_set():
                try:
                    batch = to_encode.get(timeout=0.2)
                except queue.Empty:
                    continue
                if batch is _DONE or isinstance(batch, _Failure):
                    _put(to_write, batch, stop)
                    return
                encode_batch(batch)
                if not _put(to_write, batch, stop):
                    return
        except BaseException as exc:
            _put(to_write, _Failure(exc), stop)

    bar = _progress_bar(src, progress)
    reader = threading.Thread(target=read, name="colsplade-ingest-read", daemon=True)
    worker = threading.Thread(target=encode, name="colsplade-ingest-encode", daemon=True)
    reader.start()
    worker.start()

    def on_retry(n: int, delay: float, reason: str) -> None:
        summary.retried += n

    finished = False
    last_log = time.monotonic()
    held: Any = None  # an end marker met while merging, handled on the next turn
    try:
        while True:
            first, held = (held, None) if held is not None else (to_write.get(), None)
            if isinstance(first, _Failure):
                raise first.exc
            if first is _DONE:
                finished = True
                break
            # Merge what is already encoded into one bulk pass (fewer, fuller requests); stop at the
            # end marker, which is handled on the next turn.
            batches = [first]
            n_docs = sum(len(i.sources) for i in first.items)
            while n_docs < bulk_docs:
                try:
                    more = to_write.get_nowait()
                except queue.Empty:
                    break
                if more is _DONE or isinstance(more, _Failure):
                    held = more
                    break
                batches.append(more)
                n_docs += sum(len(i.sources) for i in more.items)
            _settle(
                batches,
                client=client,
                index=index,
                op=op,
                bulk_docs=bulk_docs,
                bulk_bytes=bulk_bytes,
                retry=retry,
                on_retry=on_retry,
                dead=dead,
                summary=summary,
            )
            if ckpt is not None:
                ckpt.save(
                    batches[-1].items[-1].record.position,
                    counts={"indexed": summary.indexed, "dead_lettered": summary.dead_lettered},
                )
            if bar is not None:
                bar.update(sum(len(b.items) for b in batches))
                bar.set_postfix(dead=summary.dead_lettered, retried=summary.retried, refresh=False)
            elif time.monotonic() - last_log >= 30:
                last_log = time.monotonic()
                logger.info(
                    "ingest: %d read, %d indexed, %d dead-lettered, %.1f docs/s",
                    summary.read,
                    summary.indexed,
                    summary.dead_lettered,
                    summary.indexed / max(1e-9, last_log - started),
                )
            if on_batch is not None:
                on_batch(summary)
    finally:
        stop.set()
        dead.close()
        if bar is not None:
            bar.close()
        reader.join(timeout=5)
        worker.join(timeout=30)
    if finished and ckpt is not None:
        ckpt.save(ckpt.position, complete=True)
    if switch_model and summary.dead_lettered == 0:
        _record_model(client, index, spec, name, version)
    if refresh and finished:
        client.refresh(index)
    summary.truncated = getattr(encoder, "truncated_count", 0) - truncated_before
    summary.reasons = dict(dead.reasons)
    summary.seconds = time.monotonic() - started
    logger.info("ingest: %s", summary)
    return summary


def _settle(
    batches: list[_Batch],
    *,
    client: EngineClient,
    index: str,
    op: str,
    bulk_docs: int,
    bulk_bytes: int,
    retry: RetryPolicy,
    on_retry: Callable[[int, float, str], None],
    dead: DeadLetterWriter,
    summary: IngestSummary,
) -> None:
    """Write the batches' documents, dead-letter what was refused, count; returns when all is settled."""
    actions: list[BulkAction] = []
    owners: list[_Item] = []
    for batch in batches:
        summary.encode_seconds += batch.encode_seconds
        for item in batch.items:
            for doc_id, source in item.sources:
                actions.append(BulkAction(index=index, doc_id=doc_id, source=source, op=op))
                owners.append(item)
    t0 = time.monotonic()
    results = bulk_write(
        client, actions, chunk_size=bulk_docs, max_chunk_bytes=bulk_bytes, retry=retry, on_retry=on_retry
    )
    summary.write_seconds += time.monotonic() - t0
    refused: dict[int, list[tuple[str, Any]]] = {}
    for action, owner, result in zip(actions, owners, results, strict=True):
        if result.ok:
            summary.passages += 1
        else:
            refused.setdefault(id(owner), []).append((action.doc_id, result))
    for batch in batches:
        for item in batch.items:
            record = item.record
            summary.read += 1
            if record.error is not None:
                dead.write(reason=record.error, stage="read", position=record.position, raw=record.raw)
            elif item.rejected is not None:
                dead.write(
                    reason=item.rejected.reason,
                    stage="validate",
                    position=record.position,
                    doc_id=item.rejected.doc_id,
                    document=record.doc,
                )
            elif item.encode_error is not None:
                dead.write(
                    reason=item.encode_error,
                    stage="encode",
                    position=record.position,
                    doc_id=item.prepared.doc_id if item.prepared else None,
                    document=record.doc,
                )
            elif id(item) in refused:
                for doc_id, result in refused[id(item)]:
                    dead.write(
                        reason=result.error or f"HTTP {result.status}",
                        stage="engine",
                        position=record.position,
                        doc_id=doc_id,
                        status=result.status,
                        document=record.doc,
                    )
            else:
                summary.indexed += 1
                continue
            summary.dead_lettered += 1
    # Durable before the checkpoint moves past these records.
    dead.sync()


def _progress_bar(src: Source, enabled: bool | None) -> Any:
    if enabled is None:
        import sys

        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    total = None
    try:
        total = src.total()
    except Exception:
        logger.debug("no total for the progress bar", exc_info=True)
    return tqdm(total=total, unit="doc", desc="ingest", dynamic_ncols=True, mininterval=0.5, leave=True)
