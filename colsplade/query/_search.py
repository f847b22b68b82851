"""One search in flight: its checked arguments, its sub-searches, one round trip, the combine step.

A search is a list of sub-searches plus a combine step. The sub-searches go to the engine together
(one request: a lone ``_search``, or one ``_msearch`` when there are several, as for the hybrid's BM25
and SPLADE lists); each asks for its window's token data and the page's ``_source`` along with its
hits, so the combine step (reciprocal rank fusion of the lists, MaxSim over the union, fusion with the
first-stage scores) runs in the client without a second fetch by id. Only two paths take a second
request: the in-engine rescore of a hybrid by rank (the rescore needs the fused ids) and ``explain``.

Nothing here reaches back into :class:`~colsplade.query.SearchClient`: a :class:`_Search` is handed the
engine client, the index's field spec and the token reader (and, for ``explain``, the encoder).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from colsplade._types import HYBRID_MODES, HybridMode, RerankMode
from colsplade.engines import EngineClient
from colsplade.exceptions import InvalidInputError, PartialResultError
from colsplade.mappings import FieldSpec, TokenReader
from colsplade.query._dsl import (
    SparsePruning,
    bm25_clause,
    candidates_query,
    maxsim_rescore,
    nested_knn_query,
    rrf_fuse,
    search_body,
    source_filter,
    sparse_rescore,
    token_fetch,
)
from colsplade.query._explain import explain_hits
from colsplade.query._types import Hit, SearchResult, ShardStats
from colsplade.scoring import DEFAULT_FUSION_WEIGHTS, FUSION_METHODS, fuse_scores

logger = logging.getLogger("colsplade.query._client")  # one logger name for the query client's warnings


@dataclass(frozen=True)
class _SearchArgs:
    """A search's checked arguments and resolved rerank path (``mode``: engine / client / none)."""

    k: int
    offset: int
    window: int
    mode: RerankMode
    weight: float
    filters: list[Mapping[str, Any]]
    knn_k: int | None
    bm25_fields: list[str] | None
    hybrid: HybridMode
    bm25_weight: float
    source: Any
    highlight: list[str] | None
    strict: bool
    fusion: str | None = None
    fusion_weight: float = 0.5
    splade: bool = True
    sparse_pruning: SparsePruning | None = None

    @classmethod
    def check(
        cls,
        *,
        index: str,
        spec: FieldSpec,
        mode: RerankMode,
        default_window: int,
        default_weight: float,
        default_strict: bool,
        default_pruning: SparsePruning | None = None,
        **a: Any,
    ) -> _SearchArgs:
        """Check :meth:`SearchClient.search`'s arguments (``a``) against the index; raise
        :class:`InvalidInputError` with what to change."""
        window = a["window"] or default_window
        weight = default_weight if a["first_stage_weight"] is None else float(a["first_stage_weight"])
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
        if fusion is not None and mode != "client":
            raise InvalidInputError(
                f"fusion={fusion!r} fuses scores in the client's rerank; rerank={mode!r} cannot "
                "(use rerank='client' or 'auto', or fusion='none')"
            )
        filters = a["filters"]
        if isinstance(filters, Mapping):
            filters = [filters]
        pruning = default_pruning if a.get("sparse_pruning") is None else a["sparse_pruning"]
        if pruning is not None and not isinstance(pruning, SparsePruning):
            raise InvalidInputError(f"sparse_pruning must be a SparsePruning, got {type(pruning).__name__}")
        if pruning is not None and pruning.engine and spec.splade_type != "sparse_vector":
            raise InvalidInputError(
                f"engine-side pruning needs Elasticsearch's sparse_vector field; index {index!r} has "
                f"{spec.splade_type}: prune in the client (SparsePruning(top_k=..., weight_ratio=...))"
            )
        if a["knn_k"] and not spec.nested_vectors:
            raise InvalidInputError(
                f"knn_k needs nested token vectors, and index {index!r} has only the compact token "
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
            strict=default_strict if a["strict"] is None else bool(a["strict"]),
            fusion=fusion,
            fusion_weight=fusion_weight,
            splade=bool(a["splade"]),
            sparse_pruning=pruning,
        )

    @property
    def needs_query_vectors(self) -> bool:
        """Whether the search reads the query's ColBERT vectors: to rerank, or for token-kNN candidates."""
        return self.mode != "none" or bool(self.knn_k)

    @property
    def needs_vectors_only_to_rerank(self) -> bool:
        """Whether the candidates need only the query text (BM25 lists reranked in the client): the
        query's token vectors are needed only once the window is back."""
        return self.mode == "client" and bool(self.bm25_fields) and not self.knn_k and not self.splade

    @property
    def by_rank(self) -> bool:
        """Whether BM25 and SPLADE are separate lists fused by reciprocal rank (else one bool query)."""
        return bool(self.bm25_fields) and self.hybrid == "rrf"


