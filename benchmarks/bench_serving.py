"""Serving cost of the default layout (compact token store) and plan, both engines in one run.

Writes ``benchmarks/results/serving.json`` with the keys the compact-store issue reads:

    {"engines": {"elasticsearch": E, "opensearch": E}}, E = {"docs", "index_bytes_per_doc",
     "token_store_bytes_per_token", "query_encode_p50_ms", "rerank_stage_p50_ms",
     "plans": {"bm25", "splade", "rerank", "rerank_float_reference", "default",
               "hybrid(bm25+splade)+colbert(fused)", "splade+colbert(fused)"},
     "codec_fits", "qps", "qps_details",
     "ingest": {"encoder_only_docs_per_s", "end_to_end_docs_per_s", "max_rss_mb"}, "details"}

What it does, per engine:
1. encoder-only docs/s on the first ``--encoder-docs`` documents (the same ONNX encoder ingest uses);
   with ``--fresh-codec`` the model's codec is removed, so the first engine's ingest fits the default one
   (as a team's first ingest does) and the second engine's reuses it;
2. the real ``ingest()`` of the whole corpus into a fresh index (end-to-end docs/s, peak RSS sampled
   from /proc every 0.2 s), force-merged to one segment, store bytes per document;
3. the token store's own bytes: the store of a twin index holding the same documents without the
   blob, subtracted, divided by the documents' ColBERT tokens (before any pooling);
4. ``codes_storage`` variants (``stored``, ``doc_values``) as twins with the blob, for the fetch choice
   (``--skip-twins``: not built nor timed; ``details.lz4`` and ``details.codes_storage.stored`` /
   ``doc_values`` are then null);
5. the first ``--queries`` test queries, plans interleaved per query after warm-up: engine BM25
   (title + text), SPLADE top 10, SPLADE top ``window`` (the fetch-free baseline), SPLADE -> client
   MaxSim rerank at ``window`` from the blobs, and the same candidates reranked with the model's float
   vectors (kept aside during ingest: the quality reference);
6. in the same loop, the default plan (a ``SearchClient`` given no plan), its first stage alone without
   token data (the same plan with ``rerank="none"``: for ``bm25+colbert(fused)`` exactly plan ``bm25``),
   and the fused plans ``hybrid(bm25+splade)+colbert(fused)`` and ``splade+colbert(fused)``, each top 10
   at ``window``: ``plans[key] = {"plan", "p50_ms", "p95_ms", "ndcg@10", "round_trips"}`` (key
   ``default`` for the default plan, whose resolved name is ``plan``); ``round_trips`` is the MAX over the
   measured queries of ``SearchResult.round_trips`` (engine requests one search made), null where
   results do not carry it;
7. throughput after the loop (``--qps-queries`` searches, the queries cycled, 0: skipped, null): the
   default plan and engine BM25 by 1, 4 and 16 concurrent callers, sync (threads sharing one
   ``SearchClient``) and async (``AsyncSearchClient`` with as many workers, sharing the engine client):
   ``qps = {"default": {"1", "4", "16"}, "bm25": {...}}`` holds the sync QPS, ``qps_details =
   {"sync" | "async": {"default" | "bm25": {"1" | "4" | "16": {"qps", "p50_ms", "p95_ms"}}}}``;
8. ``codec_fits``, client-side only (no engine): the codec refitted ``--codec-fits`` times (seeds 0..n-1,
   0: skipped, null) on the corpus's kept float vectors with the index codec's settings; each query's
   SPLADE window (the float reference's) is reranked by MaxSim over the decoded blobs:
   ``{"fits": [{"seed", "ndcg@10", "bytes_per_token"}], "mean_ndcg@10", "spread_ndcg@10" (max - min),
   "std_ndcg@10" (sample), "float_ndcg@10", "mean_loss" (float - mean), "settings": {"n_centroids",
   "nbits", "pool_factor"}, "variants": {label: the same block}}``; ``bytes_per_token`` is the blobs'
   bytes (headers included) over their documents' tokens before pooling. ``--codec-variants
   "nbits=1,pool=2;nbits=2,pool=3,k=4096"`` adds a block per ``;``-separated label, its keys (``nbits``,
   ``pool``, ``k`` = n_centroids) replacing the index codec's. Each fit is a k-means on up to 2**18
   vectors: minutes on a small machine.

``rerank_stage_p50_ms`` (top level, default plan) = p50 over queries of (engine time of the plan's request -
engine time of its first stage without token data) + decode and MaxSim (+ fusion) time: fetch + decode +
MaxSim. ``plans.rerank.rerank_stage_p50_ms`` is the same for ``splade+colbert``. ``query_encode_p50_ms``
is the default plan's encode time in a client that encodes before it sends (``overlap_encoding=False``):
the encoder's cost. The default client encodes while the engine answers, sharing the cores with it; its
encode time is ``details.query_encode_overlapped_p50_ms`` and the serial client's whole search
``details.default_plan_serial_p50_ms`` (the ``splade+colbert`` encode:
``details.query_encode_p50_ms_splade_colbert``). Timed searches start once the engine runs no merge and
the CPU is idle (``details.settled``: seconds waited, CPU busy share), after ``WARM_QUERIES`` untimed
queries.

    python benchmarks/bench_serving.py --model MODEL_DIR --data scifact --queries 100
    # shorter: no twins, one codec fit, fewer throughput searches
    python benchmarks/bench_serving.py --model MODEL_DIR --skip-twins --codec-fits 1 --qps-queries 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, percentile, wait_until_settled, write_report

from colsplade.encoders import CODEC_FILE, as_encoder
from colsplade.engines import connect_default
from colsplade.engines._bulk import BulkAction, bulk_write
from colsplade.engines._scan import scan_index
from colsplade.evaluation import evaluate_run, load_beir
from colsplade.ingest import FieldMapping, Layout, ingest
from colsplade.mappings import FieldSpec, index_body, spec_from_meta
from colsplade.query import QUERY_ENCODER_OPTIONS, AsyncSearchClient, SearchClient
from colsplade.scoring import fit_codec, maxsim_codes

#: concurrent callers of the throughput runs (the keys of ``qps``)
CALLERS = (1, 4, 16)
#: untimed queries before the timed pass (the engine's search paths and the encoder warm up)
WARM_QUERIES = 30
#: the plans measured besides the default one, by name
FUSED_PLANS = ("hybrid(bm25+splade)+colbert(fused)", "splade+colbert(fused)")
#: ``--codec-variants`` keys -> fit_codec's
VARIANT_KEYS = {
    "nbits": "nbits",
    "pool": "pool_factor",
    "pool_factor": "pool_factor",
    "k": "n_centroids",
    "n_centroids": "n_centroids",
}


class _Rss:
    """Peak resident memory of this process, sampled from /proc while a block runs."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            self._stop.wait(0.2)

    def __enter__(self) -> _Rss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Keeper:
    """The encoder ingest uses, keeping each document's float ColBERT vectors aside in a file (not in
    memory, so the RSS figure is the pipeline's own): the float reference of the rerank."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner, self.config = inner, inner.config
        self.file = path.open("wb")
        self.rows: list[tuple[int, int]] = []  # (offset in rows, n tokens) per encoded text, in order
        self.offset = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode_queries(self, texts: Any) -> Any:
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts: Any) -> Any:
        out = self.inner.encode_documents(texts)
        for vectors in out.colbert:
            self.file.write(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
            self.rows.append((self.offset, len(vectors)))
            self.offset += len(vectors)
        return out

    def vectors(self, dim: int, doc_ids: list[str]) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
        """The kept vectors and each document's rows: ingest encodes in source order, one text each."""
        self.file.close()
        flat = np.fromfile(self.file.name, dtype=np.float16).reshape(-1, dim)
        assert len(self.rows) == len(doc_ids), (len(self.rows), len(doc_ids))
        return flat, dict(zip(doc_ids, self.rows, strict=True))


