"""Hard negatives: BM25 from a real Elasticsearch / OpenSearch node (through colsplade.engines) or a file.

Mining indexes the corpus text into a plain BM25 index on the engine (the same node the product uses, so
negatives are what that engine's first stage would confuse), runs every training query, and keeps the
top hits that are not judged positive. Positives are removed here *and* again whenever negatives are
sampled, so no code path can return a positive as a negative.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from colsplade._jsonl import read_jsonl
from colsplade.exceptions import InvalidInputError
from colsplade.training._data import TrainExample

__all__ = [
    "bm25_search",
    "index_corpus_text",
    "load_negatives",
    "mine_bm25_negatives",
    "sample_negatives",
    "save_negatives",
]

logger = logging.getLogger(__name__)


def _bm25_mapping(analyzer: str) -> dict:
    return {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"text": {"type": "text", "analyzer": analyzer}}},
    }


def index_corpus_text(
    client: object, index: str, corpus: Mapping[str, str], *, recreate: bool = False, chunk_size: int = 500
) -> int:
    """Index ``corpus`` ({doc_id: text}) into a BM25 ``text`` field of ``index``; returns the doc count.

    An existing index holding the same number of documents is reused (mining is often rerun); pass
    ``recreate`` to rebuild it. Uses the engine's bulk API when :mod:`colsplade.engines._bulk` is there.
    """
    if client.index_exists(index):  # type: ignore[attr-defined]
        if not recreate and client.count(index) == len(corpus):  # type: ignore[attr-defined]
            logger.info("reusing BM25 index %s (%d docs)", index, len(corpus))
            return len(corpus)
        client.delete_index(index)  # type: ignore[attr-defined]
    from colsplade.exceptions import EngineRefusedError

    try:  # English analyser (stemming + stop words): the usual BM25 baseline on BEIR
        client.create_index(index, _bm25_mapping("english"))  # type: ignore[attr-defined]
    except EngineRefusedError:
        # the minimal integ-test distributions lack the analysis-common module; standard is built in
        logger.warning("engine has no 'english' analyser; BM25 index %s uses 'standard'", index)
        client.create_index(index, _bm25_mapping("standard"))  # type: ignore[attr-defined]
    try:
        from colsplade.engines import BulkAction, bulk_write
    except ImportError:  # older engines package: one request per document
        for doc_id, text in corpus.items():
            client.index_document(index, doc_id, {"text": text})  # type: ignore[attr-defined]
    else:
        actions = [BulkAction(index=index, doc_id=d, source={"text": t}) for d, t in corpus.items()]
        failed = [r for r in bulk_write(client, actions, chunk_size=chunk_size) if not r.ok]  # type: ignore[arg-type]
        if failed:
            raise InvalidInputError(f"{len(failed)} documents were rejected by the engine: {failed[0].error}")
    client.refresh(index)  # type: ignore[attr-defined]
    n = client.count(index)  # type: ignore[attr-defined]
    logger.info("indexed %d documents into BM25 index %s", n, index)
    return n


def bm25_search(
    client: object,
    index: str,
    queries: Mapping[str, str],
    k: int = 100,
    fields: Sequence[str] = ("text",),
) -> dict[str, dict[str, float]]:
    """The engine's BM25 top ``k`` over ``fields`` of ``index`` for each query: ``{qid: {doc_id: score}}``."""
    from colsplade.query import bm25_clause

    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        body = {"size": k, "_source": False, "query": bm25_clause(text, fields)}
        hits = client.search(index, body)["hits"]["hits"]  # type: ignore[attr-defined]
        run[qid] = {h["_id"]: float(h["_score"]) for h in hits}
    return run


def mine_bm25_negatives(
    client: object,
    index: str,
    examples: Sequence[TrainExample],
    corpus: Mapping[str, str],
    *,
    depth: int = 30,
    skip_top: int = 0,
    reindex: bool = False,
) -> list[TrainExample]:
    """Fill each example's ``negatives`` with its BM25 top ``depth`` hits minus its positives, best first.

    ``skip_top`` drops the first non-positive hits too: on sparsely judged data (SciFact judges ~1.1
    documents per query) the very top of BM25 often holds unjudged relevant documents (false negatives).
    """
    index_corpus_text(client, index, corpus, recreate=reindex)
    run = bm25_search(client, index, {e.query_id: e.query for e in examples}, k=depth + skip_top + 10)
    out: list[TrainExample] = []
    for e in examples:
        positives = set(e.positives)
        ranked = [d for d in run[e.query_id] if d not in positives]
        out.append(
            TrainExample(
                e.query_id, e.query, list(e.positives), ranked[skip_top : skip_top + depth], e.teacher
            )
        )
    n = sum(len(e.negatives) for e in out)
    logger.info("mined %d BM25 negatives for %d queries from %s", n, len(out), index)
    return out


def sample_negatives(
    example: TrainExample, n: int, rng: random.Random, corpus_ids: Sequence[str] = ()
) -> list[str]:
    """``n`` negatives for ``example``: sampled from its hard negatives, topped up with random corpus ids.

    Never returns one of the example's positives (filtered here even if the negatives list held one).
    """
    positives = set(example.positives)
    pool = [d for d in example.negatives if d not in positives]
    chosen = rng.sample(pool, n) if len(pool) >= n else list(pool)
    tries = 0
    while len(chosen) < n and corpus_ids and tries < 100 * n:
        tries += 1
        d = corpus_ids[rng.randrange(len(corpus_ids))]
        if d not in positives and d not in chosen:
            chosen.append(d)
    return chosen


def save_negatives(path: str | os.PathLike[str], examples: Sequence[TrainExample]) -> Path:
    """Write ``{"query_id", "negatives"}`` JSONL (reusable with :func:`load_negatives`)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps({"query_id": e.query_id, "negatives": e.negatives}) + "\n")
    return p


def load_negatives(
    path: str | os.PathLike[str], examples: Sequence[TrainExample], corpus: Mapping[str, str] | None = None
) -> list[TrainExample]:
    """Attach the negatives of a ``{"query_id", "negatives"}`` JSONL file to ``examples`` (positives removed).

    Raises :class:`InvalidInputError` for unknown document ids; queries absent from the file keep none.
    """
    p = Path(path)
    by_query: dict[str, list[str]] = {}
    for line_no, r in read_jsonl(p, line_numbers=True):
        negatives = r.get("negatives")
        if "query_id" not in r or not isinstance(negatives, list):
            raise InvalidInputError(
                f"{p}:{line_no}: expected {{'query_id': ..., 'negatives': [doc ids]}} (as save_negatives writes)"
            )
        by_query[str(r["query_id"])] = [str(d) for d in negatives]
    if corpus is not None:
        unknown = sorted({d for ds in by_query.values() for d in ds if d not in corpus})
        if unknown:
            raise InvalidInputError(
                f"{p}: {len(unknown)} negative id(s) not in the corpus, e.g. {unknown[:5]}"
            )
    out = []
    for e in examples:
        positives = set(e.positives)
        negs = [d for d in by_query.get(e.query_id, []) if d not in positives]
        out.append(TrainExample(e.query_id, e.query, list(e.positives), negs, e.teacher))
    return out
