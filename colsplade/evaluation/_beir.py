"""BEIR-format loading (torch-free): corpus.jsonl, queries.jsonl, qrels/{split}.tsv."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colsplade._jsonl import read_jsonl
from colsplade._text import document_text
from colsplade.evaluation._download import resolve_dataset
from colsplade.exceptions import InvalidInputError

__all__ = ["BeirData", "doc_text", "load_beir", "load_corpus", "load_qrels", "load_queries"]

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]


def doc_text(record: Mapping[str, Any]) -> str:
    """A BEIR document's text: its title and text as ingest joins them (one line each; either may be
    empty), so a model is trained and evaluated on the text an index of the corpus encodes.

    >>> doc_text({"title": "T", "text": "body"}), doc_text({"title": "", "text": "body"})
    ('T\\nbody', 'body')
    """
    return document_text(record, ("title", "text"))


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of a BEIR JSONL file with their line numbers; each must have an ``_id``."""
    for line_no, record in read_jsonl(path, line_numbers=True):
        if "_id" not in record:
            raise InvalidInputError(f"{path}:{line_no}: a record needs an '_id' (BEIR: corpus and queries)")
        yield line_no, record


def load_corpus(path: str | os.PathLike[str]) -> dict[str, str]:
    """``corpus.jsonl`` -> ``{doc_id: text}`` (:func:`doc_text`; insertion order = file order)."""
    corpus: dict[str, str] = {}
    for line_no, record in _jsonl(Path(path)):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise InvalidInputError(f"{path}:{line_no}: duplicate document id {doc_id!r}")
        try:
            corpus[doc_id] = doc_text(record)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}:{line_no}: {exc}; a BEIR title / text is a string") from exc
    return corpus


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """``queries.jsonl`` -> ``{query_id: text}``."""
    return {str(r["_id"]): str(r.get("text") or "") for _, r in _jsonl(Path(path))}


def load_qrels(path: str | os.PathLike[str]) -> Qrels:
    """``qrels/<split>.tsv`` (query-id, corpus-id, score; header optional) -> ``{qid: {doc_id: rel}}``."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{p} does not exist")
    qrels: Qrels = {}
    with p.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (line_no == 1 and row[0] in ("query-id", "query_id", "qid")):
                continue
            if len(row) < 3:
                raise InvalidInputError(f"{p}:{line_no}: expected 3 tab-separated columns, got {len(row)}")
            try:
                rel = int(float(row[2]))
            except ValueError as exc:
                raise InvalidInputError(f"{p}:{line_no}: relevance {row[2]!r} is not a number") from exc
            qrels.setdefault(row[0], {})[row[1]] = rel
    return qrels


@dataclass
class BeirData:
    """One split of a BEIR directory: the corpus, the split's queries and their judgements."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    split: str
    path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def positives(self, query_id: str) -> list[str]:
        """Documents judged relevant (rel > 0) for ``query_id``."""
        return [d for d, rel in self.qrels.get(query_id, {}).items() if rel > 0]


def load_beir(
    data_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    corpus: dict[str, str] | None = None,
    strict: bool = True,
) -> BeirData:
    """Load ``split`` of a BEIR directory; only the queries that have judgements in the split are kept.

    ``data_dir`` is a directory, or the name of a downloaded dataset (:func:`resolve_dataset`).

    With ``strict`` (the default) qrels naming unknown query or document ids, or queries with empty
    text, raise :class:`InvalidInputError` listing a few of them (so a bad file fails before any work).
    ``corpus`` reuses an already loaded corpus (loading several splits of one directory).
    """
    root = resolve_dataset(data_dir)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise InvalidInputError(f"{root} has no '{split}' split (qrels/{split}.tsv); splits there: {have}")
    corpus = corpus if corpus is not None else load_corpus(root / "corpus.jsonl")
    all_queries = load_queries(root / "queries.jsonl")
    qrels = load_qrels(qrels_path)
    if strict:
        unknown_q = [q for q in qrels if q not in all_queries]
        if unknown_q:
            raise InvalidInputError(
                f"{qrels_path}: {len(unknown_q)} query id(s) not in queries.jsonl, e.g. {unknown_q[:5]}"
            )
        unknown_d = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
        if unknown_d:
            raise InvalidInputError(
                f"{qrels_path}: {len(unknown_d)} document id(s) not in corpus.jsonl, e.g. {unknown_d[:5]}"
            )
        empty = [q for q in qrels if not all_queries[q].strip()]
        if empty:
            raise InvalidInputError(
                f"queries.jsonl: {len(empty)} query(ies) with empty text, e.g. {empty[:5]}"
            )
    else:
        qrels = {
            q: {d: r for d, r in docs.items() if d in corpus}
            for q, docs in qrels.items()
            if q in all_queries and all_queries[q].strip()
        }
    queries = {q: all_queries[q] for q in qrels}
    logger.info("loaded %s/%s: %d docs, %d queries", root.name, split, len(corpus), len(queries))
    return BeirData(corpus=corpus, queries=queries, qrels=qrels, split=split, path=root)