def _encode_rate(encoder: Any, texts: list[str]) -> float:
    """Documents per second of the encoder alone, in calls of 32 texts (what ingest sends it)."""
    t0 = time.perf_counter()
    for i in range(0, len(texts), 32):
        encoder.encode_documents(texts[i : i + 32])
    return len(texts) / (time.perf_counter() - t0)


def _bm25(client: Any, index: str, query: str) -> dict[str, Any]:
    """The engine's own BM25 top 10 on the text field, no sources: what a team runs without colsplade."""
    return client.search(index, {"query": {"match": {"text": query}}, "size": 10, "_source": False})


def _store_bytes(client: Any, index: str) -> int:
    client.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": 1})
    client.refresh(index)
    return int(client.stats(index)["_all"]["primaries"]["store"]["size_in_bytes"])


def _twin(client: Any, source: str, target: str, spec: FieldSpec, *, keep_codes: bool) -> None:
    """``target``: the documents of ``source`` in layout ``spec``, with or without the token blob."""
    mapping = client.get_mapping(source)
    ours = {spec.splade_field, spec.codes_field, spec.meta_field, "colbert", "colbert_packed"}
    extra = {k: v for k, v in mapping["properties"].items() if k not in ours}
    body = index_body(client.engine, spec, extra_properties=extra)
    body["mappings"]["_meta"] = mapping["_meta"]
    body["mappings"]["_meta"]["colsplade"].update(
        {"codes_storage": spec.codes_storage, "splade_type": spec.splade_type}
    )
    if not keep_codes:
        body["mappings"]["properties"].pop(spec.codes_field, None)
    client.create_index(target, body)
    excludes = () if keep_codes else (spec.codes_field,)
    import orjson

    actions = [
        BulkAction(index=target, doc_id=h.doc_id, source=orjson.dumps(h.source).decode())
        for h in scan_index(client, source, source_excludes=excludes)
    ]
    results = bulk_write(client, actions, chunk_size=500)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    client.refresh(target)


