"""SearchClient: encode once, SPLADE on the inverted index, MaxSim rerank in the engine or the client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast

import numpy as np

from colsplade._types import RERANK_MODES, HybridMode, RerankMode
from colsplade.config import Settings
from colsplade.engines import EngineClient, connect_default
from colsplade.exceptions import (
    CodecMismatchError,
    InvalidInputError,
    ModelDirectoryError,
    ModelVersionMismatchError,
)
from colsplade.mappings import FieldSpec, TokenReader, codec_from_meta, model_from_meta, spec_from_meta
from colsplade.query._dsl import SparsePruning, top_terms
from colsplade.query._plans import (
    DEFAULT_PLAN,
    FALLBACK_PLAN,
    QUERY_PLANS,
    plan_arguments,
    plan_needs_text_fields,
)
from colsplade.query._search import _Query, _Search, _SearchArgs
from colsplade.query._types import SearchResult

logger = logging.getLogger(__name__)

_DEFAULT_TEXT_FIELDS = ("title", "text")

__all__ = ["QUERY_ENCODER_OPTIONS", "AsyncSearchClient", "SearchClient", "model_identity"]

#: How a :class:`SearchClient` opens a model directory unless ``encoder_options`` say otherwise: one
#: intra-op thread per call and no spinning. A query is one sequence of ``max_query_length`` tokens; on 2
#: idle cores the ColBERT-only int8 query took 3.2 ms p50 this way against 3.4 ms with a thread per core
#: (``benchmarks/results/query_encode.json``), and concurrent callers, not the thread pool, use the cores.
QUERY_ENCODER_OPTIONS: dict[str, Any] = {"intra_op_threads": 1, "spin": False}

#: At most this many first-stage requests wait on the engine at once while their callers encode (they
#: mostly sleep on a socket; more concurrent callers queue here, as they would on the connection pool).
_BACKGROUND_THREADS = 32


def model_identity(encoders: Sequence[Any]) -> tuple[str, str]:
    """The (name, version) an index records for the encoder(s) that filled it.

    One model directory: its name and version; a SPLADE + ColBERT pair: both joined by ``+``.
    """
    configs = [e.config for e in encoders]
    return "+".join(c.name for c in configs), "+".join(str(c.version) for c in configs)


def _usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (a container pinned to 2
    of a host's 64 cores counts 2), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


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
            name the document tokens, and the BM25 fields of the plans that search BM25 (default: the
            ones ``colsplade upgrade`` recorded in the index's ``_meta``, else ``title`` and ``text``).
        max_query_chars: longer queries are refused (the model reads at most its max query length anyway).
        max_query_length: read queries up to this many tokens (default: the model's ``max_query_length``
            in ``colsplade.json``, cut with a warning past it); at most the backbone's position limit, else
            :class:`InvalidInputError`. With ColBERT query augmentation every query is padded with [MASK]
            to this length: a longer limit costs encode time and MaxSim work on every query.
        plan: the named query plan of a search that names none and spells out no candidate source
            (default: the plan ``colsplade upgrade`` measured best and recorded in the index's ``_meta``,
            else :data:`~colsplade.query.DEFAULT_PLAN`, the engine's BM25 candidates ordered by MaxSim
            fused with BM25's score; see :data:`~colsplade.query.QUERY_PLANS`). A plan that needs
            BM25 falls back to :data:`~colsplade.query.FALLBACK_PLAN` on an index without text fields.
        encoder_options: passed to :func:`colsplade.encoders.load_encoder` (variant, threads, ...) when
            ``model`` is a directory; :data:`QUERY_ENCODER_OPTIONS` are the defaults (one ONNX Runtime
            thread per call, no spinning: a query is one short sequence, and concurrent callers are the
            parallelism).
        strict: default of :meth:`search`'s ``strict``: raise :class:`PartialResultError` when the engine
            answers from only some shards (a node down, a shard unassigned), instead of returning the
            result flagged ``partial`` (the default).
        sparse_pruning: default of :meth:`search`'s ``sparse_pruning``: drop light SPLADE query terms from
            the first stage (:class:`~colsplade.query.SparsePruning`: top-k / weight ratio in the client,
            Elasticsearch's ``pruning_config`` in the engine); None: every term.
        overlap_encoding: for a plan whose candidates need only the query text (BM25 reranked by MaxSim in
            the client, the default plan), send the engine request first and encode the query while the
            engine answers (a background thread waits on the engine; still one round trip). False: encode,
            then send.
        compute_slots: how many searches of this client encode a query or rerank a window at the same
            time (default: the cores this process may run on + 1; None: no limit). More callers wait their turn for those
            CPU-bound steps; their engine round trips are not limited. Measured with 16 threads sharing a
            client on 2 cores (Elasticsearch on the same cores): 3 slots gave 120-138 queries/s against
            113-119 without a limit, as the threads' interleaved numpy and ONNX Runtime work no longer
            thrashed the cores; with 4 threads or one, the same as no limit. 2 slots lost 5-10 % at 4 threads.

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
        rerank: RerankMode = "auto",
        window: int = 100,
        first_stage_weight: float = 0.0,
        rerank_terms: int | None = None,
        text_fields: Sequence[str] | None = None,
        max_query_chars: int = 4096,
        max_query_length: int | None = None,
        plan: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        check_model_version: bool = True,
        strict: bool = False,
        sparse_pruning: SparsePruning | None = None,
        overlap_encoding: bool = True,
        compute_slots: int | None = _usable_cores() + 1,
    ) -> None:
        if rerank not in RERANK_MODES:
            raise InvalidInputError(f"rerank must be one of {', '.join(RERANK_MODES)}, got {rerank!r}")
        if window < 1:
            raise InvalidInputError(f"window must be >= 1, got {window}")
        if compute_slots is not None and compute_slots < 1:
            raise InvalidInputError(f"compute_slots must be >= 1 or None, got {compute_slots}")
        if plan is not None and plan not in QUERY_PLANS:
            raise InvalidInputError(f"unknown query plan {plan!r}; choose one of {', '.join(QUERY_PLANS)}")
        self.index = index
        self._plan = plan
        self._index_plan: str | None = None
        self._index_text_fields: tuple[str, ...] | None = None
        self.default_rerank = rerank
        self.window = window
        self.first_stage_weight = first_stage_weight
        if rerank_terms is not None and rerank_terms < 1:
            raise InvalidInputError(f"rerank_terms must be >= 1 or None, got {rerank_terms}")
        self.rerank_terms = rerank_terms
        self.sparse_pruning = sparse_pruning
        self._text_fields = tuple(text_fields) if text_fields is not None else None
        self.max_query_chars = max_query_chars
        self.check_model_version = check_model_version
        self.strict = strict
        from colsplade.encoders import as_encoder

        options = {**QUERY_ENCODER_OPTIONS, **(encoder_options or {})}
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
        # colsplade's encoders can leave the SPLADE query side out (a caller's own encoder may not)
        encode_parameters = inspect.signature(self._encoder.encode_queries).parameters
        self._skips_sparse = "sparse" in encode_parameters
        # ... and the ColBERT side (an inference-free SPLADE query is then a tokenizer call)
        self._skips_vectors = "vectors" in encode_parameters
        self._owns_client = client is None
        self.client = client if client is not None else connect_default(settings)
        self._lock = threading.Lock()
        self._spec: FieldSpec | None = None
        self._reader: TokenReader | None = None
        self._bm25_fields: tuple[str, ...] = ()
        self._pool: ThreadPoolExecutor | None = None
        #: Encode the query while the engine runs a first stage that needs only its text (BM25 candidates
        #: reranked by MaxSim, as the default plan does): the two overlap on separate cores.
        self.overlap_encoding = overlap_encoding
        #: held while a search encodes its query or reranks its window (``compute_slots``)
        self._compute: contextlib.AbstractContextManager[Any] = (
            threading.BoundedSemaphore(compute_slots)
            if compute_slots is not None
            else contextlib.nullcontext()
        )

    @property
    def plan(self) -> str:
        """The plan of a search that names none: the caller's, the index's recorded one, or the default."""
        if self._plan is not None:
            return self._plan
        _ = self.spec
        return self._index_plan or DEFAULT_PLAN

    @property
    def text_fields(self) -> tuple[str, ...]:
        """The text fields BM25 searches and ``explain`` reads: the caller's, the index's, or title + text."""
        if self._text_fields is not None:
            return self._text_fields
        _ = self.spec
        return self._index_text_fields or _DEFAULT_TEXT_FIELDS

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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
        index_model = model_from_meta(mapping.get("_meta")) or (None, None)
        ours = (str(self.model_name), str(self.model_version))
        mismatch = index_model[0] is not None and index_model != ours
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
        colbert = self._encoder.config.colbert
        if colbert is None:
            raise ModelDirectoryError(
                f"{self.model_name} has no ColBERT side; SearchClient needs a joint model or an EncoderPair"
            )
        dim = colbert.dim
        if spec.element_type != "bit" and spec.colbert_dim != dim:
            raise InvalidInputError(
                f"index {self.index!r} holds {spec.colbert_dim}-dimensional token vectors, the model makes {dim}"
            )
        # what `colsplade upgrade` measured best on this index (a plan of another release is ignored)
        defaults = meta.get("search") or {}
        if defaults.get("plan") in QUERY_PLANS:
            self._index_plan = str(defaults["plan"])
        if defaults.get("text_fields"):
            self._index_text_fields = tuple(str(f) for f in defaults["text_fields"])
        text_fields = self._text_fields or self._index_text_fields or _DEFAULT_TEXT_FIELDS
        # the text fields BM25 can search: the rest of text_fields may be absent or keyword-only here
        self._bm25_fields = tuple(
            f for f in text_fields if (properties.get(f) or {}).get("type") in ("text", "match_only_text")
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

    def resolve_rerank(self, rerank: RerankMode | None = None) -> RerankMode:
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

    def _encode_checked(
        self, query: str, *, sparse: bool = True, vectors: bool = True
    ) -> tuple[dict[str, float], np.ndarray]:
        """The query's SPLADE terms and its (m, dim) ColBERT vectors; ``sparse=False`` / ``vectors=False``
        leave a side out where the encoder can (its dicts empty, its arrays (0, dim))."""
        # colsplade's joint encoders and pairs take sparse= and vectors= (checked once in __init__); the
        # protocol does not
        options: dict[str, bool] = {}
        if not sparse and self._skips_sparse:
            options["sparse"] = False
        elif not vectors and self._skips_vectors:
            options["vectors"] = False
        with self._compute:
            encoding = cast(Any, self._encoder).encode_queries([query], **options)
        from colsplade.encoders import JointEncoding  # loaded by as_encoder in __init__ already

        if not isinstance(encoding, JointEncoding):
            raise ModelDirectoryError(
                f"the query encoder returned {type(encoding).__name__}, not a JointEncoding: SearchClient "
                "needs both a SPLADE and a ColBERT side (a joint model or an EncoderPair)"
            )
        return encoding.splade[0], np.asarray(encoding.colbert[0], dtype=np.float32)

    # -- search ----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        offset: int = 0,
        window: int | None = None,
        rerank: RerankMode | None = None,
        filters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        knn_k: int | None = None,
        bm25_fields: Sequence[str] | None = None,
        hybrid: HybridMode | None = None,
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
        sparse_pruning: SparsePruning | None = None,
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

            sparse_pruning: drop light SPLADE query terms from the first stage (default: the client's; see
                :class:`~colsplade.query.SparsePruning`).

        A query with no candidate source left (every SPLADE term pruned, say a query of emoji, and no
        ``knn_k`` / ``bm25_fields``) returns an empty result whose ``reason`` says so.
        """
        started = time.perf_counter()
        plan_name, splade, bm25_fields, hybrid, rerank, fusion = self._plan_sources(
            plan, splade, bm25_fields, knn_k, hybrid, rerank, fusion
        )
        spec = self.spec
        args = _SearchArgs.check(
            index=self.index,
            spec=spec,
            mode=self.resolve_rerank(rerank),
            default_window=self.window,
            default_weight=self.first_stage_weight,
            default_strict=self.strict,
            default_pruning=self.sparse_pruning,
            sparse_pruning=sparse_pruning,
            k=k,
            offset=offset,
            window=window,
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
        return self._encode_and_run(self._check_query(query), args, splade, explain, started, plan_name)

    def _plan_sources(
        self,
        plan: str | None,
        splade: bool | None,
        bm25_fields: Sequence[str] | None,
        knn_k: int | None,
        hybrid: HybridMode | None,
        rerank: RerankMode | None,
        fusion: str | None,
    ) -> tuple[str | None, bool, Sequence[str] | None, HybridMode, RerankMode | None, str | None]:
        """The call's candidate sources, hybrid mode, rerank and fusion, with its plan's filled in:
        (plan name or None, splade, bm25_fields, hybrid, rerank, fusion)."""
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
        return plan_name, bool(splade), bm25_fields, hybrid, rerank, fusion

    def _encode_and_run(
        self, text: str, args: _SearchArgs, splade: bool, explain: bool, started: float, plan_name: str | None
    ) -> SearchResult:
        """Encode the query (or overlap its encoding with the engine's BM25 search) and run the plan."""
        if self.overlap_encoding and not splade and not explain and args.needs_vectors_only_to_rerank:
            # BM25 candidates need only the text: the engine searches while the query is encoded
            encoding = partial(self._encode_checked, text, sparse=False)
            return self._run(args, _Query(text, {}, {}, None), started, plan_name, explain, encoding)
        # the SPLADE query side runs only when the plan retrieves with it or explain reports its terms, the
        # ColBERT side only when the plan reranks, retrieves by token kNN or explain reports MaxSim
        vectors = args.needs_query_vectors or explain
        if splade or explain or vectors:
            query_impacts, query_vectors = self._encode_checked(
                text, sparse=splade or explain, vectors=vectors
            )
        else:  # BM25 alone, not reranked: the query text is all the engine needs
            query_impacts, query_vectors = {}, None
        stage_impacts = query_impacts if splade else {}
        if self.rerank_terms is not None and args.mode != "none":
            stage_impacts = top_terms(stage_impacts, self.rerank_terms)
        query_ = _Query(text, stage_impacts, query_impacts, query_vectors if vectors else None)
        return self._run(args, query_, started, plan_name, explain, None)

    def _run(
        self,
        args: _SearchArgs,
        query: _Query,
        started: float,
        plan_name: str | None,
        explain: bool,
        encoding: Any,
    ) -> SearchResult:
        run = _Search(
            self.client,
            self.index,
            self.spec,
            self._token_reader,
            args,
            query,
            started=started,
            plan_name=plan_name,
            encoder=self._encoder,
            text_fields=self.text_fields,
            encoding=encoding,
            background=self._background if encoding is not None else None,
            compute=self._compute,
        )
        return run.run(explain)

    @property
    def _background(self) -> ThreadPoolExecutor:
        """The threads that wait on the engine while the caller's thread encodes (made on first use)."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=_BACKGROUND_THREADS, thread_name_prefix="colsplade-first-stage"
                    )
        return self._pool


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
            max_workers=max_workers or _usable_cores() + 4, thread_name_prefix="colsplade-search"
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
