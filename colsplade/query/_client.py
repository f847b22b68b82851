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
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from colsplade.config import Settings
from colsplade.engines import EngineClient, connect_default
from colsplade.exceptions import (
    CodecMismatchError,
    InvalidInputError,
    ModelVersionMismatchError,
    PartialResultError,
)
from colsplade.mappings import FieldSpec, codec_from_meta, spec_from_meta, unescape_impacts
from colsplade.query._dsl import (
    candidates_query,
    maxsim_rescore,
    nested_knn_query,
    rrf_fuse,
    search_body,
    source_filter,
    token_fetch,
    top_terms,
)
from colsplade.query._plans import (
    DEFAULT_PLAN,
    FALLBACK_PLAN,
    QUERY_PLANS,
    plan_arguments,
    plan_needs_text_fields,
)
from colsplade.query._tokens import TokenReader
from colsplade.query._types import (
    Hit,
    HitExplanation,
    SearchResult,
    ShardStats,
    SparseTermContribution,
    TokenMatch,
)
from colsplade.scoring import DEFAULT_FUSION_WEIGHTS, FUSION_METHODS, fuse_scores

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
        rerank_terms: when the window is reranked, the first stage uses only the query's ``rerank_terms``
            heaviest SPLADE terms (None: all). Fewer posting lists make the first stage faster; MaxSim
            then orders the window, so the page loses little (see the README's measurements). Plans
            without a rerank always use every term.
        text_fields: source fields whose text was encoded (title + body ...), used by ``explain`` to
            name the document tokens, and the default BM25 fields of hybrid search.
        max_query_chars: longer queries are refused (the model reads at most its max query length anyway).
        max_query_length: read queries up to this many tokens (default: the model's ``max_query_length``
            in ``colsplade.json``, cut with a warning past it); at most the backbone's position limit, else
            :class:`InvalidInputError`. With ColBERT query augmentation every query is padded with [MASK]
            to this length: a longer limit costs encode time and MaxSim work on every query.
        plan: the named query plan of a search that names none and spells out no candidate source
            (default :data:`~colsplade.query.DEFAULT_PLAN`, BM25 + SPLADE candidates fused by reciprocal
            rank, ColBERT MaxSim rerank; see :data:`~colsplade.query.QUERY_PLANS`). A plan that needs
            BM25 falls back to :data:`~colsplade.query.FALLBACK_PLAN` on an index without text fields.
        encoder_options: passed to :func:`colsplade.encoders.load_encoder` (variant, threads, ...).
        strict: default of :meth:`search`'s ``strict``: raise :class:`PartialResultError` when the engine
            answers from only some shards (a node down, a shard unassigned), instead of returning the
            result flagged ``partial`` (the default).

    On a cluster, give ``settings`` every node's URL (``Settings(urls=[...])``, ``COLSPLADE_URL=a,b,c``): a
    request to a node that is down is retried on another one by the engine's client.
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
        rerank_terms: int | None = None,
        text_fields: Sequence[str] = ("title", "text"),
        max_query_chars: int = 4096,
        max_query_length: int | None = None,
        plan: str = DEFAULT_PLAN,
        encoder_options: Mapping[str, Any] | None = None,
        check_model_version: bool = True,
        strict: bool = False,
    ) -> None:
        if rerank not in RERANK_MODES:
            raise InvalidInputError(f"rerank must be one of {', '.join(RERANK_MODES)}, got {rerank!r}")
        if window < 1:
            raise InvalidInputError(f"window must be >= 1, got {window}")
        if plan not in QUERY_PLANS:
            raise InvalidInputError(f"unknown query plan {plan!r}; choose one of {', '.join(QUERY_PLANS)}")
        self.index = index
        self.plan = plan
        self.default_rerank = rerank
        self.window = window
        self.first_stage_weight = first_stage_weight
        if rerank_terms is not None and rerank_terms < 1:
            raise InvalidInputError(f"rerank_terms must be >= 1 or None, got {rerank_terms}")
        self.rerank_terms = rerank_terms
        self.text_fields = tuple(text_fields)
        self.max_query_chars = max_query_chars
        self.check_model_version = check_model_version
        self.strict = strict
        from colsplade.encoders import as_encoder

        options = dict(encoder_options or {})
        if max_query_length is not None:
            options["max_query_length"] = max_query_length
        # a pair gets the joint face (EncoderPair): the identity ingest recorded for it, one encode path
        self._encoder = as_encoder(
            model,
            splade_model=splade_model,
            colbert_model=colbert_model,
            joint=True,
            **options,
        )
        if max_query_length is not None and self._encoder.config.max_query_length != max_query_length:
            # an encoder opened by the caller keeps its own length; reopening it here would hide that
            raise InvalidInputError(
                f"max_query_length={max_query_length} cannot change an encoder opened with "
                f"{self._encoder.config.max_query_length}; open it with "
                f"load_encoder(..., max_query_length={max_query_length}) or pass a model directory"
            )
        self.model_name, self.model_version = model_identity([self._encoder])
        self._owns_client = client is None
        self.client = client if client is not None else connect_default(settings)
        self._lock = threading.Lock()
        self._spec: FieldSpec | None = None
        self._reader: TokenReader | None = None
        self._bm25_fields: tuple[str, ...] = ()

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
        """The index's field layout, read once from its ``_meta`` (model version and codec checked)."""
        if self._spec is None:
            with self._lock:
                if self._spec is None:
                    self._spec, self._reader = self._read_index()
        return self._spec

    @property
    def _token_reader(self) -> TokenReader:
        if self._reader is None:
            _ = self.spec
        assert self._reader is not None
        return self._reader

    def _read_index(self) -> tuple[FieldSpec, TokenReader]:
        mapping = self.client.get_mapping(self.index)
        properties = mapping.get("properties", {})
        meta = (mapping.get("_meta") or {}).get("colsplade") or {}
        spec = spec_from_meta(mapping.get("_meta"))
        store = (
            spec.codes_field
            if spec is not None and spec.codes_field
            else spec.colbert_field
            if spec
            else None
        )
        if spec is None or spec.splade_field not in properties or store not in properties:
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
        from colsplade.encoders import sparse_query_mode

        mode = sparse_query_mode(self._encoder.config)
        if self.check_model_version and mode is not None and spec.sparse_query != mode:
            # the documents' impacts were learnt against the other query side: its scores mean nothing here
            raise ModelVersionMismatchError(
                self.index,
                f"{index_model[0]} v{index_model[1]} ({spec.sparse_query} sparse queries)",
                f"{self.model_name} v{self.model_version} ({mode} sparse queries)",
            )
        dim = self._encoder.config.colbert.dim
        if spec.element_type != "bit" and spec.colbert_dim != dim:
            raise InvalidInputError(
                f"index {self.index!r} holds {spec.colbert_dim}-dimensional token vectors, the model makes {dim}"
            )
        # the text fields BM25 can search: the rest of text_fields may be absent or keyword-only here
        self._bm25_fields = tuple(
            f
            for f in self.text_fields
            if (properties.get(f) or {}).get("type") in ("text", "match_only_text")
        )
        return spec, TokenReader(spec, self._codec_for(spec, codec_from_meta(mapping.get("_meta"))))

    def resolve_plan(self, plan: str | None = None) -> str:
        """The named plan a search takes: ``plan`` (default: the client's), or :data:`FALLBACK_PLAN` when it
        needs BM25 and the index has none of the client's ``text_fields`` as a text field."""
        name = plan or self.plan
        if name not in QUERY_PLANS:
            raise InvalidInputError(f"unknown query plan {name!r}; choose one of {', '.join(QUERY_PLANS)}")
        _ = self.spec
        if plan_needs_text_fields(name) and not self._bm25_fields:
            if plan is not None and name == "bm25":
                raise InvalidInputError(
                    f"plan 'bm25' needs text fields; index {self.index!r} has none of {list(self.text_fields)}"
                )
            logger.debug(
                "index %s has no text field among %s: plan %s falls back to %s",
                self.index,
                list(self.text_fields),
                name,
                FALLBACK_PLAN,
            )
            return FALLBACK_PLAN
        return name

    def plan_arguments(self, plan: str | None = None) -> dict[str, Any]:
        """The :meth:`search` arguments of the (resolved) plan, BM25 fields set to the index's text fields."""
        return plan_arguments(self.resolve_plan(plan), self._bm25_fields)

    def _codec_for(self, spec: FieldSpec, index_codec: Mapping[str, Any] | None) -> Any:
        """The codec that decodes the index's blobs: the model's, and it must be the one the index records."""
        if spec.codes_field is None:
            return None
        from colsplade.encoders import codec_for_index, load_model_codec

        if not index_codec:
            own = load_model_codec(self._encoder)
            raise CodecMismatchError(
                self.index,
                None,
                own.hash if own else None,
                hint="the index records no token codec (nothing ingested yet?); ingest documents first",
            )
        return codec_for_index(self._encoder, self.index, index_codec)

    def resolve_rerank(self, rerank: str | None = None) -> str:
        """The rerank path a search takes: ``auto`` is the client path (numpy MaxSim over the compact
        blobs), except on an index with nested float vectors where the engine's painless can score them."""
        mode = rerank or self.default_rerank
        if mode not in RERANK_MODES:
            raise InvalidInputError(f"rerank must be one of {', '.join(RERANK_MODES)}, got {mode!r}")
        spec = self.spec
        caps = self.client.capabilities()
        can_engine = caps.in_engine_rerank and spec.nested_vectors and spec.element_type == "float"
        if mode == "engine" and not can_engine:
            raise InvalidInputError(
                f"in-engine rerank needs painless and nested float token vectors; this {self.client.engine} "
                f"{caps.version} index has painless={caps.painless}, nested_vectors={spec.nested_vectors}, "
                f"element_type={spec.element_type}; use rerank='client'"
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
        return self._encode_checked(self._check_query(query))

    def _encode_checked(self, query: str) -> tuple[dict[str, float], np.ndarray]:
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
        hybrid: str | None = None,
        bm25_weight: float = 1.0,
        first_stage_weight: float | None = None,
        source: Sequence[str] | bool | None = None,
        highlight: Sequence[str] | None = None,
        explain: bool = False,
        splade: bool | None = None,
        strict: bool | None = None,
        plan: str | None = None,
        fusion: str | None = None,
        fusion_weight: float | None = None,
    ) -> SearchResult:
        """Search the index: SPLADE first stage (+ optional kNN / BM25 candidates), MaxSim rerank, one page.

        Args:
            k, offset: the page inside the reranked window (``offset + k <= window``).
            window: candidates to rerank (default: the client's).
            rerank: ``auto`` / ``engine`` / ``client`` / ``none`` (default: the client's).
            filters: engine query-DSL clause(s) that restrict the candidates (not scored).
            knn_k: also take each query token's ``knn_k`` nearest document tokens (nested kNN) as
                candidates (needs the opt-in nested vector layout).
            bm25_fields: also take BM25 candidates from these text fields; ``hybrid`` fuses them with the
                SPLADE list by reciprocal rank (``rrf``) or by adding ``bm25_weight`` * BM25 scores (``sum``).
            first_stage_weight: w in ``score = MaxSim + w * first-stage score`` (default: the client's, 0:
                MaxSim alone). The first stage adds the lexical-expansion evidence MaxSim lacks; with
                ``hybrid="rrf"`` its score is constant and w has no effect.
            source: source fields to return (True: all but colsplade's impacts, vectors and codes).
            highlight: fields to highlight (engine highlighter, on the BM25 / match of the query text).
            explain: add each hit's SPLADE term shares and ColBERT token matches.
            splade: use the SPLADE clauses as candidates (False: only ``knn_k`` / ``bm25_fields`` candidates,
                e.g. ColBERT token-ANN retrieval).
            strict: raise :class:`PartialResultError` when a shard did not answer (default: the client's);
                otherwise such a result comes back with ``partial`` True and the engine's ``shards`` counts.

            plan: a named plan (:data:`~colsplade.query.QUERY_PLANS`) that sets ``splade``, ``bm25_fields``,
                ``hybrid``, ``rerank`` and ``fusion``; arguments given here win over it. Default: the client's plan,
                unless the call spells out a candidate source (``splade``, ``bm25_fields`` or ``knn_k``):
                then the sources are exactly those given (``splade`` defaults to True).

            fusion: keep the first stage's evidence in the rerank: ``zscore`` orders the window by
                ``z(MaxSim) + fusion_weight * z(source)`` for each first-stage source (BM25, SPLADE; each
                standardised over the window), ``rrf`` by reciprocal rank fusion of MaxSim's order and each
                source's (see :mod:`colsplade.scoring`). ``"none"`` turns a plan's fusion off. Needs the
                client rerank (``auto`` takes it). Hits carry ``fused`` and every source's score.
            fusion_weight: each first-stage source's weight against MaxSim's 1 (default
                :data:`~colsplade.scoring.DEFAULT_FUSION_WEIGHTS`: 0.5 for ``zscore``, fixed across corpora
                in advance; 1 for ``rrf``). A plan's fusion is dropped when the call asks for
                ``rerank="engine"`` or ``"none"``; an explicit ``fusion`` with those is refused.

        A query with no candidate source left (every SPLADE term pruned, say a query of emoji, and no
        ``knn_k`` / ``bm25_fields``) returns an empty result whose ``reason`` says so.
        """
        started = time.perf_counter()
        plan_name: str | None
        if plan is None and (splade is not None or bm25_fields is not None or knn_k is not None):
            plan_name, named = None, {}
        else:
            plan_name = self.resolve_plan(plan)
            named = plan_arguments(plan_name, self._bm25_fields)
        splade = named.get("splade", True) if splade is None else splade
        bm25_fields = named.get("bm25_fields") if bm25_fields is None else bm25_fields
        hybrid = hybrid or named.get("hybrid", "rrf")
        # a plan's "auto" rerank defers to the client's default (engine / client / none)
        if rerank is None and named.get("rerank") not in (None, "auto"):
            rerank = named["rerank"]
        if fusion is None:
            fusion = named.get("fusion")
            if rerank in ("engine", "none"):
                fusion = None  # the caller chose a rerank the plan's fusion cannot ride on
        if fusion == "none":
            fusion = None
        if fusion is not None and rerank in (None, "auto"):
            # the engine's rescore can only add raw scores; fusion standardises them over the window
            rerank = "client"
        checked = _Plan.check(
            self,
            k=k,
            offset=offset,
            window=window,
            rerank=rerank,
            filters=filters,
            knn_k=knn_k,
            bm25_fields=bm25_fields,
            hybrid=hybrid,
            bm25_weight=bm25_weight,
            first_stage_weight=first_stage_weight,
            source=source,
            highlight=highlight,
            strict=strict,
            fusion=fusion,
            fusion_weight=fusion_weight,
            splade=splade,
        )
        query = self._check_query(query)
        query_impacts, query_vectors = self._encode_checked(query)
        run = _Search(self, checked, query, query_impacts, query_vectors, started, plan_name)
        stage_impacts = query_impacts if splade else {}
        if self.rerank_terms is not None and checked.mode != "none":
            stage_impacts = top_terms(stage_impacts, self.rerank_terms)
        if not stage_impacts and not knn_k and not bm25_fields:
            reason = (
                "no first-stage candidates: the query yields no SPLADE term (all pruned)"
                if splade
                else "no first-stage candidates: splade=False and neither knn_k nor bm25_fields"
            )
            return run.finish([], 0, explain=False, reason=reason)
        first = candidates_query(stage_impacts, self.spec, checked.filters, run.extra_candidates())
        if bm25_fields and hybrid == "rrf":
            candidate_ids = run.rrf_candidates(first)
            if checked.mode == "none":
                fused = sorted(candidate_ids, key=lambda d: -run.stage["rrf"][d])
                hits = run.fetch_page(fused[checked.offset : checked.offset + checked.k], "rrf")
                return run.finish(hits, len(candidate_ids), explain=explain)
            first = {"bool": {"filter": [{"ids": {"values": candidate_ids}}, *checked.filters]}}
        if checked.mode == "engine":
            hits, candidates = run.engine_rerank(first)
        elif checked.mode == "client":
            hits, candidates = run.client_rerank(first)
        else:
            hits, candidates = run.first_stage_only(first)
        return run.finish(hits, candidates, explain=explain)

    # -- helpers ---------------------------------------------------------------------------------

    def _search(self, body: Mapping[str, Any], run: _Search) -> dict[str, Any]:
        t = time.perf_counter()
        answer = self.client.search(self.index, body)
        run.timings["engine"] += (time.perf_counter() - t) * 1000
        run.saw(answer)
        return answer

    def _explain(
        self,
        query: str,
        hits: list[Hit],
        query_impacts: dict[str, float],
        query_vectors: np.ndarray,
        run: _Search,
    ) -> None:
        spec = self.spec
        fields = [spec.splade_field, *self.text_fields]
        body = search_body(
            {"ids": {"values": [h.id for h in hits]}},
            len(hits),
            fetch=token_fetch(spec, fields),
            source=fields,
        )
        raw = self._search(body, run)["hits"]["hits"]
        docs = {h["_id"]: h for h in raw}
        tokens = self._token_reader.read(raw)
        query_tokens = _safe_tokens(self._encoder, query, is_query=True)
        for hit in hits:
            h = docs.get(hit.id, {})
            src = h.get("_source") or {}
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
                text = " ".join(str(src[f]) for f in self.text_fields if src.get(f))
                doc_tokens = _safe_tokens(self._encoder, text, is_query=False) if text else []
                sims = self._token_reader.similarities(query_vectors, doc_vectors)
                best = sims.argmax(axis=1)
                positions = [int(j) for j in best]
                if len(doc_tokens) != len(doc_vectors):
                    # pooled storage: name each match by its pooled vector's member token nearest the query's
                    found = _pooled_positions(
                        self._encoder, text, doc_vectors, query_vectors, best, len(doc_tokens)
                    )
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