def _blob_bytes(client: Any, index: str, spec: FieldSpec) -> int:
    """The raw bytes of every document's token blob (what the codec writes, before base64)."""
    import base64

    return sum(
        len(base64.b64decode(h.source.get(spec.codes_field) or ""))
        for h in scan_index(client, index, source_excludes=(spec.splade_field, "text"))
    )


def _ndcg(qrels: dict[str, dict[str, int]], runs: dict[str, dict[str, float]]) -> float:
    return round(evaluate_run(qrels, runs)["ndcg@10"], 4)


@dataclass
class _PlanTimes:
    """One named plan over the measured queries: wall times, engine round trips and the run."""

    plan: str
    ms: list[float] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, qid: str, result: Any, ms: float) -> None:
        self.ms.append(ms)
        # SearchResult.round_trips is new: a result without it leaves the figure null, not the run broken
        trips = getattr(result, "round_trips", None)
        if trips is not None:
            self.round_trips.append(int(trips))
        self.run[qid] = {h.id: h.score for h in result.hits}

    def report(self, qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
        """``round_trips``: the most any query took (a plan's count is fixed but for empty queries)."""
        return {
            "plan": self.plan,
            "p50_ms": percentile(self.ms, 50),
            "p95_ms": percentile(self.ms, 95),
            "ndcg@10": _ndcg(qrels, self.run),
            "round_trips": max(self.round_trips) if self.round_trips else None,
        }


def _rate(ms: list[float], seconds: float) -> dict[str, float]:
    return {"qps": round(len(ms) / seconds, 2), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}


def _sync_callers(
    call: Callable[[str], Any], queries: list[str], total: int, callers: int
) -> dict[str, float]:
    """``total`` calls (the queries cycled) by ``callers`` threads, each taking the next query from one
    shared iterator until none is left: QPS over the wall time, per-request p50 / p95."""
    feed = itertools.islice(itertools.cycle(queries), total)
    lock = threading.Lock()
    ms: list[float] = []
    errors: list[Exception] = []

    def caller() -> None:
        while not errors:
            with lock:
                query = next(feed, None)
            if query is None:
                return
            t0 = time.perf_counter()
            try:
                call(query)
            except Exception as exc:  # re-raised in the main thread: a failed run is no figure
                errors.append(exc)
                return
            ms.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=caller, name=f"bench-caller-{i}") for i in range(callers)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return _rate(ms, seconds)


async def _gathered(
    call: Callable[[str], Awaitable[Any]], queries: list[str], total: int, callers: int
) -> dict[str, float]:
    """The async twin of :func:`_sync_callers`: ``callers`` coroutines under one ``gather``."""
    feed = itertools.islice(itertools.cycle(queries), total)
    ms: list[float] = []

    async def caller() -> None:
        for query in feed:  # one event loop: the coroutines share the iterator without a lock
            t0 = time.perf_counter()
            await call(query)
            ms.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return _rate(ms, time.perf_counter() - t0)