@dataclass
class _Query:
    """What the search was asked: the checked text and its encodings."""

    text: str
    impacts: dict[str, float]  # SPLADE terms the first stage uses (pruned to the client's rerank_terms)
    all_impacts: dict[str, float]  # every SPLADE term of the query (reported, explained)
    vectors: np.ndarray | None  # (m, dim) float32 ColBERT query vectors (None: still being encoded, or
    # not encoded at all: a plan that neither reranks nor retrieves by token kNN needs none)

    @property
    def colbert(self) -> np.ndarray:
        """The (m, dim) ColBERT query vectors, once encoded (a search that overlaps the encoding with
        its first stage fills them in before the rerank)."""
        if self.vectors is None:
            raise RuntimeError(
                "the query's ColBERT vectors were read before the query was encoded, or by a plan that "
                "asked for none (needs_query_vectors)"
            )
        return self.vectors


@dataclass
class _SubSearch:
    """One candidate list: its name (the stage score it yields) and its request body."""

    name: str
    body: dict[str, Any]
    hits: list[dict[str, Any]] = field(default_factory=list)


class _Search:
    """One search in flight: builds its sub-searches, sends them in one round trip, combines the lists.

    ``engine``: the engine client; ``index``; ``spec``: the index's field layout; ``reader``: reads token
    data out of hits; ``encoder`` and ``text_fields``: only for ``explain``.
    """

    def __init__(
        self,
        engine: EngineClient,
        index: str,
        spec: FieldSpec,
        reader: TokenReader,
        args: _SearchArgs,
        query: _Query,
        *,
        started: float,
        plan_name: str | None,
        encoder: Any,
        text_fields: Sequence[str],
        encoding: Callable[[], tuple[dict[str, float], np.ndarray]] | None = None,
        background: Executor | None = None,
        compute: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.engine = engine
        self.index = index
        self.spec = spec
        self.reader = reader
        self.args = args
        self.query = query
        self.plan_name = plan_name
        self.encoder = encoder
        self.text_fields = tuple(text_fields)
        self.started = started
        # ``encoding``: the query's encoding, run while ``background`` waits on the engine
        self.encoding = encoding
        self.background = background
        # held around the CPU-bound rerank (the client's ``compute_slots``)
        self.compute = compute if compute is not None else contextlib.nullcontext()
        self.timings = {
            "encode": 0.0 if encoding else (time.perf_counter() - started) * 1000,
            "engine": 0.0,
            "rerank": 0.0,
        }
        self.stage: dict[str, dict[str, float]] = {}
        self.shards: ShardStats | None = None
        self.round_trips = 0

    # -- the engine ------------------------------------------------------------------------------

    def send(self, subs: Sequence[_SubSearch]) -> None:
        """All sub-searches in one request (``_search`` for one, ``_msearch`` for several)."""
        t = time.perf_counter()
        try:
            if len(subs) == 1:
                answers = [self.engine.search(self.index, subs[0].body)]
            else:
                answers = self.engine.msearch(self.index, [s.body for s in subs])
        finally:
            self.round_trips += 1
            self.timings["engine"] += (time.perf_counter() - t) * 1000
        for sub, answer in zip(subs, answers, strict=True):
            self.saw(answer)
            sub.hits = answer["hits"]["hits"]

    def send_while_encoding(self, subs: Sequence[_SubSearch]) -> None:
        """:meth:`send` on the ``background`` executor while this thread runs ``encoding`` (the query's
        vectors land in ``self.query``); an error of either is raised once both are done."""
        assert self.encoding is not None and self.background is not None
        answered = self.background.submit(self.send, subs)
        t = time.perf_counter()
        try:
            _, self.query.vectors = self.encoding()
        finally:
            self.timings["encode"] = (time.perf_counter() - t) * 1000
            wait([answered])
        answered.result()

    def fetch(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """One more request (hybrid engine rescore, explain): its hits."""
        sub = _SubSearch("fetch", body)
        self.send([sub])
        return sub.hits

    def saw(self, answer: Mapping[str, Any]) -> None:
        """Keep the least complete shard counts of the search's answers; a strict search stops at a partial one."""
        shards = ShardStats.from_answer(answer)
        if shards is None:
            return
        self.shards = shards.worst(self.shards)
        if shards.partial:
            if self.args.strict:
                raise PartialResultError(self.index, shards.total, shards.successful, shards.failures, shards)
            logger.warning(
                "search of %s answered by %d of %d shards (%s); the result is flagged partial",
                self.index,
                shards.successful,
                shards.total,
                "; ".join(shards.failures[:3]) or ("timed out" if shards.timed_out else "no reason given"),
            )

    # -- the plan --------------------------------------------------------------------------------

    def has_candidates(self) -> bool:
        return bool(self.query.impacts) or bool(self.args.knn_k) or bool(self.args.bm25_fields)

    def extra_candidates(self) -> list[dict[str, Any]]:
        """Candidate clauses summed into the SPLADE query: nested token kNN, BM25 (``hybrid='sum'``)."""
        extra: list[dict[str, Any]] = []
        args = self.args
        if args.knn_k:
            engine = self.engine.engine
            clauses = [nested_knn_query(engine, q, self.spec, k=args.knn_k) for q in self.query.colbert]
            extra.append({"bool": {"should": clauses}})
        if args.bm25_fields and args.hybrid == "sum":
            extra.append(bm25_clause(self.query.text, args.bm25_fields, boost=args.bm25_weight))
        return extra

    def first_stage(self) -> dict[str, Any]:
        """The one bool query of every candidate source but a BM25 list fused by rank."""
        return candidates_query(
            self.query.impacts,
            self.spec,
            self.args.filters,
            self.extra_candidates(),
            self.args.sparse_pruning,
        )

    def candidate_lists(self, size: int, request: Mapping[str, Any]) -> list[_SubSearch]:
        """The sub-searches of the plan, each of ``size`` hits with the ``request`` keys (fetch, source):
        one ``first_stage`` list, or the ``first_stage`` (SPLADE, kNN) and ``bm25`` lists of a hybrid by rank."""
        args = self.args
        lists = []
        if not args.by_rank or self.query.impacts or args.knn_k:
            body = self.body(self.first_stage(), size, request, rescore=self.exact_sparse(size))
            lists.append(_SubSearch("first_stage", body))
        if args.by_rank:
            assert args.bm25_fields
            bm25 = bm25_clause(self.query.text, args.bm25_fields, filters=args.filters)
            lists.append(_SubSearch("bm25", self.body(bm25, size, request)))
        return lists

    def exact_sparse(self, size: int) -> list[dict[str, Any]]:
        """The rescore that restores a pruned SPLADE query's exact scores on its top hits (none when the
        pruning asks for none or the query has no SPLADE terms)."""
        if not self.query.impacts:
            return []
        rescore = sparse_rescore(self.query.impacts, self.spec, pruning=self.args.sparse_pruning, size=size)
        return [] if rescore is None else [rescore]

    def body(
        self,
        query: Mapping[str, Any],
        size: int,
        request: Mapping[str, Any],
        rescore: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        return search_body(query, size, highlight=self.args.highlight, rescore=rescore, **request)

    def run(self, explain: bool) -> SearchResult:
        """Send the sub-searches, combine them, page: the search's result."""
        args = self.args
        if not self.has_candidates():
            reason = (
                "no first-stage candidates: the query yields no SPLADE term (all pruned)"
                if args.splade
                else "no first-stage candidates: splade=False and neither knn_k nor bm25_fields"
            )
            return self.finish([], 0, explain=False, reason=reason)
        if args.mode == "client":
            fetch = token_fetch(self.spec, args.source)
            subs = self.candidate_lists(args.window, {"fetch": fetch, "source": fetch["_source"]})
            if self.encoding is not None:
                self.send_while_encoding(subs)
            else:
                self.send(subs)
            with self.compute:
                hits, candidates = self.client_rerank(self.union(subs))
        elif args.mode == "engine":
            hits, candidates = self.engine_rerank()
        else:
            size = args.window if args.by_rank else args.offset + args.k
            subs = self.candidate_lists(size, {"source": args.source})
            self.send(subs)
            hits, candidates = self.first_stage_only(self.union(subs))
        return self.finish(hits, candidates, explain=explain)

    def union(self, subs: Sequence[_SubSearch]) -> list[dict[str, Any]]:
        """The window's candidates in first-stage order: the one list as the engine ranked it, or the
        lists of a hybrid fused by reciprocal rank (top ``window``; stage scores ``first_stage`` (SPLADE),
        ``bm25`` and ``rrf`` kept). A hybrid's hits score 0 as first stage: rank fusion has no score
        scale to add to MaxSim."""
        if not self.args.by_rank:
            return subs[0].hits
        by_id: dict[str, dict[str, Any]] = {}
        for sub in subs:
            self.stage[sub.name] = {h["_id"]: float(h["_score"] or 0.0) for h in sub.hits}
            for h in sub.hits:
                by_id.setdefault(h["_id"], h)
        fused = rrf_fuse([[h["_id"] for h in sub.hits] for sub in subs])[: self.args.window]
        self.stage["rrf"] = dict(fused)
        return [{**by_id[doc_id], "_score": 0.0} for doc_id, _ in fused]

    # -- combine ---------------------------------------------------------------------------------

    def client_rerank(self, raw: list[dict[str, Any]]) -> tuple[list[Hit], int]:
        """MaxSim over the window's token data (decoded at once), fused with the first-stage scores.

        A hit whose token data is missing or corrupt keeps its first-stage score and ranks after the
        reranked hits (logged with its id), so one bad document never fails the query.
        """
        args = self.args
        t0 = time.perf_counter()
        maxsims, ok = self.reader.maxsim(self.query.colbert, raw)
        first_scores = np.array([float(h["_score"] or 0.0) for h in raw], dtype=np.float32)
        reranked = np.flatnonzero(ok)
        if args.fusion is not None:
            scores = np.zeros(len(raw), dtype=np.float64)
            columns = self.fusion_columns(raw, first_scores)
            weights = {name: args.fusion_weight for name in columns}
            scores[reranked] = fuse_scores(
                {"maxsim": maxsims[reranked], **{n: c[reranked] for n, c in columns.items()}},
                {"maxsim": 1.0, **weights},
                args.fusion,
            )
        else:
            scores = maxsims + args.weight * first_scores
        # stable: equal scores keep the first-stage order, as the engine's rescore does
        order = [*reranked[np.argsort(-scores[reranked], kind="stable")], *np.flatnonzero(~ok)]
        self.timings["rerank"] = (time.perf_counter() - t0) * 1000
        hits = []
        for i in order[args.offset : args.offset + args.k]:
            h = raw[i]
            if ok[i]:
                score = float(scores[i])
                stages = {
                    "first_stage": float(first_scores[i]),
                    **self.known(h["_id"]),
                    "maxsim": float(maxsims[i]),
                }
                if args.fusion is not None:
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
            splade = self.stage.get("first_stage", {})
            return {
                "bm25": np.array([self.stage["bm25"].get(d, np.nan) for d in ids], dtype=np.float64),
                "splade": np.array([splade.get(d, np.nan) for d in ids], dtype=np.float64),
            }
        args = self.args
        if args.bm25_fields and not args.splade and not args.knn_k:
            name = "bm25"
        elif args.splade and not args.bm25_fields and not args.knn_k:
            name = "splade"
        else:  # the sum of several sources' clauses
            name = "first_stage"
        return {name: first_scores.astype(np.float64)}

    def engine_rerank(self) -> tuple[list[Hit], int]:
        """Rescore in the engine (painless over the nested vectors): ``m + MaxSim`` per hit, in the first
        stage's request; a hybrid by rank first needs its fused ids (one more request)."""
        args = self.args
        first = self.first_stage()
        if args.by_rank:
            subs = self.candidate_lists(args.window, {"source": False})
            self.send(subs)
            ids = [h["_id"] for h in self.union(subs)]
            first = {"bool": {"filter": [{"ids": {"values": ids}}, *args.filters]}}
        rescore = maxsim_rescore(
            self.engine.engine,
            self.query.colbert,
            self.spec,
            window=args.window,
            first_stage_weight=args.weight,
        )
        # a pruned SPLADE first stage gets its exact scores back before MaxSim is added to them
        rescorers = [rescore] if args.by_rank else [*self.exact_sparse(args.window), rescore]
        body = search_body(
            first, args.offset + args.k, source=args.source, highlight=args.highlight, rescore=rescorers
        )
        m = len(self.query.colbert)
        hits = [
            Hit(
                id=h["_id"],
                score=float(h["_score"]) - m,
                # with w > 0 the engine returns only the sum, not its parts
                stage_scores={
                    "maxsim" if not args.weight else "fused": float(h["_score"]) - m,
                    **self.known(h["_id"]),
                },
                source=h.get("_source") if args.source is not False else None,
                highlight=h.get("highlight"),
            )
            for h in self.fetch(body)[args.offset : args.offset + args.k]
        ]
        # The engine reranks up to `window` candidates per shard; it does not say how many matched.
        return hits, args.window

    def first_stage_only(self, raw: list[dict[str, Any]]) -> tuple[list[Hit], int]:
        """No rerank: the page of the first stage (the hybrid's in reciprocal-rank order)."""
        args = self.args
        score_of = self.stage["rrf"] if args.by_rank else None
        hits = []
        for h in raw[args.offset : args.offset + args.k]:
            score = score_of[h["_id"]] if score_of is not None else float(h["_score"])
            stages = self.known(h["_id"]) if score_of is not None else {"first_stage": score}
            hits.append(self.hit(h, score, stages))
        return hits, len(raw)

    def known(self, doc_id: str) -> dict[str, float]:
        return {name: scores[doc_id] for name, scores in self.stage.items() if doc_id in scores}

    def hit(self, h: Mapping[str, Any], score: float, stages: dict[str, float]) -> Hit:
        source = None
        if self.args.source is not False:
            source = {k: v for k, v in (h.get("_source") or {}).items() if k not in self.spec.heavy_fields}
        return Hit(id=h["_id"], score=score, stage_scores=stages, source=source, highlight=h.get("highlight"))

    def finish(
        self, hits: list[Hit], candidates: int, *, explain: bool, reason: str | None = None
    ) -> SearchResult:
        if explain and hits:
            explain_hits(
                hits,
                self.fetch,
                reader=self.reader,
                spec=self.spec,
                encoder=self.encoder,
                text_fields=self.text_fields,
                query=self.query.text,
                query_impacts=self.query.all_impacts,
                query_vectors=self.query.colbert,
                source_with_vectors=self.engine.capabilities().source_with_vectors,
            )
        self.timings["total"] = (time.perf_counter() - self.started) * 1000
        return SearchResult(
            query=self.query.text,
            hits=hits,
            rerank=self.args.mode,
            window=self.args.window,
            candidates=candidates,
            timings_ms={k: round(v, 3) for k, v in self.timings.items()},
            query_terms=self.query.all_impacts,
            reason=reason,
            shards=self.shards,
            plan=self.plan_name,
            round_trips=self.round_trips,
        )
