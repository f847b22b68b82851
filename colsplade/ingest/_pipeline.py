"""The ingest pipeline: read -> validate -> chunk/truncate -> encode -> compress -> bulk write -> acknowledge.

Three stages run at once, linked by bounded queues so memory stays flat on an endless stream:

* the reader thread parses and validates records and groups them into encode batches;
* the encoder thread runs the ONNX encoders (which release the GIL), compresses the ColBERT vectors
  into token blobs and serialises the engine documents (fitting the codec on the first documents
  when the model has none: those batches wait until it is fitted);
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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from colsplade.engines import BulkAction, BulkItemResult, EngineClient, RetryPolicy
from colsplade.exceptions import InvalidInputError
from colsplade.ingest._checkpoint import Checkpoint
from colsplade.ingest._documents import FieldMapping, Prepared, Rejected, prepare_document
from colsplade.ingest._json import dumps
from colsplade.ingest._summary import BulkSink, IngestSummary, Progress
from colsplade.ingest._target import Layout, Target, open_encoder
from colsplade.ingest.sources import Record, Source, as_source
from colsplade.mappings import TokenWriter, colsplade_properties, escape_impacts
from colsplade.scoring import ResidualCodec

if TYPE_CHECKING:
    from colsplade.encoders import EncoderSource, TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["Batching", "CodecOptions", "Passages", "ingest"]


# ------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class CodecOptions:
    """How a codec is fitted when the model directory has none: on the first ``sample_tokens`` token
    vectors of the run; each document's tokens pooled by ``pool_factor`` (3: a third as many vectors),
    ``nbits`` residual bits per dimension, ``n_centroids`` (default: ColBERTv2's 16 * sqrt(vectors)
    rule). The defaults store 11.4 bytes per document token at dim 128 (2 + 32 bytes per pooled vector)
    and on SciFact reranked within 0.004 nDCG@10 of the float vectors (mean of 5 codec fits; pooling by
    2: +0.008 at 17 bytes); ``pool_factor=1, nbits=1`` is ColBERTv2's 1-bit codec (18 bytes a token),
    which measured 0.039 below float there (the README's table)."""

    sample_tokens: int = 1 << 16
    nbits: int = 2
    pool_factor: int = 3
    n_centroids: int | None = None
    iterations: int = 8


@dataclass(frozen=True)
class Passages:
    """Long documents: ``truncate`` at the model's maximum length, or ``chunk`` into passages of
    ``words`` words (default 0.6 x the maximum length in tokens) overlapping by ``overlap`` words."""

    long_docs: Literal["truncate", "chunk"] = "truncate"
    words: int | None = None
    overlap: int = 20


@dataclass(frozen=True)
class Batching:
    """Sizes: ``encode_batch_size`` passages per encode batch (the encoder further bounds each ONNX run
    by tokens), ``bulk_docs`` / ``bulk_bytes`` per bulk request, ``queue_batches`` in flight per stage."""

    encode_batch_size: int = 32
    bulk_docs: int = 200
    bulk_bytes: int = 16 * 1024 * 1024
    queue_batches: int = 4


# ------------------------------------------------------------------------------------------ encoding


def _encode(
    encoder: TextEncoder, texts: list[str]
) -> tuple[list[dict[str, float] | None], list[np.ndarray | None]]:
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
    tokens: int = 0
    # (item, unit, SPLADE impacts, ColBERT vectors) per encoded unit, until serialised
    encoded: list[tuple[_Item, Any, dict[str, float] | None, np.ndarray | None]] = field(default_factory=list)


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


def _encode_units(encoder: TextEncoder, batch: _Batch) -> None:
    """Run the encoder over the batch's units; a text the encoder refuses is dead-lettered alone."""
    units = [(item, unit) for item in batch.items if item.prepared for unit in item.prepared.units]
    if not units:
        return
    t0 = time.monotonic()
    texts = [unit.text for _, unit in units]
    failed: dict[int, str] = {}
    try:
        splade, colbert = _encode(encoder, texts)
    except (InvalidInputError, ValueError, RuntimeError) as exc:
        # One bad text must not sink its batch: encode one by one to find it.
        logger.warning("encoding a batch failed (%s); retrying its texts one by one", exc)
        splade, colbert = [], []
        for i, text in enumerate(texts):
            try:
                s, c = _encode(encoder, [text])
            except (InvalidInputError, ValueError, RuntimeError) as one:
                s, c = [None], [None]
                failed[i] = f"encoder failed: {one}"
            splade.append(s[0])
            colbert.append(c[0])
    for i, (item, unit) in enumerate(units):
        if i in failed:
            item.encode_error = failed[i]
        elif colbert[i] is not None and len(colbert[i]) == 0:
            item.encode_error = "the text has no ColBERT tokens after cleaning (nothing to store or rerank)"
        else:
            batch.encoded.append((item, unit, splade[i], colbert[i]))
    batch.encode_seconds += time.monotonic() - t0


@dataclass
class _Writer:
    """Turns encoded units into engine documents: impacts, the token fields (:class:`TokenWriter`), meta."""

    tokens: TokenWriter
    meta: dict[str, str]
    op: str

    def serialise(self, batch: _Batch) -> None:
        """Fill each item's ``sources`` and count the batch's ColBERT tokens."""
        tokens = 0
        encoded_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        meta = {**self.meta, "encoded_at": encoded_at}
        spec = self.tokens.spec
        for item, unit, impacts, vectors in batch.encoded:
            if item.encode_error is not None:
                continue  # another passage of the same record failed: the record is dead-lettered whole
            body: dict[str, Any] = {} if self.op == "update" else dict(unit.body)
            if impacts is not None:
                body[spec.splade_field] = escape_impacts(impacts)
            if vectors is not None:
                try:
                    body.update(self.tokens.fields(vectors))
                except InvalidInputError as exc:
                    item.encode_error = f"token vectors cannot be stored: {exc}"
                    continue
                tokens += len(vectors)
            body[spec.meta_field] = meta
            try:
                item.sources.append((unit.doc_id, dumps(body)))
            except (TypeError, ValueError) as exc:
                item.encode_error = f"document cannot be serialised to JSON: {exc}"
        batch.encoded = []
        batch.tokens += tokens


@dataclass
class _CodecFit:
    """Holds the first batches back until enough token vectors are seen to fit the codec."""

    options: CodecOptions
    held: list[_Batch] = field(default_factory=list)
    tokens: int = 0

    def hold(self, batch: _Batch) -> bool:
        """Keep ``batch``; True once the sample is large enough to fit."""
        if not self.held:
            logger.info(
                "the model has no token codec yet: the first %d token vectors are held back to fit one",
                self.options.sample_tokens,
            )
        self.held.append(batch)
        self.tokens += sum(len(v) for *_, v in batch.encoded if v is not None)
        return self.tokens >= self.options.sample_tokens

    def fit(self) -> ResidualCodec | None:
        from colsplade.scoring import fit_codec

        sample = [v for b in self.held for *_, v in b.encoded if v is not None and len(v)]
        if not sample:
            return None
        t0 = time.monotonic()
        codec = fit_codec(
            sample,
            n_centroids=self.options.n_centroids,
            nbits=self.options.nbits,
            pool_factor=self.options.pool_factor,
            iterations=self.options.iterations,
        )
        logger.info(
            "fitted the token codec %s on the %d token vectors of %d documents: %d centroids, %d-bit "
            "residuals, tokens pooled by %d (%.1f s)",
            codec.hash,
            sum(len(v) for v in sample),
            len(sample),
            codec.n_centroids,
            codec.nbits,
            codec.pool_factor,
            time.monotonic() - t0,
        )
        return codec


# ------------------------------------------------------------------------------------------ the stages


@dataclass
class _Run:
    """What the three stages share."""

    src: Source
    resume: Any
    encoder: TextEncoder
    client: EngineClient
    index: str
    fields: FieldMapping
    passages: Passages
    batching: Batching
    writer: _Writer
    codec_fit: _CodecFit | None
    reserved: tuple[str, ...]
    on_codec: Callable[[ResidualCodec], None]
    truncated_before: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    to_encode: queue.Queue = field(init=False)
    to_write: queue.Queue = field(init=False)

    def __post_init__(self) -> None:
        self.to_encode = queue.Queue(maxsize=self.batching.queue_batches)
        self.to_write = queue.Queue(maxsize=self.batching.queue_batches)
        max_doc_length = int(getattr(self.encoder.config, "max_doc_length", 256))
        self.words = self.passages.words or max(8, int(max_doc_length * 0.6))
        self.overlap = min(self.passages.overlap, self.words // 2)
        self.max_chars = max_doc_length * 16


def _read_stage(run: _Run) -> None:
    """Reader thread: parse, validate and group records into encode batches."""
    size = run.batching.encode_batch_size
    try:
        batch: list[_Item] = []
        units = 0
        for record in run.src.records(run.resume):
            if run.stop.is_set():
                return
            if record is None:  # the source is idle for now: pass on what is batched
                if batch and not _put(run.to_encode, _Batch(batch), run.stop):
                    return
                batch, units = [], 0
                continue
            item = _Item(record)
            if record.doc is not None:
                result = prepare_document(
                    record.doc,
                    run.fields,
                    source_id=record.doc_id,
                    reserved=run.reserved,
                    long_docs=run.passages.long_docs,
                    max_chars=run.max_chars,
                    passage_words=run.words,
                    passage_overlap=run.overlap,
                )
                if isinstance(result, Rejected):
                    item.rejected = result
                else:
                    item.prepared = result
                    units += len(result.units)
            batch.append(item)
            # A record's passages stay in one batch, so a batch settles whole records.
            if units >= size or len(batch) >= size * 4:
                if not _put(run.to_encode, _Batch(batch), run.stop):
                    return
                batch, units = [], 0
        if batch and not _put(run.to_encode, _Batch(batch), run.stop):
            return
        _put(run.to_encode, _DONE, run.stop)
    except BaseException as exc:  # handed to the writer, which raises it in the caller's thread
        _put(run.to_encode, _Failure(exc), run.stop)


def _release_held(run: _Run) -> bool:
    """Fit the codec on the held batches and pass them on, in order."""
    fit = run.codec_fit
    assert fit is not None
    codec = fit.fit()
    if codec is not None:
        run.on_codec(codec)
        run.writer.tokens.codec = codec
    run.codec_fit = None
    for held in fit.held:
        run.writer.serialise(held)
        if not _put(run.to_write, held, run.stop):
            return False
    return True


def _encode_stage(run: _Run) -> None:
    """Encoder thread: encode, compress and serialise each batch, in source order."""
    try:
        while not run.stop.is_set():
            try:
                batch = run.to_encode.get(timeout=0.2)
            except queue.Empty:
                continue
            if batch is _DONE or isinstance(batch, _Failure):
                if run.codec_fit is not None and not isinstance(batch, _Failure) and not _release_held(run):
                    return
                _put(run.to_write, batch, run.stop)
                return
            _drop_unwanted(run, batch)
            _encode_units(run.encoder, batch)
            if run.codec_fit is not None:
                if run.codec_fit.hold(batch) and not _release_held(run):
                    return
                continue
            run.writer.serialise(batch)
            if not _put(run.to_write, batch, run.stop):
                return
    except BaseException as exc:
        _put(run.to_write, _Failure(exc), run.stop)


def _drop_unwanted(run: _Run, batch: _Batch) -> None:
    """Drop the records the source no longer wants (a revoked partition's, which its new owner redoes)."""
    if run.src.self_committing:
        batch.items = [item for item in batch.items if run.src.accepts(item.record)]


def _next_batches(run: _Run, held: Any) -> tuple[list[_Batch] | None, Any, bool]:
    """The next bulk pass: what is already encoded, merged up to ``bulk_docs``; returns (batches, the end
    marker met while merging, finished)."""
    first = held if held is not None else run.to_write.get()
    if isinstance(first, _Failure):
        raise first.exc
    if first is _DONE:
        return None, None, True
    batches = [first]
    n_docs = sum(len(i.sources) for i in first.items)
    while n_docs < run.batching.bulk_docs:
        try:
            more = run.to_write.get_nowait()
        except queue.Empty:
            break
        if more is _DONE or isinstance(more, _Failure):
            return batches, more, False
        batches.append(more)
        n_docs += sum(len(i.sources) for i in more.items)
    return batches, None, False


def _write_stage(
    run: _Run,
    *,
    op: str,
    sink: BulkSink,
    ckpt: Checkpoint | None,
    progress: Progress,
    on_batch: Callable[[IngestSummary], None] | None,
) -> bool:
    """Calling thread: bulk-write, dead-letter, move the checkpoint; True when the source was exhausted."""
    summary = sink.summary
    held: Any = None
    while True:
        batches, held, finished = _next_batches(run, held)
        if finished:
            return True
        assert batches is not None
        for batch in batches:
            _drop_unwanted(run, batch)
        batches = [batch for batch in batches if batch.items]
        if not batches:
            continue
        _settle(batches, sink, index=run.index, op=op)
        run.src.acknowledge([item.record for batch in batches for item in batch.items])
        if ckpt is not None:
            ckpt.save(
                batches[-1].items[-1].record.position,
                counts={"indexed": summary.indexed, "dead_lettered": summary.dead_lettered},
            )
        progress.update(summary, sum(len(b.items) for b in batches), run.src.stats())
        if on_batch is not None:
            on_batch(summary)


# ------------------------------------------------------------------------------------------ the run


def ingest(
    source: Any,
    client: EngineClient,
    index: str,
    encoder: TextEncoder | EncoderSource,
    *,
    fields: FieldMapping | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    dead_letter: str | os.PathLike[str] | None = None,
    reencode: bool = False,
    layout: Layout | None = None,
    passages: Passages | None = None,
    batching: Batching | None = None,
    codec: CodecOptions | None = None,
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
    another model version. ``layout``: the token store of a new index (default: the compact blob only).
    ``passages``: truncate or chunk long documents. ``batching``: encode and bulk sizes. ``codec``: how
    the token codec is fitted when the model directory has none (it is then saved there).
    ``op="update"`` writes only colsplade's fields into existing documents. ``progress``: a tqdm bar on
    stderr (None: only when stderr is a terminal); without it, progress is logged every 30 s.
    ``refresh``: refresh the index once at the end, so a search right after the run sees every document.

    Raises:
        ModelVersionMismatchError: the index holds another model's encodings and ``reencode`` is False.
        CodecMismatchError: the index's token codes were written with a codec the model lacks.
        EngineUnreachableError: the engine stayed away longer than ``retry`` allows; the checkpoint holds
            the last acknowledged position, so rerunning resumes there.
    """
    started = time.monotonic()
    passages = passages or Passages()
    src: Source = as_source(source)
    if checkpoint is not None and src.self_committing:
        raise InvalidInputError(
            f"a {src.kind} source keeps its position itself (the consumer group's committed offsets); "
            "drop the checkpoint"
        )
    encoder = open_encoder(encoder)
    target = Target.open(
        client,
        index,
        encoder,
        reencode=reencode,
        layout=layout,
        chunked=passages.long_docs == "chunk",
        prepare=prepare,
    )
    ckpt = Checkpoint(checkpoint, src.signature(), index) if checkpoint is not None else None
    summary = IngestSummary(
        index=index,
        resumed_from=ckpt.position if ckpt is not None else None,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        dead_letter=str(dead_letter) if dead_letter is not None else None,
        model=f"{target.name}@{target.version}",
        codec=target.codec.hash if target.codec else None,
    )
    if ckpt is not None and ckpt.state.get("counts"):
        logger.info("previous runs of this checkpoint: %s", ckpt.state["counts"])
    meta = {"model_name": target.name, "model_version": target.version}
    run = _Run(
        src=src,
        resume=summary.resumed_from,
        encoder=encoder,
        client=client,
        index=index,
        fields=fields or FieldMapping(),
        passages=passages,
        batching=batching or Batching(),
        writer=_Writer(TokenWriter(target.spec, target.codec), meta, op),
        codec_fit=_CodecFit(codec or CodecOptions()) if target.needs_codec and target.codec is None else None,
        reserved=tuple(colsplade_properties(client.engine, target.spec)),
        on_codec=lambda fitted: target.adopt(encoder, fitted),
    )
    finished = _run_stages(run, op, retry or RetryPolicy(), dead_letter, summary, ckpt, progress, on_batch)
    if finished and ckpt is not None:
        ckpt.save(ckpt.position, complete=True)
    target.close(summary, refresh=refresh and finished)
    summary.truncated = getattr(encoder, "truncated_count", 0) - run.truncated_before
    summary.seconds = time.monotonic() - started
    logger.info("ingest: %s", summary)
    return summary


def _run_stages(
    run: _Run,
    op: str,
    retry: RetryPolicy,
    dead_letter: str | os.PathLike[str] | None,
    summary: IngestSummary,
    ckpt: Checkpoint | None,
    progress: bool | None,
    on_batch: Callable[[IngestSummary], None] | None,
) -> bool:
    """Start the reader and encoder threads, write in this one; stop every thread on the way out."""
    dead = run.src.dead_letters(dead_letter)
    sink = BulkSink(run.client, summary, dead, retry, run.batching.bulk_docs, run.batching.bulk_bytes)
    run.truncated_before = getattr(run.encoder, "truncated_count", 0)
    bar = Progress(run.src, progress, time.monotonic())
    reader = threading.Thread(target=_read_stage, args=(run,), name="colsplade-ingest-read", daemon=True)
    worker = threading.Thread(target=_encode_stage, args=(run,), name="colsplade-ingest-encode", daemon=True)
    reader.start()
    worker.start()
    try:
        return _write_stage(run, op=op, sink=sink, ckpt=ckpt, progress=bar, on_batch=on_batch)
    finally:
        run.stop.set()
        dead.close()
        bar.close()
        reader.join(timeout=5)
        worker.join(timeout=30)
        summary.reasons = dict(dead.reasons)
        run.src.close()  # a stream commits what this run settled
        summary.stream = run.src.stats()


def _settle(batches: list[_Batch], sink: BulkSink, *, index: str, op: str) -> None:
    """Write the batches' documents, dead-letter what was refused, count; returns when all is settled."""
    summary, dead = sink.summary, sink.dead
    actions, owners = _actions(batches, index, op, summary)
    results = sink.send(actions)
    refused: dict[int, list[tuple[BulkAction, BulkItemResult]]] = {}
    for i, action, result in sink.settle(actions, results):
        refused.setdefault(id(owners[i]), []).append((action, result))
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
                for action, result in refused[id(item)]:
                    sink.dead_letter(action, result, position=record.position, document=record.doc)
            else:
                if record.delete:
                    summary.deleted += 1
                else:
                    summary.indexed += 1
                continue
            summary.dead_lettered += 1
    # Durable before the checkpoint moves past these records.
    dead.sync()


def _actions(
    batches: list[_Batch], index: str, op: str, summary: IngestSummary
) -> tuple[list[BulkAction], list[_Item]]:
    """The bulk actions of the batches (a deleted record's is a delete), each with the item it is for."""
    actions: list[BulkAction] = []
    owners: list[_Item] = []
    for batch in batches:
        summary.encode_seconds += batch.encode_seconds
        summary.tokens += batch.tokens
        for item in batch.items:
            if item.record.delete and item.record.doc_id is not None:
                actions.append(BulkAction(index=index, doc_id=item.record.doc_id, source=None, op="delete"))  # type: ignore[arg-type]
                owners.append(item)
            if item.encode_error is not None:
                continue  # dead-lettered whole, none of its passages is written
            for doc_id, source in item.sources:
                actions.append(BulkAction(index=index, doc_id=doc_id, source=source, op=op))
                owners.append(item)
    return actions, owners