async def _async_callers(
    client: Any, index: str, encoder: Any, window: int, queries: list[str], total: int, callers: int
) -> dict[str, dict[str, float]]:
    """The default plan through an ``AsyncSearchClient`` of ``callers`` workers sharing the engine client,
    and engine BM25 on a pool of as many threads, each by ``callers`` coroutines."""
    aclient = AsyncSearchClient(index, encoder, client=client, max_workers=callers, window=window)
    # a pool of its own, not asyncio.to_thread's: the default one has min(32, cores + 4) threads, which
    # caps 16 callers on a small machine and would make BM25 look slower than it is
    pool = ThreadPoolExecutor(max_workers=callers, thread_name_prefix="bench-bm25")
    loop = asyncio.get_running_loop()
    try:
        await aclient.search(queries[0], k=10)  # the new client reads the index layout once, untimed
        return {
            "default": await _gathered(partial(aclient.search, k=10), queries, total, callers),
            "bm25": await _gathered(
                partial(loop.run_in_executor, pool, partial(_bm25, client, index)), queries, total, callers
            ),
        }
    finally:
        await aclient.close()  # it leaves the engine client it was given open
        pool.shutdown(wait=True)


def _throughput(
    client: Any, index: str, encoder: Any, search: SearchClient, window: int, queries: list[str], total: int
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Sync and async QPS of the default plan (``search``, shared by the threads) and engine BM25 for each
    number of callers; sync and async runs alternate per number, so both see the same machine."""
    details: dict[str, Any] = {mode: {"default": {}, "bm25": {}} for mode in ("sync", "async")}
    for callers in CALLERS:
        key = str(callers)
        details["sync"]["default"][key] = _sync_callers(partial(search.search, k=10), queries, total, callers)
        details["sync"]["bm25"][key] = _sync_callers(partial(_bm25, client, index), queries, total, callers)
        figures = asyncio.run(_async_callers(client, index, encoder, window, queries, total, callers))
        for plan, rate in figures.items():
            details["async"][plan][key] = rate
    qps = {
        plan: {key: rate["qps"] for key, rate in by_callers.items()}
        for plan, by_callers in details["sync"].items()
    }
    return qps, details


def _codec_variants(text: str) -> dict[str, dict[str, int]]:
    """``"nbits=1,pool=2;k=4096"`` -> ``{"nbits=1,pool=2": {"nbits": 1, "pool_factor": 2}, "k=4096": ...}``.

    Raises ValueError for an unknown key or a value the codec refuses."""
    variants: dict[str, dict[str, int]] = {}
    for part in (p.replace(" ", "") for p in text.split(";")):
        if not part:
            continue
        overrides: dict[str, int] = {}
        for item in part.split(","):
            key, _, value = item.partition("=")
            if key not in VARIANT_KEYS or not value.isdigit():
                raise ValueError(
                    f"codec variant {part!r}: {item!r} is not one of {', '.join(VARIANT_KEYS)}=INT"
                )
            overrides[VARIANT_KEYS[key]] = int(value)
        if overrides.get("nbits", 1) not in (1, 2, 4):
            raise ValueError(f"codec variant {part!r}: nbits must be 1, 2 or 4")
        if not 1 <= overrides.get("pool_factor", 1) <= 16:
            raise ValueError(f"codec variant {part!r}: pool must be 1..16")
        if not 1 <= overrides.get("n_centroids", 1) <= 1 << 16:
            raise ValueError(f"codec variant {part!r}: k must be 1..65536")
        variants[part] = overrides
    return variants


def _codec_fits(
    floats: np.ndarray,
    rows: dict[str, tuple[int, int]],
    windows: dict[str, tuple[np.ndarray, list[str]]],
    qrels: dict[str, dict[str, int]],
    settings: dict[str, int],
    seeds: int,
    float_ndcg: float,
) -> dict[str, Any]:
    """nDCG@10 of the codec fitted with ``settings`` and seeds 0..``seeds``-1 on the corpus's float vectors,
    each query's first-stage window reranked by MaxSim over its decoded blobs (client-side, as the
    client rerank decodes them): how much of the codec's loss against float is the fit's luck."""

    def vectors(doc_id: str) -> np.ndarray:
        start, n = rows[doc_id]
        return floats[start : start + n].astype(np.float32)

    fits = []
    for seed in range(seeds):
        # the whole corpus, made float32 per fit (not held: it is the size of the kept vectors, doubled)
        codec = fit_codec(
            [vectors(d) for d in rows],
            n_centroids=settings["n_centroids"],
            nbits=settings["nbits"],
            pool_factor=settings["pool_factor"],
            seed=seed,
        )
        blobs: dict[str, bytes] = {}  # each document encoded once per fit, windows overlap
        run: dict[str, dict[str, float]] = {}
        for qid, (query_vectors, window) in windows.items():
            for doc_id in window:
                if doc_id not in blobs:
                    blobs[doc_id] = codec.encode(vectors(doc_id))
            scores = maxsim_codes(query_vectors, codec.decode_many([blobs[d] for d in window]))
            top = np.argsort(-scores, kind="stable")[:10]
            run[qid] = {window[i]: float(scores[i]) for i in top}
        tokens = sum(rows[d][1] for d in blobs)
        fits.append(
            {
                "seed": seed,
                "ndcg@10": _ndcg(qrels, run),
                "bytes_per_token": round(sum(map(len, blobs.values())) / max(tokens, 1), 2),
            }
        )
    values = [f["ndcg@10"] for f in fits]
    mean = statistics.fmean(values)
    return {
        "fits": fits,
        "mean_ndcg@10": round(mean, 4),
        "spread_ndcg@10": round(max(values) - min(values), 4),
        "std_ndcg@10": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "float_ndcg@10": float_ndcg,
        "mean_loss": round(float_ndcg - mean, 4),
        "settings": dict(settings),
    }


def bench_engine(engine: str, args: argparse.Namespace, model_dir: Path, work: Path) -> dict[str, Any]:
    data = load_beir(args.data, "test")
    corpus_ids = list(data.corpus)
    if args.docs:
        corpus_ids = corpus_ids[: args.docs]
    encoder = as_encoder(model_dir, variant=args.variant)
    texts = [data.corpus[d] for d in corpus_ids]
    index = f"bench-serving-{engine}"
    with contextlib.closing(connect_default(_settings(engine), autostart=True)) as client:
        if client.index_exists(index):
            client.delete_index(index)
        # 1. the encoder alone, on the texts ingest will see (title + text, same joiner)
        sample = texts[: args.encoder_docs]
        encoder_before = _encode_rate(encoder, sample)
        # 2. the real ingest of the corpus
        keeper = _Keeper(encoder, work / f"floats-{engine}.f16")
        docs = [{"_id": d, "text": data.corpus[d]} for d in corpus_ids]
        with _Rss() as rss:
            summary = ingest(
                docs,
                client,
                index,
                keeper,
                fields=FieldMapping(id_field="_id", text_fields=("text",)),
                layout=Layout(),
                progress=False,
            )
        assert summary.dead_lettered == 0, summary.reasons
        # the encoder alone again, after the ingest: the machine's load drifts, the ratio uses both
        encoder_after = _encode_rate(encoder, sample)
        encoder_only = 2 / (1 / encoder_before + 1 / encoder_after)
        floats, rows = keeper.vectors(encoder.config.colbert.dim, corpus_ids)
        spec = spec_from_meta(client.get_mapping(index)["_meta"])
        store = _store_bytes(client, index)
        # 3. the token store alone: the same documents without the blob
        variants = {}
        twins_made: tuple[tuple[str, str, bool, str], ...] = (
            ("bare", "source", False, spec.store_compression),
        )
        if not args.skip_twins:  # the bare twin stays: the token store's bytes need it
            twins_made += (
                ("stored", "stored", True, spec.store_compression),
                ("doc_values", "doc_values", True, spec.store_compression),
                ("lz4", "source", True, "default"),
                ("lz4_bare", "source", False, "default"),
            )
        for name, storage, keep, compression in twins_made:
            twin = f"{index}-{name}".replace("_", "-")
            if client.index_exists(twin):
                client.delete_index(twin)
            layout = FieldSpec(
                **{**spec.__dict__, "codes_storage": storage, "store_compression": compression}
            )
            _twin(client, index, twin, layout, keep_codes=keep)
            variants[name] = {"index": twin, "store_bytes": _store_bytes(client, twin)}
        tokens = summary.tokens
        # 4. queries, plans interleaved
        qids = list(data.queries)[: args.queries]
        # queries go through an encoder opened as SearchClient opens a model directory (one thread per
        # call, no spinning), not the ingest's throughput encoder; opened after the ingest fitted the codec
        encoder = as_encoder(model_dir, variant=args.variant, **QUERY_ENCODER_OPTIONS)
        search = SearchClient(index, encoder, client=client, plan="splade+colbert", window=args.window)
        twins = {
            name: SearchClient(
                variants[name]["index"], encoder, client=client, plan="splade+colbert", window=args.window
            )
            for name in ("stored", "doc_values", "lz4")
            if name in variants
        }
        # the default plan: a client given no plan, as a team's first SearchClient is
        default = SearchClient(index, encoder, client=client, window=args.window)
        # the same plan encoding before it sends: the encoder's own cost (``query_encode_p50_ms``); the
        # default client's encode overlaps the engine's answer and shares the cores with it
        default_serial = SearchClient(
            index, encoder, client=client, window=args.window, overlap_encoding=False
        )
        # the default plan on the blob-storage twins too: the fetch form is chosen on its rerank stage
        twins_default = {
            name: SearchClient(variants[name]["index"], encoder, client=client, window=args.window)
            for name in ("stored", "doc_values")
            if name in variants
        }
        default_plan = default.resolve_plan()
        named = {"default": _PlanTimes(default_plan)}
        named.update({name: _PlanTimes(default.resolve_plan(name)) for name in FUSED_PLANS})
        runs: dict[str, dict[str, dict[str, float]]] = {p: {} for p in ("bm25", "splade", "rerank", "float")}
        lat: dict[str, list[float]] = {
            p: []
            for p in (
                *("bm25", "splade", "rerank", "encode", "stage", "stored", "doc_values", "lz4", "fetch"),
                *("default_encode", "default_stage", "default_fetch", "serial_encode", "default_serial"),
                *("stored_default", "doc_values_default", "stored_default_stage", "doc_values_default_stage"),
            )
        }
        # per measured query: its query vectors and SPLADE window, for the codec fits' rerank
        windows: dict[str, tuple[np.ndarray, list[str]]] = {}
        # after the ingest and the twins' reindex the engine may still merge: time a settled engine
        settled = {"queries": wait_until_settled(client)}
        for warm, qid in [(True, q) for q in qids[:WARM_QUERIES]] + [(False, q) for q in qids]:
            query = data.queries[qid]
            t0 = time.perf_counter()
            bm25 = _bm25(client, index, query)
            t_bm25 = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            sparse = search.search(query, k=10, rerank="none")
            t_sparse = (time.perf_counter() - t0) * 1000
            base = search.search(query, k=args.window, window=args.window, rerank="none")
            t0 = time.perf_counter()
            reranked = search.search(query, k=10, rerank="client")
            t_rerank = (time.perf_counter() - t0) * 1000
            variant_ms = {}
            for name, other in twins.items():
                t0 = time.perf_counter()
                other.search(query, k=10, rerank="client")
                variant_ms[name] = (time.perf_counter() - t0) * 1000
            # the default plan's first stage without token data (for bm25+colbert(fused): plan "bm25"),
            # the fetch-free baseline of its rerank stage, then the plans themselves
            first_only = default.search(
                query, plan=default_plan, rerank="none", k=args.window, window=args.window
            )
            timed: dict[str, tuple[Any, float]] = {}
            for key in named:
                t0 = time.perf_counter()
                result = default.search(query, k=10, plan=None if key == "default" else key)
                timed[key] = (result, (time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            serial = default_serial.search(query, k=10)
            serial_ms = (time.perf_counter() - t0) * 1000
            twin_default = {}
            for name, other in twins_default.items():
                t0 = time.perf_counter()
                result = other.search(query, k=10)
                twin_default[name] = (result, (time.perf_counter() - t0) * 1000)
            if warm:
                continue
            for name, (result, ms) in twin_default.items():
                lat[f"{name}_default"].append(ms)
                lat[f"{name}_default_stage"].append(
                    result.timings_ms["engine"]
                    - first_only.timings_ms["engine"]
                    + result.timings_ms["rerank"]
                )
            for key, (result, ms) in timed.items():
                named[key].add(qid, result, ms)
            chosen = timed["default"][0]
            default_fetch = chosen.timings_ms["engine"] - first_only.timings_ms["engine"]
            lat["default_fetch"].append(default_fetch)
            lat["default_stage"].append(default_fetch + chosen.timings_ms["rerank"])
            lat["default_encode"].append(chosen.timings_ms["encode"])
            lat["serial_encode"].append(serial.timings_ms["encode"])
            lat["default_serial"].append(serial_ms)
            lat["bm25"].append(t_bm25)
            lat["splade"].append(t_sparse)
            lat["rerank"].append(t_rerank)
            lat["encode"].append(reranked.timings_ms["encode"])
            fetch = reranked.timings_ms["engine"] - base.timings_ms["engine"]
            lat["fetch"].append(fetch)
            lat["stage"].append(fetch + reranked.timings_ms["rerank"])
            for name, ms in variant_ms.items():
                lat[name].append(ms)
            runs["bm25"][qid] = {h["_id"]: float(h["_score"]) for h in bm25["hits"]["hits"]}
            runs["splade"][qid] = {h.id: h.score for h in sparse.hits}
            runs["rerank"][qid] = {h.id: h.score for h in reranked.hits}
            # the float reference: the same first-stage window, MaxSim with the model's float vectors
            _, qv = search.encode_query(query)
            scores = {}
            for h in base.hits:
                start, n = rows[h.id]
                scores[h.id] = float((qv @ floats[start : start + n].astype(np.float32).T).max(axis=1).sum())
            runs["float"][qid] = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:10])
            windows[qid] = (qv, [h.id for h in base.hits])
        qrels = {q: data.qrels[q] for q in qids}
        for name in variants.values():
            client.delete_index(name["index"])
        # 5. throughput, after the loop and with the twins gone: the engine serves this index alone
        qps: dict[str, dict[str, float]] | None = None
        qps_details: dict[str, Any] | None = None
        if args.qps_queries:
            settled["throughput"] = wait_until_settled(client)
            qps, qps_details = _throughput(
                client,
                index,
                encoder,
                default,
                args.window,
                [data.queries[q] for q in qids],
                args.qps_queries,
            )
        # 6. the codec's quality against float over several fits: client-side, no engine request
        codec_meta = client.get_mapping(index)["_meta"]["colsplade"]["codec"]
        codec_settings = {
            "n_centroids": int(codec_meta["n_centroids"]),
            "nbits": int(codec_meta["nbits"]),
            "pool_factor": int(codec_meta.get("pool_factor", 1)),
        }
        codec_fits: dict[str, Any] | None = None
        if args.codec_fits:
            float_ndcg = _ndcg(qrels, runs["float"])
            fit = partial(
                _codec_fits, floats, rows, windows, qrels, seeds=args.codec_fits, float_ndcg=float_ndcg
            )
            codec_fits = fit(codec_settings)
            codec_fits["variants"] = {
                label: fit({**codec_settings, **overrides})
                for label, overrides in args.codec_variant_overrides.items()
            }
        return {
            "engine_version": client.capabilities().version,
            "docs": len(corpus_ids),
            "index_bytes_per_doc": round(store / len(corpus_ids), 1),
            "token_store_bytes_per_token": round((store - variants["bare"]["store_bytes"]) / tokens, 2),
            "query_encode_p50_ms": percentile(lat["serial_encode"], 50),
            "rerank_stage_p50_ms": percentile(lat["default_stage"], 50),
            "plans": {
                "bm25": {"p50_ms": percentile(lat["bm25"], 50), "ndcg@10": _ndcg(qrels, runs["bm25"])},
                "splade": {"p50_ms": percentile(lat["splade"], 50), "ndcg@10": _ndcg(qrels, runs["splade"])},
                "rerank": {
                    "window": args.window,
                    "p50_ms": percentile(lat["rerank"], 50),
                    "rerank_stage_p50_ms": percentile(lat["stage"], 50),
                    "ndcg@10": _ndcg(qrels, runs["rerank"]),
                },
                "rerank_float_reference": {"ndcg@10": _ndcg(qrels, runs["float"])},
                **{key: times.report(qrels) for key, times in named.items()},
            },
            "codec_fits": codec_fits,
            "qps": qps,
            "qps_details": qps_details,
            "ingest": {
                "encoder_only_docs_per_s": round(encoder_only, 2),
                "end_to_end_docs_per_s": round(summary.docs_per_second, 2),
                "max_rss_mb": round(rss.peak_kb / 1024, 1),
            },
            "details": {
                "tokens": tokens,
                "tokens_per_doc": round(tokens / len(corpus_ids), 1),
                "store_bytes": store,
                "store_bytes_without_codes": variants["bare"]["store_bytes"],
                "codec": summary.codec,
                "codec_describe": codec_meta,
                "encoder_only_docs": len(sample),
                "encoder_only_before_after_docs_per_s": [round(encoder_before, 2), round(encoder_after, 2)],
                "ingest_seconds": round(summary.seconds, 1),
                "ingest_encode_seconds": round(summary.encode_seconds, 1),
                "ingest_write_seconds": round(summary.write_seconds, 1),
                "fetch_p50_ms": percentile(lat["fetch"], 50),
                "default_fetch_p50_ms": percentile(lat["default_fetch"], 50),
                "query_encode_p50_ms_splade_colbert": percentile(lat["encode"], 50),
                "query_encode_overlapped_p50_ms": percentile(lat["default_encode"], 50),
                "default_plan_serial_p50_ms": percentile(lat["default_serial"], 50),
                "settled": settled,
                "store_compression": spec.store_compression,
                "lz4": None
                if args.skip_twins
                else {
                    "rerank_p50_ms": percentile(lat["lz4"], 50),
                    "store_bytes": variants["lz4"]["store_bytes"],
                    "index_bytes_per_doc": round(variants["lz4"]["store_bytes"] / len(corpus_ids), 1),
                    "token_store_bytes_per_token": round(
                        (variants["lz4"]["store_bytes"] - variants["lz4_bare"]["store_bytes"]) / tokens, 2
                    ),
                },
                "blob_bytes_per_token": round(_blob_bytes(client, index, spec) / tokens, 2),
                "codes_storage": {
                    "source": {
                        "rerank_p50_ms": percentile(lat["rerank"], 50),
                        "store_bytes": store,
                        "default_plan_p50_ms": named["default"].report(qrels)["p50_ms"],
                        "default_rerank_stage_p50_ms": percentile(lat["default_stage"], 50),
                    },
                    **{
                        name: None
                        if args.skip_twins
                        else {
                            "rerank_p50_ms": percentile(lat[name], 50),
                            "store_bytes": variants[name]["store_bytes"],
                            "default_plan_p50_ms": percentile(lat[f"{name}_default"], 50),
                            "default_rerank_stage_p50_ms": percentile(lat[f"{name}_default_stage"], 50),
                        }
                        for name in ("stored", "doc_values")
                    },
                },
                "queries": len(qids),
                "p95_ms": {p: percentile(v, 95) for p, v in lat.items() if v},
            },
        }


def _settings(engine: str) -> Any:
    from colsplade.config import load_settings

    return load_settings(engine=engine)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="joint model directory (its codec is fitted if missing)"
    )
    parser.add_argument("--data", default=DATA, help="BEIR dataset name or directory")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--docs", type=int, default=0, help="first N documents only (0: all)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--encoder-docs", type=int, default=1000)
    parser.add_argument("--fresh-codec", action="store_true", help="refit the model's codec first")
    parser.add_argument(
        "--codec-fits", type=int, default=3, help="codec refits (seeds 0..N-1) against float (0: skip)"
    )
    parser.add_argument(
        "--codec-variants",
        default="",
        help='more codec settings to refit, e.g. "nbits=1,pool=2;nbits=2,pool=3,k=4096" (keys nbits, pool, k)',
    )
    parser.add_argument(
        "--qps-queries", type=int, default=300, help="searches per throughput run, queries cycled (0: skip)"
    )
    parser.add_argument(
        "--skip-twins", action="store_true", help="no codes_storage / lz4 twin indices (their keys: null)"
    )
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args()
    # before any work: a busy machine at the start explains slow figures as well as one at the end
    load_at_start = os.getloadavg()
    if args.codec_fits < 0 or args.qps_queries < 0:
        parser.error("--codec-fits and --qps-queries must be >= 0")
    try:
        args.codec_variant_overrides = _codec_variants(args.codec_variants)
    except ValueError as exc:
        parser.error(str(exc))
    model_dir = Path(args.model)
    if args.fresh_codec and (model_dir / CODEC_FILE).is_file():
        (model_dir / CODEC_FILE).unlink()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    results = {}
    try:
        engines = args.engines.split(",")
        for i, engine in enumerate(engines):
            # the fits are client-side over the same SPLADE windows on either engine: once is enough
            engine_args = argparse.Namespace(**{**vars(args), "codec_fits": args.codec_fits if i == 0 else 0})
            results[engine] = bench_engine(engine, engine_args, model_dir, work)
            if i and results[engines[0]].get("codec_fits"):
                results[engine]["codec_fits"] = {
                    **results[engines[0]]["codec_fits"],
                    "computed_on": engines[0],
                }
            print(engine, results[engine], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(
        args.out,
        {
            "settings": {
                "model": model_dir.name,
                "variant": args.variant,
                "data": args.data,
                "window": args.window,
                "queries": args.queries,
                "layout": "default (SPLADE + colbert_codes in _source)",
                "codec_fits": args.codec_fits,
                "codec_variants": args.codec_variants,
                "qps_queries": args.qps_queries,
                "qps_callers": list(CALLERS),
                "skip_twins": args.skip_twins,
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "engines": results,
        },
    )


if __name__ == "__main__":
    main()