@dataclass(frozen=True)
class _Plan:
    """A search's checked arguments and resolved rerank path."""

    k: int
    offset: int
    window: int
    mode: str
    weight: float
    filters: list[Mapping[str, Any]]
    knn_k: int | None
    bm25_fields: list[str] | None
    hybrid: str
    bm25_weight: float
    source: Any
    highlight: list[str] | None
    strict: bool
    fusion: str | None = None
    fusion_weight: float = 0.5
    splade: bool = True

    @classmethod
    def check(cls, client: SearchClient, **a: Any) -> _Plan:
        window = a["window"] or client.window
        weight = (
            client.first_stage_weight if a["first_stage_weight"] is None else float(a["first_stage_weight"])
        )
        k, offset = a["k"], a["offset"]
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInputError(f"first_stage_weight must be a finite number >= 0, got {weight}")
        if k < 1 or offset < 0:
            raise InvalidInputError(f"k must be >= 1 and offset >= 0, got k={k}, offset={offset}")
        if offset + k > window:
            raise InvalidInputError(
                f"offset + k = {offset + k} is past the rerank window ({window}); raise window= to page further"
            )
        if a["hybrid"] not in HYBRID_MODES:
            raise InvalidInputError(f"hybrid must be one of {', '.join(HYBRID_MODES)}, got {a['hybrid']!r}")
        fusion = a["fusion"]
        fusion_weight = (
            DEFAULT_FUSION_WEIGHTS.get(fusion or "zscore", 1.0)
            if a["fusion_weight"] is None
            else float(a["fusion_weight"])
        )
        if fusion is not None and fusion not in FUSION_METHODS:
            raise InvalidInputError(
                f"fusion must be one of {', '.join(FUSION_METHODS)} or 'none', got {fusion!r}"
            )
        if not math.isfinite(fusion_weight) or fusion_weight < 0:
            raise InvalidInputError(f"fusion_weight must be a finite number >= 0, got {fusion_weight}")
        mode = client.resolve_rerank(a["rerank"])
        if fusion is not None and mode != "client":
            raise InvalidInputError(
                f"fusion={fusion!r} fuses scores in the client's rerank; rerank={mode!r} cannot "
                "(use rerank='client' or 'auto', or fusion='none')"
            )
        filters = a["filters"]
        if isinstance(filters, Mapping):
            filters = [filters]
        spec = client.spec
        if a["knn_k"] and not spec.nested_vectors:
            raise InvalidInputError(
                f"knn_k needs nested token vectors, and index {client.index!r} has only the compact token "
                "store; create it with nested vectors (colsplade index create --nested-vectors) for token kNN"
            )
        return cls(
            k=k,
            offset=offset,
            window=window,
            mode=mode,
            weight=weight,
            filters=list(filters or []),
            knn_k=a["knn_k"],
            bm25_fields=list(a["bm25_fields"]) if a["bm25_fields"] else None,
            hybrid=a["hybrid"],
            bm25_weight=float(a["bm25_weight"]),
            source=source_filter(a["source"], spec),
            highlight=list(a["highlight"]) if a["highlight"] else None,
            strict=client.strict if a["strict"] is None else bool(a["strict"]),
            fusion=fusion,
            fusion_weight=fusion_weight,
            splade=bool(a["splade"]),
        )


