"""Label-free training data: a team's own documents (an index on its engine, or a corpus file) -> examples.

The documents come from ``from_index`` (scanned through a point in time on the engine, text fields only)
or a corpus file (JSONL with ``_id`` and the text fields; a BEIR directory or dataset name means its
``corpus.jsonl``, whose queries and qrels are never read). :mod:`colsplade.training._pseudo` turns each
document into one pseudo-query pair; hard negatives are the engine's BM25 hits for the pseudo-query — on
the team's own index and fields when training from an index, else on a BM25 index of the corpus text —
minus the source document, its near-duplicates and documents holding the pseudo-query verbatim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from colsplade._jsonl import read_jsonl
from colsplade._text import document_text
from colsplade.exceptions import InvalidInputError
from colsplade.training._data import TrainExample, split_dev, validate_examples
from colsplade.training._negatives import bm25_search, index_corpus_text
from colsplade.training._pseudo import PseudoDocument, filter_near_duplicates, make_pairs

__all__ = ["corpus_documents", "index_documents", "label_free_data"]

logger = logging.getLogger(__name__)


def _document(
    doc_id: str, source: Mapping[str, Any], title_field: str | None, text_fields: Sequence[str]
) -> PseudoDocument:
    """The document as ingest reads it: title and body through :func:`colsplade._text.document_text`, so
    :attr:`PseudoDocument.text` is the text ingest encodes with the fields ``[title_field, *text_fields]``.

    Raises :class:`InvalidInputError` for a text field that holds no text (ingest dead-letters it)."""
    title = document_text(source, [title_field]) if title_field else ""
    return PseudoDocument(doc_id, title, document_text(source, text_fields))


def _documents(
    records: Iterable[tuple[str, Mapping[str, Any]]], title_field: str | None, text_fields: Sequence[str]
) -> Iterator[PseudoDocument]:
    """The documents of ``(id, source)`` records; those ingest would refuse (a text field that holds no
    text) are left out, as they are out of the index, and counted in a warning."""
    skipped, first = 0, ""
    for doc_id, source in records:
        try:
            yield _document(doc_id, source, title_field, text_fields)
        except InvalidInputError as exc:
            skipped += 1
            first = first or f"{doc_id}: {exc}"
    if skipped:
        logger.warning(
            "%d document(s) left out: a text field holds no text, so ingest would refuse them too (e.g. %s)",
            skipped,
            first,
        )


def corpus_documents(
    path: str | Path, title_field: str | None = "title", text_fields: Sequence[str] = ("text",)
) -> Iterator[PseudoDocument]:
    """The documents of a JSONL corpus file (``_id`` or ``id``, plus the title and text fields).

    A directory (or a downloaded dataset's name) means its ``corpus.jsonl``. Raises
    :class:`InvalidInputError` for a missing file, a line that is not a JSON object, a missing id.
    """
    from colsplade.evaluation import resolve_dataset

    p = Path(path)
    if not p.is_file():
        p = Path(resolve_dataset(str(path))) / "corpus.jsonl"
        if not p.is_file():
            raise InvalidInputError(
                f"{path}: no corpus file (a JSONL file, or a BEIR directory with corpus.jsonl)"
            )

    def records() -> Iterator[tuple[str, Mapping[str, Any]]]:
        for line_no, record in read_jsonl(p, line_numbers=True):
            doc_id = record.get("_id", record.get("id"))
            if doc_id is None:
                raise InvalidInputError(f"{p}:{line_no}: expected a JSON object with an '_id' (or 'id')")
            yield str(doc_id), record

    return _documents(records(), title_field, text_fields)


def index_documents(
    client: Any, index: str, title_field: str | None = "title", text_fields: Sequence[str] = ("text",)
) -> Iterator[PseudoDocument]:
    """The documents of ``index`` on the engine (only their text fields are fetched)."""
    from colsplade.engines import scan_index

    if not client.index_exists(index):
        raise InvalidInputError(f"index {index!r} does not exist on {client.engine}; check --from-index")
    fields = [f for f in (title_field, *text_fields) if f]
    hits = scan_index(client, index, source_includes=fields)
    return _documents(((hit.doc_id, hit.source) for hit in hits), title_field, text_fields)


def label_free_data(
    config: Any, connect: Callable[[], Any]
) -> tuple[list[TrainExample], list[TrainExample], dict[str, str]]:
    """-> (train examples, dev examples, training corpus) for ``config.label_free`` (see the module doc).

    ``connect()`` returns the engine client (called only when the documents or the negatives need it).
    The training corpus maps each document id to the text the model reads for it: the positive's text
    for a document that gave a pair, its full text otherwise.
    """
    client = None
    source = config.from_index or config.corpus or config.data
    if config.from_index:
        client = connect()
        documents = list(index_documents(client, config.from_index, config.title_field, config.text_fields))
    elif source:
        documents = list(corpus_documents(source, config.title_field, config.text_fields))
    else:
        raise InvalidInputError(
            "label-free training reads a corpus: give --from-index INDEX or --corpus FILE"
        )
    if config.holdout_ids:
        held = set(config.holdout_ids)
        documents = [d for d in documents if d.doc_id not in held]
        logger.info("%d held-out document(s) kept out of training", len(held))
    seen: set[str] = set()
    for doc in documents:
        if doc.doc_id in seen:
            raise InvalidInputError(f"{source}: duplicate document id {doc.doc_id!r}")
        seen.add(doc.doc_id)
    pairs = make_pairs(
        documents,
        kinds=config.pseudo_kinds,
        seed=config.seed,
        max_pairs=config.max_pairs,
        min_pairs=max(2 * config.batch_size, 32) + config.dev_queries,
    )
    full_text = {d.doc_id: d.text for d in documents if d.text}
    examples = [TrainExample(f"pseudo:{p.doc_id}", p.query, [p.doc_id]) for p in pairs]
    if config.negatives == "bm25" and config.n_negatives > 0:
        client = client or connect()
        examples = _mine(config, client, examples, full_text, pairs)
    elif config.negatives not in ("bm25", "none"):
        raise InvalidInputError("label-free training mines its negatives: negatives must be 'bm25' or 'none'")
    train_corpus = dict(full_text)
    train_corpus.update({p.doc_id: p.positive_text for p in pairs})
    validate_examples(examples, train_corpus)
    dev: list[TrainExample] = []
    if config.dev_queries:
        examples, dev = split_dev(examples, config.dev_queries, seed=config.seed)
    return examples, dev, train_corpus


def _mine(
    config: Any,
    client: Any,
    examples: list[TrainExample],
    full_text: dict[str, str],
    pairs: Sequence[Any],
) -> list[TrainExample]:
    """BM25 negatives for every pseudo-query: the team's index and fields, or a BM25 index of the corpus."""
    if config.from_index:
        index, fields = config.from_index, [f for f in (config.title_field, *config.text_fields) if f]
    else:
        index = config.bm25_index or f"colsplade-bm25-{Path(str(config.corpus or config.data)).stem}".lower()
        index_corpus_text(client, index, full_text)
        fields = ["text"]
    depth = config.negatives_depth + config.negatives_skip_top
    run = bm25_search(client, index, {e.query_id: e.query for e in examples}, k=depth + 10, fields=fields)
    out, dropped, without = [], 0, 0
    for e, pair in zip(examples, pairs, strict=True):
        ranked = [d for d in run.get(e.query_id, {}) if d != pair.doc_id and d in full_text]
        ranked = ranked[config.negatives_skip_top :]
        kept, n = filter_near_duplicates(
            full_text[pair.doc_id], e.query, ranked, full_text, config.near_duplicate_threshold
        )
        dropped += n
        without += not kept
        out.append(TrainExample(e.query_id, e.query, list(e.positives), kept[: config.negatives_depth]))
    logger.info(
        "mined BM25 negatives for %d pseudo-queries on %s (%d near-duplicates or verbatim copies dropped; "
        "%d queries without one: random negatives there)",
        len(out),
        index,
        dropped,
        without,
    )
    if without == len(out):
        logger.warning(
            "BM25 on %s %s found no negative for any pseudo-query: are the text fields %s indexed as text?",
            client.engine,
            index,
            fields,
        )
    return out
