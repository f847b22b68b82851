"""``explain``: each hit's SPLADE term shares and each query token's best document token."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from colsplade.exceptions import InvalidInputError
from colsplade.mappings import FieldSpec, TokenReader, unescape_impacts
from colsplade.query._dsl import search_body, token_fetch
from colsplade.query._types import Hit, HitExplanation, SparseTermContribution, TokenMatch

__all__ = ["explain_hits"]


def explain_hits(
    hits: list[Hit],
    fetch: Callable[[dict[str, Any]], list[dict[str, Any]]],
    *,
    reader: TokenReader,
    spec: FieldSpec,
    encoder: Any,
    text_fields: Sequence[str],
    query: str,
    query_impacts: Mapping[str, float],
    query_vectors: np.ndarray,
    source_with_vectors: Callable[[Any], Any] = lambda source: source,
) -> None:
    """Set each hit's :class:`HitExplanation` (in place).

    ``fetch(body)`` runs one search of the index and returns its hits: the hits' stored impacts, text
    fields and token data come back in one request. ``query_vectors``: (m, dim) float32.
    """
    fields = [spec.splade_field, *text_fields]
    fetch_keys = token_fetch(spec, fields)
    # the stored impacts are a vector field: an engine that leaves those out of _source is asked for them
    fetch_keys["_source"] = source_with_vectors(fetch_keys["_source"])
    body = search_body(
        {"ids": {"values": [h.id for h in hits]}},
        len(hits),
        fetch=fetch_keys,
        source=fetch_keys["_source"],
    )
    raw = fetch(body)
    docs = {h["_id"]: h for h in raw}
    tokens = reader.read(raw)
    query_tokens = _safe_tokens(encoder, query, is_query=True)
    for hit in hits:
        src = docs.get(hit.id, {}).get("_source") or {}
        doc_impacts = unescape_impacts(src.get(spec.splade_field) or {})
        terms = [
            SparseTermContribution(t, w, doc_impacts[t], w * doc_impacts[t])
            for t, w in query_impacts.items()
            if t in doc_impacts
        ]
        terms.sort(key=lambda c: -c.contribution)
        explanation = HitExplanation(sparse_score=float(sum(c.contribution for c in terms)), terms=terms)
        doc_vectors = tokens.get(hit.id)
        if doc_vectors is not None and len(doc_vectors) and len(query_vectors):
            text = " ".join(str(src[f]) for f in text_fields if src.get(f))
            doc_tokens = _safe_tokens(encoder, text, is_query=False) if text else []
            sims = reader.similarities(query_vectors, doc_vectors)
            best = sims.argmax(axis=1)
            positions = [int(j) for j in best]
            if len(doc_tokens) != len(doc_vectors):
                # pooled storage: name each match by its pooled vector's member token nearest the query's
                found = _pooled_positions(encoder, text, doc_vectors, query_vectors, best, len(doc_tokens))
                positions, doc_tokens = (found, doc_tokens) if found is not None else (positions, [])
            explanation.tokens = [
                TokenMatch(
                    query_position=i,
                    query_token=query_tokens[i] if i < len(query_tokens) else None,
                    doc_position=positions[i],
                    doc_token=doc_tokens[positions[i]] if doc_tokens else None,
                    contribution=float(sims[i, j]),
                )
                for i, j in enumerate(best)
            ]
            explanation.maxsim_score = float(sum(t.contribution for t in explanation.tokens))
        hit.explanation = explanation


def _pooled_positions(
    encoder: Any,
    text: str,
    pooled_vectors: np.ndarray,
    query_vectors: np.ndarray,
    best: np.ndarray,
    n_tokens: int,
) -> list[int] | None:
    """For each query token, the document token behind its best pooled vector: the pooled vector's member
    (the tokens nearest to it, re-encoded from the text) most similar to the query token. None when the
    text cannot be re-encoded into ``n_tokens`` vectors."""
    if not text or n_tokens == 0:
        return None
    try:
        encoded = encoder.encode_documents([text])
    except InvalidInputError:
        return None
    token_vectors = np.asarray(getattr(encoded, "colbert", encoded)[0], dtype=np.float32)
    if len(token_vectors) != n_tokens:
        return None
    member = (token_vectors @ pooled_vectors.T).argmax(axis=1)  # (n_tokens,) pooled vector of each token
    positions = []
    for q, j in zip(query_vectors, best, strict=True):
        tokens = np.flatnonzero(member == j)
        if len(tokens) == 0:
            tokens = np.arange(n_tokens)
        positions.append(int(tokens[(token_vectors[tokens] @ q).argmax()]))
    return positions


def _safe_tokens(encoder: Any, text: str, *, is_query: bool) -> list[str]:
    try:
        return list(encoder.explain(text, is_query=is_query).colbert_tokens)
    except InvalidInputError:
        return []