class _Search:
    """One search in flight: its plan, query encodings, stage scores and timings."""

    def __init__(
        self,
        client: SearchClient,
        plan: _Plan,
        query: str,
        query_impacts: dict[str, float],
        query_vectors: np.ndarray,
        started: float,
        plan_name: str | None = None,
    ) -> None:
        self.client = client
        self.plan_name = plan_name
        self.spec = client.spec
        self.plan = plan
        self.query = query
        self.query_impacts = query_impacts
        self.query_vectors = query_vectors
        self.started = started
        self.timings = {"encode": (time.perf_counter() - started) * 1000, "engine": 0.0, "rerank": 0.0}
        self.stage: dict[str, dict[str, float]] = {}
        self.shards: ShardStats | None = None

    def search(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.client._search(body, self)["hits"]["hits"]

    def saw(self, answer: Mapping[str, Any]) -> None:
        """Keep the least complete shard counts of the search's answers; a strict search stops at a partial one."""
        shards = ShardStats.from_answer(answer)
        if shards is None:
            return
        self.shards = shards.worst(self.shards)
        if shards.partial:
            if self.plan.strict:
                raise PartialResultError(
                    self.client.index, shards.total, shards.successful, shards.failures, shards
                )
            logger.warning(
                "search of %s answered by %d of %d shards (%s); the result is flagged partial",
                self.client.index,
                shards.successful,
                shards.total,
                "; ".join(shards.failures[:3]) or ("timed out" if shards.timed_out else "no reason given"),
            )

    def extra_candidates(self) -> list[dict[str, Any]]:
        extra: list[dict[str, Any]] = []
        plan = self.plan
        if plan.knn_k:
            engine = self.client.client.engine
            clauses = [nested_knn_query(engine, q, self.spec, k=plan.knn_k) for q in self.query_vectors]
            extra.append({"bool": {"should": clauses}})
        if plan.bm25_fields and plan.hybrid == "sum":
            extra.append(
                {"multi_match": {"query": self.query, "fields": plan.bm25_fields, "boost": plan.bm25_weight}}
            )
        return extra

    def rrf_candidates(self, first: Mapping[str, Any]) -> list[str]:
        plan = self.plan
        bm25_clause = {"multi_match": {"query": self.query, "fields": plan.bm25_fields}}
        bm25_query = (
            {"bool": {"must": [bm25_clause], "filter": plan.filters}} if plan.filters else bm25_clause
        )
        sparse = self.search(search_body(first, plan.window))
        bm25 = self.search(search_body(bm25_query, plan.window))
        self.stage["first_stage"] = {h["_id"]: float(h["_score"]) for h in sparse}
        self.stage["bm25"] = {h["_id"]: float(h["_score"]) for h in bm25}
        fused = rrf_fuse([[h["_id"] for h in sparse], [h["_id"] for h in bm25]])[: plan.window]
        self.stage["rrf"] = dict(fused)
        return [doc_id for doc_id, _ in fused]

    def fetch_page(self, ids: list[str], score_stage: str) -> list[Hit]:
        if not ids:
            return []
        plan = self.plan
        body = search_body({"ids": {"values": ids}}, len(ids), source=plan.source, highlight=plan.highlight)
        found = {h["_id"]: h for h in self.search(body)}
        return [
            Hit(
                id=doc_id,
                score=self.stage[score_stage][doc_id],
                stage_scores=self.known(doc_id),
                source=found.get(doc_id, {}).get("_source") if plan.source is not False else None,
                highlight=found.get(doc_id, {}).get("highlight"),
            )
            for doc_id in ids
        ]

    def known(self, doc_id: str) -> dict[str, float]:
        return {name: scores[doc_id] for name, scores in self.stage.items() if doc_id in scores}

    def engine_rerank(self, first: Mapping[str, Any]) -> tuple[list[Hit], int]:
        """Rescore in the engine (painless over the nested vectors): ``m + MaxSim`` per hit."""
        plan = self.plan
        rescore = maxsim_rescore(
            self.client.client.engine,
            self.query_vectors,
            self.spec,
            window=plan.window,
            first_stage_weight=plan.weight,
        )
        body = search_body(
            first, plan.offset + plan.k, source=plan.source, highlight=plan.highlight, rescore=rescore
        )
        m = len(self.query_vectors)
        hits = [
            Hit(
                id=h["_id"],
                score=float(h["_score"]) - m,
                # with w > 0 the engine returns only the sum, not its parts
                stage_scores={
                    "maxsim" if not plan.weight else "fused": float(h["_score"]) - m,
                    **self.known(h["_id"]),
                },
                source=h.get("_source") if plan.source is not False else None,
                highlight=h.get("highlight"),
            )
            for h in self.search(body)[plan.offset : plan.offset + plan.k]
        ]
        # The engine reranks up to `window` candidates per shard; it does not say how many matched.
        return hits, plan.window

    def client_rerank(self, first: Mapping[str, Any]) -> tuple[list[Hit], int]:
        """Fetch the window's token blobs, decode them and MaxSim the whole window at once (numpy).

        A hit whose blob is missing or corrupt keeps its first-stage score and ranks after the reranked
        hits (logged with its id), so one bad document never fails the query.
        """
        plan = self.plan
        fetch = token_fetch(self.spec, plan.source)
        body = search_body(first, plan.window, fetch=fetch, source=fetch["_source"], highlight=plan.highlight)
        raw = self.search(body)
        t0 = time.perf_counter()
        maxsims, ok = self.client._token_reader.maxsim(self.query_vectors, raw)
        first_scores = np.array([float(h["_score"] or 0.0) for h in raw], dtype=np.float32)
        reranked = np.flatnonzero(ok)
        if plan.fusion is not None:
            scores = np.zeros(len(raw), dtype=np.float64)
            columns = self.fusion_columns(raw, first_scores)
            weights = {name: plan.fusion_weight for name in columns}
            fused = fuse_scores(
                {"maxsim": maxsims[reranked], **{n: c[reranked] for n, c in columns.items()}},
                {"maxsim": 1.0, **weights},
                plan.fusion,
            )
            scores[reranked] = fused
        else:
            scores = maxsims + plan.weight * first_scores
        # stable: equal scores keep the first-stage order, as the engine's rescore does
        order = [*reranked[np.argsort(-scores[reranked], kind="stable")], *np.flatnonzero(~ok)]
        self.timings["rerank"] = (time.perf_counter() - t0) * 1000
        hits = []
        for i in order[plan.offset : plan.offset + plan.k]:
            h = raw[i]
            if ok[i]:
                score = float(scores[i])
                stages = {
                    "first_stage": float(first_scores[i]),
                    **self.known(h["_id"]),
                    "maxsim": float(maxsims[i]),
                }
                if plan.fusion is not None:
                    stages["fused"] = score
            else:
                score = float(first_scores[i])
                stages = {**self.known(h["_id"]), "first_stage": score}
            hits.append(self.hit(h, score, stages))
        return hits, len(raw)

    def fusion_columns(
        self, raw: Sequence[Mapping[str, Any]], first_scores: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Each first-stage source's score of every window candidate, (n,) float64, NaN where that source
        did not return it: BM25 and SPLADE apart when their lists were fused by rank, else the one
        first-stage score under the name of what it measures."""
        ids = [h["_id"] for h in raw]
        if "bm25" in self.stage:  # hybrid by rank: each list kept its own scores
            return {
                "bm25": np.array([self.stage["bm25"].get(d, np.nan) for d in ids], dtype=np.float64),
                "splade": np.array([self.stage["first_stage"].get(d, np.nan) for d in ids], dtype=np.float64),
            }
        plan = self.plan
        if plan.bm25_fields and not plan.splade and not plan.knn_k:
            name = "bm25"
        elif plan.splade and not plan.bm25_fields and not plan.knn_k:
            name = "splade"
        else:  # the sum of several sources' clauses
            name = "first_stage"
        return {name: first_scores.astype(np.float64)}

    def first_stage_only(self, first: Mapping[str, Any]) -> tuple[list[Hit], int]:
        plan = self.plan
        raw = self.search(
            search_body(first, plan.offset + plan.k, source=plan.source, highlight=plan.highlight)
        )
        hits = [
            self.hit(h, float(h["_score"]), {**self.known(h["_id"]), "first_stage": float(h["_score"])})
            for h in raw[plan.offset : plan.offset + plan.k]
        ]
        return hits, len(raw)

    def hit(self, h: Mapping[str, Any], score: float, stages: dict[str, float]) -> Hit:
        source = None
        if self.plan.source is not False:
            source = {k: v for k, v in (h.get("_source") or {}).items() if k not in self.spec.heavy_fields}
        return Hit(id=h["_id"], score=score, stage_scores=stages, source=source, highlight=h.get("highlight"))

    def finish(
        self, hits: list[Hit], candidates: int, *, explain: bool, reason: str | None = None
    ) -> SearchResult:
        if explain and hits:
            self.client._explain(self.query, hits, self.query_impacts, self.query_vectors, self)
        self.timings["total"] = (time.perf_counter() - self.started) * 1000
        return SearchResult(
            query=self.query,
            hits=hits,
            rerank=self.plan.mode,
            window=self.plan.window,
            candidates=candidates,
            timings_ms={k: round(v, 3) for k, v in self.timings.items()},
            query_terms=self.query_impacts,
            reason=reason,
            shards=self.shards,
            plan=self.plan_name,
        )


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
