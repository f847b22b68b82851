"""SearchClient: encode once, SPLADE on the inverted index, MaxSim rerank in the engine or the client."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from colsplade.config import Settings
from colsplade.engines import EngineClient, connect_default
from colsplade.exceptions import InvalidInputError, ModelVersionMismatchError
from colsplade.mappings import FieldSpec, spec_from_meta, unescape_impacts, unpack_token_vectors
from colsplade.query._dsl import first_stage_query, maxsim_rescore, nested_knn_query, rrf_fuse
from colsplade.query._types import Hit, HitExplanation, SearchResult, SparseTermContribution, TokenMatch
from colsplade.scoring import dequantize_int8, hamming_maxsim, quantize_bits

logger = logging.getLogger(__name__)

__all__ = ["AsyncSearchClient", "SearchClient", "model_identity"]

RERANK_MODES = ("auto", "engine", "client", "none")
HYBRID_MODES = ("rrf", "sum")


def model_identity(encoders: Sequence[Any]) -> tuple[str, str]:
    """The (name, version) an index records for the encoder(s) that filled it.

    One model directory: its name and version; a SPLADE + ColBERT pair: both joined by ``+``.
    """
    configs = [e.config for e in encoders]
    return "+".join(c.name for c in configs), "+".join(str(c.version) for c in configs)


class SearchClient:
    """Two-stage search over one colsplade index. Thread-safe and reusable: create it once per process.

    Args:
        index: index (or alias) name.
        model: a joint model directory (or a loaded encoder) giving both SPLADE and ColBERT; or use
            ``splade_model`` and ``colbert_model`` for two separate models.
        settings / client: where the engine is (default: :func:`colsplade.config.load_settings`, and the
            local node when no URL is configured); a given ``client`` is used as is and not closed.
        rerank: default rerank mode: ``auto`` (the faster path measured for the engine), ``engine``
            (rescore with painless in the same request), ``client`` (numpy MaxSim on fetched vectors),
            ``none`` (SPLADE order).
        window: how many first-stage candidates are reranked (default 100; per shard for ``engine``).
        first_stage_weight: default w of ``score = MaxSim + w * first-stage score`` (see :meth:`search`).
        text_fields: source fields whose text was encoded (title + body ...), used by ``explain`` to
            name the document tokens, and the default BM25 fields of hybrid search.
        max_query_chars: longer queries are refused (the model reads at most its max query length anyway).
        encoder_options: passed to :func:`colsplade.encoders.load_encoder` (variant, threads, ...).
    """

    def __init__(
        self,
        index: str,
        model: Any = None,
        *,
        splade_model: Any = None,
        colbert_model: Any = None,
        settings: Settings | None = None,
        client: EngineClient | None = None,
        rerank: str = "auto",
        window: int = 100,
        first_stage_weight: float = 0.0,
        text_fields: Sequence[str] = ("title", "text"),
        max_query_chars: int = 4096,
        encoder_options: Mapping[str, Any] | None = None,
        check_model_version: bool = True,
    ) -> None:
        if rerank not in RERANK_MODES:
            raise InvalidInputError(f"rerank must be one of {', '.join(RERANK_MODES)}, got {rerank!r}")
        if window < 1:
            raise InvalidInputError(f"window must be >= 1, got {window}")
        self.index = index
        self.default_rerank = rerank
        self.window = window
        self.first_stage_weight = first_stage_weight
        self.text_fields = tuple(text_fields)
        self.max_query_chars = max_query_chars
        self.check_model_version = check_model_version
        from colsplade.encoders import load_joint_encoder

        # a pair gets the joint face (EncoderPair): the identity ingest recorded for it, one encode path
        self._encoder = load_joint_encoder(
            model, splade_model=splade_model, colbert_model=colbert_model, **(encoder_options or {})
        )
        self.model_name, self.model_version = model_identity([self._encoder])
        self._owns_client = client is None
        self.client = client if client is not None else connect_default(settings)
        self._lock = threading.Lock()
        self._spec: FieldSpec | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- index -----------------------------------------------------------------------------------

    @property
    def spec(self) -> FieldSpec:
        """The index's field layout, read once from its ``_meta`` (and the model version checked)."""
        if self._spec is None:
            with self._lock:
                if self._spec is None:
                    self._spec = self._read_index()
        return self._spec

    def _read_index(self) -> FieldSpec:
        mapping = self.client.get_mapping(self.index)
        properties = mapping.get("properties", {})
        meta = (mapping.get("_meta") or {}).get("colsplade") or {}
        spec = spec_from_meta(mapping.get("_meta"))
        if spec is None or spec.splade_field not in properties or spec.colbert_field not in properties:
            raise InvalidInputError(
                f"index {self.index!r} has no colsplade fields; add them (colsplade index create {self.index} "
                "--existing-ok) and ingest the documents (colsplade ingest)"
            )
        index_model = meta.get("model_name"), meta.get("model_version")
        mismatch = index_model[0] is not None and index_model != (self.model_name, self.model_version)
        if self.check_model_version and mismatch:
            raise ModelVersionMismatchError(
                self.index, f"{index_model[0]} v{index_model[1]}", f"{self.model_name} v{self.model_version}"
            )
        dim = self._encoder.config.colbert.dim
        if spec.element_type != "bit" and spec.colbert_dim != dim:
            raise InvalidInputError(
                f"index {self.index!r} holds {spec.colbert_dim}-dimensional token vectors, the model makes {dim}"
            )
        return spec

    def resolve_rerank(self, rerank: str | None = None) -> str:
        """The rerank path a search takes: ``auto`` picks the engine path where painless scores float
        vectors (measured faster there, see benchmarks/bench_query.py), the client path otherwise."""
        mode = rerank or self.default_rerank
        if mode not in RERANK_MODES:
            raise InvalidInputError(f"rerank must be one of {', '.join(RERANK_MODES)}, got {mode!r}")
        can_engine = self.client.capabilities().in_engine_rerank and self.spec.element_type == "float"
        if mode == "engine" and not can_engine:
            raise InvalidInputError(
                f"in-engine rerank needs painless and float token vectors; this {self.client.engine} "
                f"{self.client.capabilities().version} index has painless={self.client.capabilities().painless}, "
                f"element_type={self.spec.element_type}; use rerank='client'"
            )
        if mode == "auto":
            return "engine" if can_engine else "client"
        return mode

    # -- encoding --------------------------------------------------------------------------------

    def _check_query(self, query: Any) -> str:
        if isinstance(query, bytes):
            try:
                query = query.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError("the query is not valid UTF-8") from None
        if not isinstance(query, str):
            raise InvalidInputError(f"the query must be a string, got {type(query).__name__}")
        if not query.strip():
            raise InvalidInputError("the query is empty; give some words to search for")
        if len(query) > self.max_query_chars:
            raise InvalidInputError(
                f"the query has {len(query)} characters, more than max_query_chars={self.max_query_chars}; "
                "shorten it (the model reads only its first max_query_length tokens) or raise the limit"
            )
        return query

    def encode_query(self, query: str) -> tuple[dict[str, float], np.ndarray]:
        """SPLADE terms ``{token: weight}`` and ColBERT query vectors (m, dim) float32, one model pass each."""
        query = self._check_query(query)
        encoding = self._encoder.encode_queries([query])
        return encoding.splade[0], np.asarray(encoding.colbert[0], dtype=np.float32)

    # -- search ----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        offset: int = 0,
        window: int | None = None,
        rerank: str | None = None,
        filters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        knn_k: int | None = None,
        bm25_fields: Sequence[str] | None = None,
        hybrid: str = "rrf",
        bm25_weight: float = 1.0,
        first_stage_weight: float | None = None,
        source: Sequence[str] | bool | None = None,
        highlight: Sequence[str] | None = None,
        explain: bool = False,
        splade: bool = True,
    ) -> SearchResult:
        """Search the index: SPLADE first stage (+ optional kNN / BM25 candidates), MaxSim rerank, one page.

        Args:
            k, offset: the page inside the reranked window (``offset + k <= window``).
            window: candidates to rerank (default: the client's).
            rerank: ``auto`` / ``engine`` / ``client`` / ``none`` (default: the client's).
            filters: engine query-DSL clause(s) that restrict the candidates (not scored).
            knn_k: also take each query token's ``knn_k`` nearest document tokens (nested kNN) as candidates.
            bm25_fields: also take BM25 candidates from these text fields; ``hybrid`` fuses them with the
                SPLADE list by reciprocal rank (``rrf``) or by adding ``bm25_weight`` * BM25 scores (``sum``).
            first_stage_weight: w in ``score = MaxSim + w * first-stage score`` (default: the client's, 0:
                MaxSim alone). The first stage adds the lexical-expansion evidence MaxSim lacks; with
                ``hybrid="rrf"`` its score is constant and w has no effect.
            source: source fields to return (True: all but the vectors).
            highlight: fields to highlight (engine highlighter, on the BM25 / match of the query text).
            explain: add each hit's SPLADE term shares and ColBERT token matches.
            splade: use the SPLADE clauses as candidates (False: only ``knn_k`` / ``bm25_fields`` candidates,
                e.g. ColBERT token-ANN retrieval).
        """
        started = time.perf_counter()
        window = window or self.window
        weight = self.first_stage_weight if first_stage_weight is None else float(first_stage_weight)
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInputError(f"first_stage_weight must be a finite number >= 0, got {weight}")
        if k < 1 or offset < 0:
            raise InvalidInputError(f"k must be >= 1 and offset >= 0, got k={k}, offset={offset}")
        if offset + k > window:
            raise InvalidInputError(
                f"offset + k = {offset + k} is past the rerank window ({window}); raise window= to page further"
            )
        if hybrid not in HYBRID_MODES:
            raise InvalidInputError(f"hybrid must be one of {', '.join(HYBRID_MODES)}, got {hybrid!r}")
        if isinstance(filters, Mapping):
            filters = [filters]
        filters = list(filters or [])
        spec = self.spec
        mode = self.resolve_rerank(rerank)
        query = self._check_query(query)
        query_impacts, query_vectors = self.encode_query(query)
        timings = {"encode": (time.perf_counter() - started) * 1000, "engine": 0.0, "rerank": 0.0}
        stage_impacts = query_impacts if splade else {}
        if not stage_impacts and not knn_k and not bm25_fields:
            raise InvalidInputError(
                "no first-stage candidates: the query yields no SPLADE term (all pruned) or splade=False; "
                "add knn_k= or bm25_fields="
            )

        extra: list[dict[str, Any]] = []
        if knn_k:
            extra.append(
                {
                    "bool": {
                        "should": [
                            nested_knn_query(self.client.engine, q, spec, k=knn_k) for q in query_vectors
                        ]
                    }
                }
            )
        bm25_clause = None
        if bm25_fields:
            bm25_clause = {"multi_match": {"query": query, "fields": list(bm25_fields)}}
            if hybrid == "sum":
                extra.append({"multi_match": {**bm25_clause["multi_match"], "boost": float(bm25_weight)}})
        first = _first_stage(stage_impacts, spec, filters, extra)
        source_filter = _source_filter(source, spec)
        highlight_body = {"fields": {f: {} for f in highlight}} if highlight else None

        stage: dict[str, dict[str, float]] = {}
        if bm25_fields and hybrid == "rrf":
            candidate_ids = self._rrf_candidates(first, bm25_clause, filters, window, stage, timings)
            first = {"bool": {"filter": [{"ids": {"values": candidate_ids}}, *filters]}}
            if mode == "none":
                fused = sorted(candidate_ids, key=lambda d: -stage["rrf"][d])
                page = fused[offset : offset + k]
                hits = self._fetch_page(page, source_filter, highlight_body, query, timings, stage, "rrf")
                return self._finish(
                    query,
                    hits,
                    mode,
                    window,
                    len(candidate_ids),
                    timings,
                    query_impacts,
                    query_vectors,
                    explain,
                    started,
                )

        if mode == "engine":
            body: dict[str, Any] = {
                "query": first,
                "size": offset + k,
                "rescore": maxsim_rescore(
                    self.client.engine, query_vectors, spec, window=window, first_stage_weight=weight
                ),
                "_source": source_filter,
                "track_total_hits": False,
            }
            if highlight_body:
                body["highlight"] = highlight_body
            answer = self._search(body, timings)
            m = len(query_vectors)
            raw = answer["hits"]["hits"][offset : offset + k]
            hits = [
                Hit(
                    id=h["_id"],
                    score=float(h["_score"]) - m,
                    # with w > 0 the engine returns only the sum, not its parts
                    stage_scores={
                        "maxsim" if not weight else "fused": float(h["_score"]) - m,
                        **_known(stage, h["_id"]),
                    },
                    source=h.get("_source") if source_filter is not False else None,
                    highlight=h.get("highlight"),
                )
                for h in raw
            ]
            # The engine reranks up to `window` candidates per shard; it does not say how many matched.
            candidates = window
        else:
            fields = [_vector_source_field(spec)] if mode == "client" else []
            body = {
                "query": first,
                "size": window if mode == "client" else offset + k,
                "_source": _merge_source(source_filter, fields),
                "track_total_hits": False,
            }
            if highlight_body:
                body["highlight"] = highlight_body
            answer = self._search(body, timings)
            raw = answer["hits"]["hits"]
            candidates = len(raw)
            scored: list[tuple[float, float | None, dict[str, Any]]] = []  # (score, MaxSim, hit)
            if mode == "client":
                t_rerank = time.perf_counter()
                fallback = self._nested_fallback(raw, spec, timings)
                for h in raw:
                    doc_vectors = _source_vectors(fallback.get(h["_id"], h.get("_source") or {}), spec)
                    maxsim = _maxsim(query_vectors, doc_vectors, spec)
                    scored.append((maxsim + weight * float(h["_score"] or 0.0), maxsim, h))
                # Stable sort: equal scores keep the first-stage order, as the engine's rescore does.
                scored.sort(key=lambda item: -item[0])
                timings["rerank"] = (time.perf_counter() - t_rerank) * 1000
            else:
                scored = [(float(h["_score"]), None, h) for h in raw]
            hits = []
            for score, maxsim, h in scored[offset : offset + k]:
                src = dict(h.get("_source") or {})
                src.pop(spec.colbert_field, None)
                if spec.packed_field:
                    src.pop(spec.packed_field, None)
                if maxsim is not None:
                    stages = {"first_stage": float(h["_score"]), **_known(stage, h["_id"]), "maxsim": maxsim}
                else:
                    stages = {**_known(stage, h["_id"]), "first_stage": score}
                hits.append(
                    Hit(
                        id=h["_id"],
                        score=score,
                        stage_scores=stages,
                        source=_strip_source(src, source_filter, spec),
                        highlight=h.get("highlight"),
                    )
                )
        return self._finish(
            query, hits, mode, window, candidates, timings, query_impacts, query_vectors, explain, started
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _search(self, body: Mapping[str, Any], timings: dict[str, float]) -> dict[str, Any]:
        t = time.perf_counter()
        answer = self.client.search(self.index, body)
        timings["engine"] += (time.perf_counter() - t) * 1000
        return answer

    def _nested_fallback(
        self, raw: list[dict[str, Any]], spec: FieldSpec, timings: dict[str, float]
    ) -> dict[str, dict[str, Any]]:
        """Nested vectors of the documents that came back without the packed copy (older writers)."""
        if not spec.packed_field:
            return {}
        missing = [
            h["_id"] for h in raw if not isinstance((h.get("_source") or {}).get(spec.packed_field), str)
        ]
        if not missing:
            return {}
        body = {"query": {"ids": {"values": missing}}, "size": len(missing), "_source": [spec.colbert_field]}
        return {h["_id"]: h.get("_source") or {} for h in self._search(body, timings)["hits"]["hits"]}

    def _rrf_candidates(
        self,
        first: Mapping[str, Any],
        bm25_clause: Mapping[str, Any],
        filters: list[Mapping[str, Any]],
        window: int,
        stage: dict[str, dict[str, float]],
        timings: dict[str, float],
    ) -> list[str]:
        sparse = self._search(
            {"query": first, "size": window, "_source": False, "track_total_hits": False}, timings
        )
        bm25_query = {"bool": {"must": [bm25_clause], "filter": filters}} if filters else bm25_clause
        bm25 = self._search(
            {"query": bm25_query, "size": window, "_source": False, "track_total_hits": False}, timings
        )
        sparse_ids = [h["_id"] for h in sparse["hits"]["hits"]]
        bm25_ids = [h["_id"] for h in bm25["hits"]["hits"]]
        stage["first_stage"] = {h["_id"]: float(h["_score"]) for h in sparse["hits"]["hits"]}
        stage["bm25"] = {h["_id"]: float(h["_score"]) for h in bm25["hits"]["hits"]}
        fused = rrf_fuse([sparse_ids, bm25_ids])[:window]
        stage["rrf"] = dict(fused)
        return [doc_id for doc_id, _ in fused]

    def _fetch_page(
        self,
        ids: list[str],
        source_filter: Any,
        highlight_body: Mapping[str, Any] | None,
        query: str,
        timings: dict[str, float],
        stage: dict[str, dict[str, float]],
        score_stage: str,
    ) -> list[Hit]:
        if not ids:
            return []
        body: dict[str, Any] = {"query": {"ids": {"values": ids}}, "size": len(ids), "_source": source_filter}
        if highlight_body:
            body["highlight"] = highlight_body
        found = {h["_id"]: h for h in self._search(body, timings)["hits"]["hits"]}
        hits = []
        for doc_id in ids:
            h = found.get(doc_id, {})
            score = stage[score_stage][doc_id]
            hits.append(
                Hit(
                    id=doc_id,
                    score=score,
                    stage_scores=_known(stage, doc_id),
                    source=h.get("_source") if source_filter is not False else None,
                    highlight=h.get("highlight"),
                )
            )
        return hits

    def _finish(
        self,
        query: str,
        hits: list[Hit],
        mode: str,
        window: int,
        candidates: int,
        timings: dict[str, float],
        query_impacts: dict[str, float],
        query_vectors: np.ndarray,
        explain: bool,
        started: float,
    ) -> SearchResult:
        if explain and hits:
            self._explain(query, hits, query_impacts, query_vectors, timings)
        timings["total"] = (time.perf_counter() - started) * 1000
        return SearchResult(
            query=query,
            hits=hits,
            rerank=mode,
            window=window,
            candidates=candidates,
            timings_ms={k: round(v, 3) for k, v in timings.items()},
            query_terms=query_impacts,
        )

    def _explain(
        self,
        query: str,
        hits: list[Hit],
        query_impacts: dict[str, float],
        query_vectors: np.ndarray,
        timings: dict[str, float],
    ) -> None:
        spec = self.spec
        fields = [spec.splade_field, spec.colbert_field, *self.text_fields]
        if spec.packed_field:
            fields.append(spec.packed_field)
        body = {"query": {"ids": {"values": [h.id for h in hits]}}, "size": len(hits), "_source": fields}
        docs = {h["_id"]: h.get("_source") or {} for h in self._search(body, timings)["hits"]["hits"]}
        query_tokens = _safe_tokens(self._encoder, query, is_query=True)
        for hit in hits:
            src = docs.get(hit.id, {})
            doc_impacts = unescape_impacts(src.get(spec.splade_field) or {})
            terms = [
                SparseTermContribution(t, w, doc_impacts[t], w * doc_impacts[t])
                for t, w in query_impacts.items()
                if t in doc_impacts
            ]
            terms.sort(key=lambda c: -c.contribution)
            explanation = HitExplanation(sparse_score=float(sum(c.contribution for c in terms)), terms=terms)
            doc_vectors = _source_vectors(src, spec)
            if len(doc_vectors) and len(query_vectors):
                text = " ".join(str(src[f]) for f in self.text_fields if src.get(f))
                doc_tokens = _safe_tokens(self._encoder, text, is_query=False) if text else []
                if len(doc_tokens) != len(doc_vectors):
                    doc_tokens = []
                sims = _similarities(query_vectors, doc_vectors, spec)
                best = sims.argmax(axis=1)
                explanation.tokens = [
                    TokenMatch(
                        query_position=i,
                        query_token=query_tokens[i] if i < len(query_tokens) else None,
                        doc_position=int(j),
                        doc_token=doc_tokens[j] if doc_tokens else None,
                        contribution=float(sims[i, j]),
                    )
                    for i, j in enumerate(best)
                ]
                explanation.maxsim_score = float(sum(t.contribution for t in explanation.tokens))
            hit.explanation = explanation


def _first_stage(
    query_impacts: dict[str, float],
    spec: FieldSpec,
    filters: list[Mapping[str, Any]],
    extra: list[dict[str, Any]],
) -> dict[str, Any]:
    if query_impacts:
        return first_stage_query(query_impacts, spec, filters=filters, extra_should=extra)
    body: dict[str, Any] = {"should": extra, "minimum_should_match": 1}
    if filters:
        body["filter"] = list(filters)
    return {"bool": body}


def _known(stage: dict[str, dict[str, float]], doc_id: str) -> dict[str, float]:
    return {name: scores[doc_id] for name, scores in stage.items() if doc_id in scores}


def _source_filter(source: Sequence[str] | bool | None, spec: FieldSpec) -> Any:
    if source is None or source is False:
        return False
    if source is True:
        return {"excludes": [f for f in (spec.colbert_field, spec.splade_field, spec.packed_field) if f]}
    return list(source)


def _merge_source(source_filter: Any, fields: list[str]) -> Any:
    if not fields:
        return source_filter
    if source_filter is False:
        return fields
    if isinstance(source_filter, dict):
        # "all but the vectors" plus the vectors: fetch everything but the SPLADE impacts.
        return {"excludes": [f for f in source_filter["excludes"] if f not in fields]}
    return list(dict.fromkeys([*source_filter, *fields]))


def _strip_source(src: dict[str, Any], source_filter: Any, spec: FieldSpec) -> dict[str, Any] | None:
    if source_filter is False:
        return None
    if isinstance(source_filter, list) and spec.colbert_field not in source_filter:
        src.pop(spec.colbert_field, None)
    return src


def _vector_source_field(spec: FieldSpec) -> str:
    """Where the client reads token vectors: the packed copy, else the nested objects."""
    return spec.packed_field or spec.colbert_field


def _source_vectors(src: Mapping[str, Any], spec: FieldSpec) -> np.ndarray:
    """A document's token vectors from its _source, as stored: float32 (n, dim) or, for bit, packed uint8.

    Byte vectors are dequantised (int8 / 127). The packed field is preferred; documents written
    without it (older ingests, other writers) fall back to the nested JSON numbers.
    """
    packed = src.get(spec.packed_field) if spec.packed_field else None
    if isinstance(packed, str):
        width = spec.colbert_dim // 8 if spec.element_type == "bit" else spec.colbert_dim
        stored = unpack_token_vectors(packed, width, spec.element_type)
        return dequantize_int8(stored) if spec.element_type == "byte" else stored
    return _doc_vectors(src.get(spec.colbert_field) or [], spec)


def _doc_vectors(nested: list[Mapping[str, Any]], spec: FieldSpec) -> np.ndarray:
    rows = [t[spec.vector_field] for t in nested if isinstance(t, Mapping) and spec.vector_field in t]
    if spec.element_type == "float":
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), spec.colbert_dim)
    if spec.element_type == "byte":
        return dequantize_int8(np.asarray(rows, dtype=np.int8).reshape(len(rows), spec.colbert_dim))
    # bit: packed bytes, stored as signed ints by the engines.
    return (
        np.asarray(rows, dtype=np.int16)
        .astype(np.int8)
        .view(np.uint8)
        .reshape(len(rows), spec.colbert_dim // 8)
    )


def _similarities(query_vectors: np.ndarray, doc_vectors: np.ndarray, spec: FieldSpec) -> np.ndarray:
    """(m, n) token similarities in the index's precision (bit: ``1 - 2 * hamming / dim``)."""
    if spec.element_type == "bit":
        q = np.unpackbits(quantize_bits(query_vectors), axis=1)[:, : spec.colbert_dim].astype(np.int32)
        d = np.unpackbits(doc_vectors, axis=1)[:, : spec.colbert_dim].astype(np.int32)
        agree = q @ d.T + (1 - q) @ (1 - d).T
        return (2.0 * agree - spec.colbert_dim) / spec.colbert_dim
    return query_vectors.astype(np.float32) @ doc_vectors.astype(np.float32).T


def _maxsim(query_vectors: np.ndarray, doc_vectors: np.ndarray, spec: FieldSpec) -> float:
    if len(doc_vectors) == 0 or len(query_vectors) == 0:
        return 0.0
    if spec.element_type == "bit":
        return hamming_maxsim(quantize_bits(query_vectors), doc_vectors, spec.colbert_dim)
    return float(_similarities(query_vectors, doc_vectors, spec).max(axis=1).sum())


def _safe_tokens(encoder: Any, text: str, *, is_query: bool) -> list[str]:
    try:
        return list(encoder.explain(text, is_query=is_query).colbert_tokens)
    except InvalidInputError:
        return []


class AsyncSearchClient:
    """The asyncio face of :class:`SearchClient`: same arguments, ``await client.search(...)``.

    Encoding is CPU work and the engine clients are synchronous, so each search runs on a bounded
    thread pool (``max_workers``, default: cores + 4) and the event loop never blocks.
    """

    def __init__(
        self, index: str, model: Any = None, *, max_workers: int | None = None, **kwargs: Any
    ) -> None:
        self._sync = SearchClient(index, model, **kwargs)
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or (os.cpu_count() or 1) + 4, thread_name_prefix="colsplade-search"
        )

    @property
    def sync(self) -> SearchClient:
        return self._sync

    async def search(self, query: str, **kwargs: Any) -> SearchResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._sync.search, query, **kwargs))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._sync.close()

    async def __aenter__(self) -> AsyncSearchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
