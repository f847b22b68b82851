"""The cost curve from 5k to 1M documents: one node against a 3-node cluster, in one run.

Writes ``benchmarks/results/scale.json`` (after every size, so a run cut short keeps what it measured) and
``benchmarks/results/scale.png``.

What it does:
1. seed: SciFact through the real ``ingest()`` once (encoder + codec, the model's codec is fitted on the
   first run), read back from the index: each abstract's SPLADE impacts and token blob;
2. a synthetic corpus grown from the seed: copy ``c`` of abstract ``d`` has id ``d~c``, the same text
   (BM25 sees the copies too), each SPLADE impact scaled by ``exp(N(0, 0.1))`` with 5 % of the terms
   dropped, and its token codes perturbed: 5 % of the centroid ids replaced by random ones and 2 % of the
   residual bytes with random bits flipped (the blob's CRC recomputed), so no two documents are equal;
3. per size (``--sizes``) and topology (``--topologies``: ``single`` = one node, 1 shard; ``cluster`` = 3
   nodes, 3 primaries, 1 replica), the index grows to that size through :func:`colsplade.ingest.ingest_encoded`
   (pre-encoded bulk, no model pass; docs/s of that step), is refreshed and flushed (no force-merge: a live
   index), and ``--queries`` SciFact test queries (after 10 warm-up) run, plans interleaved per query:
   engine BM25 on ``text``, SPLADE top 10 (no rerank), SPLADE -> client MaxSim at window 100 (``rerank``),
   the same with the query pruned to its ``--prune`` heaviest SPLADE terms, and window 50, and the library's
   default plan (``default``: a SearchClient given no plan, BM25 + MaxSim fused, with its query encoding);
   then the SPLADE top 10 exact and under each pruning setting (client weight ratio 0.2; Elasticsearch's
   ``sparse_vector`` pruning where the field is one; harder pruning whose top ``--rescore-window`` hits
   are rescored exactly in the same request), with its top-10 overlap with the exact query. Each size's
   searches wait until the engine runs no merge and the CPU is idle (``settled``).
   Issue 22's ``rows`` (single node): one per size and SPLADE setting, ``{"docs", "bm25_p50_ms",
   "splade_p50_ms", "default_plan_p50_ms", "query_encode_p50_ms", "top10_overlap_vs_exact", "setting"}``,
   also kept per engine under ``engines`` (one run per engine; the file keeps the other engine's).
   Index bytes per document: primary store / documents.
Growth stops before a size that would not fit ``--max-minutes`` (from the last step's bulk rate) or the
disk (``--min-free-gb``); the JSON says where and why.

    python benchmarks/bench_scale.py --model MODEL_DIR --data DIR_OR_NAME --sizes 5000,50000,200000,1000000
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import pickle
import shutil
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_engine_parser, other_engines, percentile, wait_until_settled, write_report

from colsplade.config import Settings
from colsplade.encoders import as_encoder
from colsplade.engines import connect, scan_index
from colsplade.evaluation import load_beir
from colsplade.ingest import Batching, EncodedDocument, FieldMapping, Layout, ingest, ingest_encoded
from colsplade.local import start_cluster, start_node
from colsplade.mappings import unescape_impacts
from colsplade.query import QUERY_ENCODER_OPTIONS, SearchClient, SparsePruning

_HEADER = struct.Struct("<BBHI")  # the token blob's header (colsplade.scoring._codec)
PLANS = ("bm25", "splade", "rerank", "rerank_pruned", "rerank_window50", "default")


# ------------------------------------------------------------------------------------------ the seed


def seed_corpus(client: Any, encoder: Any, data: Any, work: Path) -> list[dict[str, Any]]:
    """SciFact encoded once (real ingest), read back: id, unescaped impacts, blob, text per abstract.

    Cached per model (name and version): the seed of one model is no seed for another, and a node kept
    by name keeps its indices between runs."""
    name, version = encoder.config.name, encoder.config.version
    cache = work / f"seed-{name}-{version}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    index = f"bench-scale-seed-{version}"
    if not client.index_exists(index) or client.count(index) != len(data.corpus):
        if client.index_exists(index):
            client.delete_index(index)
        docs = [{"_id": d, "text": text} for d, text in data.corpus.items()]
        summary = ingest(
            docs,
            client,
            index,
            encoder,
            fields=FieldMapping(id_field="_id", text_fields=("text",)),
            progress=False,
        )
        print(f"seed: {summary}", flush=True)
    seeds = [
        {
            "id": hit.doc_id,
            "impacts": unescape_impacts(hit.source["splade"]),
            "codes": base64.b64decode(hit.source["colbert_codes"]),
            "text": hit.source.get("text", ""),
        }
        for hit in scan_index(client, index)
    ]
    seeds.sort(key=lambda s: s["id"])
    cache.write_bytes(pickle.dumps(seeds))
    return seeds


def perturb_codes(blob: bytes, n_centroids: int, rng: np.random.Generator) -> bytes:
    """5 % of the token ids replaced by random centroids, 2 % of the residual bytes with a random bit flipped."""
    magic, version_bits, n, _ = _HEADER.unpack_from(blob)
    ids = np.frombuffer(blob, dtype="<u2", count=n, offset=_HEADER.size).copy()
    residuals = np.frombuffer(blob, dtype=np.uint8, offset=_HEADER.size + 2 * n).copy()
    swap = rng.random(n) < 0.05
    ids[swap] = rng.integers(0, n_centroids, int(swap.sum()))
    flip = rng.random(len(residuals)) < 0.02
    residuals[flip] ^= (1 << rng.integers(0, 8, int(flip.sum()))).astype(np.uint8)
    payload = ids.astype("<u2").tobytes() + residuals.tobytes()
    return _HEADER.pack(magic, version_bits, n, zlib.crc32(payload)) + payload


def synthetic(seeds: list[dict[str, Any]], start: int, stop: int, n_centroids: int):
    """Documents ``start`` .. ``stop`` of the grown corpus (document i: copy i // S of seed i % S)."""
    for i in range(start, stop):
        seed = seeds[i % len(seeds)]
        copy = i // len(seeds)
        if copy == 0:
            yield EncodedDocument(seed["id"], seed["impacts"], seed["codes"], fields={"text": seed["text"]})
            continue
        rng = np.random.default_rng(i)
        terms = list(seed["impacts"].items())
        keep = rng.random(len(terms)) >= 0.05
        keep[int(np.argmax([w for _, w in terms]))] = True
        noise = np.exp(rng.normal(0.0, 0.1, len(terms)))
        impacts = {t: float(w * f) for (t, w), k, f in zip(terms, keep, noise, strict=True) if k}
        codes = perturb_codes(seed["codes"], n_centroids, rng)
        yield EncodedDocument(f"{seed['id']}~{copy}", impacts, codes, fields={"text": seed["text"]})


# ------------------------------------------------------------------------------------------ measuring


def _pruning_settings(client: Any, rescore_window: int) -> dict[str, SparsePruning | None]:
    """The SPLADE first stages measured: exact; the pruning settings that kept >= 0.94 of the exact top 10
    on SciFact (``results/sparse_pruning.json``): a client weight ratio (both engines) and Elasticsearch's
    own pruning where the field is ``sparse_vector``; and harder pruning whose top ``rescore_window`` hits
    get their exact scores back in the same request (``SparsePruning.rescore_window``)."""
    w = rescore_window
    settings: dict[str, SparsePruning | None] = {
        "exact": None,
        "weight_ratio=0.2": SparsePruning(weight_ratio=0.2),
        f"weight_ratio=0.2, rescore {w}": SparsePruning(weight_ratio=0.2, rescore_window=w),
        f"weight_ratio=0.4, rescore {w}": SparsePruning(weight_ratio=0.4, rescore_window=w),
        f"weight_ratio=0.4, rescore {w // 2}": SparsePruning(weight_ratio=0.4, rescore_window=w // 2),
        f"top_k=8, rescore {w}": SparsePruning(top_k=8, rescore_window=w),
    }
    if client.capabilities().splade_type == "sparse_vector":
        settings["engine(3, 0.2)"] = SparsePruning(engine=True, freq_ratio=3.0, weight_threshold=0.2)
        settings[f"engine(5, 0.4), rescore {w}"] = SparsePruning(engine=True, rescore_window=w)
    return settings


def measure_queries(client: Any, index: str, encoder: Any, queries: list[str], args: argparse.Namespace):
    plans = {
        "splade": (
            SearchClient(index, encoder, client=client, plan="splade+colbert", window=args.window),
            {"rerank": "none"},
        ),
        "rerank": (
            SearchClient(index, encoder, client=client, plan="splade+colbert", window=args.window),
            {},
        ),
        "rerank_pruned": (
            SearchClient(
                index,
                encoder,
                client=client,
                plan="splade+colbert",
                window=args.window,
                rerank_terms=args.prune,
            ),
            {},
        ),
        "rerank_window50": (
            SearchClient(index, encoder, client=client, plan="splade+colbert", window=50),
            {},
        ),
        # the library's default plan, as a SearchClient given no plan runs it (BM25 + MaxSim, fused)
        "default": (SearchClient(index, encoder, client=client, window=args.window), {}),
    }
    pruning = _pruning_settings(client, args.rescore_window)
    sparse = SearchClient(index, encoder, client=client, plan="splade")
    lat: dict[str, list[float]] = {p: [] for p in PLANS}
    engine_ms: dict[str, list[float]] = {p: [] for p in PLANS}
    encode_ms: list[float] = []
    pruned_ms: dict[str, list[float]] = {name: [] for name in pruning}
    pruned_engine_ms: dict[str, list[float]] = {name: [] for name in pruning}
    pruned_overlap: dict[str, list[float]] = {name: [] for name in pruning}
    pruned_terms: dict[str, list[int]] = {name: [] for name in pruning}
    pruned_encode_ms: dict[str, list[float]] = {name: [] for name in pruning}
    partial = 0
    overlap_pruned: list[float] = []
    for warm, query in [(True, q) for q in queries[:10]] + [(False, q) for q in queries]:
        t0 = time.perf_counter()
        answer = client.search(index, {"query": {"match": {"text": query}}, "size": 10, "_source": False})
        bm25 = (time.perf_counter() - t0) * 1000
        bm25_took = float(answer.get("took", float("nan")))
        ids = {}
        for name, (search, options) in plans.items():
            t0 = time.perf_counter()
            result = search.search(query, k=10, **options)
            ms = (time.perf_counter() - t0) * 1000
            partial += result.partial
            ids[name] = result.ids()
            if not warm:
                lat[name].append(ms)
                engine_ms[name].append(result.timings_ms["engine"])
                if name == "default":
                    encode_ms.append(result.timings_ms["encode"])
        exact_ids: list[str] = []
        for name, setting in pruning.items():
            t0 = time.perf_counter()
            result = sparse.search(query, k=10, sparse_pruning=setting)
            ms = (time.perf_counter() - t0) * 1000
            exact_ids = result.ids() if setting is None else exact_ids
            if not warm:
                pruned_ms[name].append(ms)
                pruned_engine_ms[name].append(result.timings_ms["engine"])
                pruned_encode_ms[name].append(result.timings_ms.get("encode", 0.0))
                terms = result.query_terms if setting is None else setting.apply(result.query_terms)
                pruned_terms[name].append(len(terms))
                if exact_ids:
                    pruned_overlap[name].append(len(set(exact_ids) & set(result.ids())) / len(exact_ids))
        if not warm:
            lat["bm25"].append(bm25)
            engine_ms["bm25"].append(bm25_took)
            overlap_pruned.append(len(set(ids["rerank"]) & set(ids["rerank_pruned"])) / 10)
    return {
        "plans": {
            p: {"p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95)}
            | {"engine_p50_ms": percentile(engine_ms[p], 50)}
            for p, v in lat.items()
        },
        "query_encode_p50_ms": percentile(encode_ms, 50),
        "sparse_pruning": {
            name: {
                "splade_p50_ms": percentile(pruned_ms[name], 50),
                "engine_p50_ms": percentile(pruned_engine_ms[name], 50),
                # the query's encoding (the joint model) is inside splade_p50_ms; BM25 has none
                "encode_p50_ms": percentile(pruned_encode_ms[name], 50),
                "splade_less_encode_p50_ms": percentile(
                    [a - b for a, b in zip(pruned_ms[name], pruned_encode_ms[name], strict=True)], 50
                ),
                "query_terms_mean": round(statistics.mean(pruned_terms[name]), 1)
                if pruned_terms[name]
                else None,
                "top10_overlap_vs_exact": round(statistics.mean(pruned_overlap[name]), 3)
                if pruned_overlap[name]
                else None,
            }
            for name in pruning
        },
        "partial_results": partial,
        "pruned_top10_overlap_with_default": round(statistics.mean(overlap_pruned), 3),
    }


def _rows(measured: dict[str, Any], docs: int) -> list[dict[str, Any]]:
    """Issue 22's rows of one size: one per SPLADE setting, next to BM25 and the default plan."""
    plans = measured["plans"]
    return [
        {
            "docs": docs,
            "bm25_p50_ms": plans["bm25"]["p50_ms"],
            "splade_p50_ms": figures["splade_p50_ms"],
            "splade_engine_p50_ms": figures["engine_p50_ms"],
            "splade_encode_p50_ms": figures["encode_p50_ms"],
            "splade_less_encode_p50_ms": figures["splade_less_encode_p50_ms"],
            "bm25_engine_p50_ms": plans["bm25"]["engine_p50_ms"],
            "default_plan_p50_ms": plans["default"]["p50_ms"],
            "default_plan_engine_p50_ms": plans["default"]["engine_p50_ms"],
            "query_encode_p50_ms": measured["query_encode_p50_ms"],
            "top10_overlap_vs_exact": figures["top10_overlap_vs_exact"],
            "setting": name,
        }
        for name, figures in measured["sparse_pruning"].items()
    ]


def index_bytes(client: Any, index: str) -> dict[str, int]:
    client.refresh(index)
    client.flush(index)
    stats = client.stats(index)["_all"]
    return {
        "primary_store_bytes": int(stats["primaries"]["store"]["size_in_bytes"]),
        "total_store_bytes": int(stats["total"]["store"]["size_in_bytes"]),
        "docs": int(stats["primaries"]["docs"]["count"]),
    }


# ------------------------------------------------------------------------------------------ the run


def _topology(engine: str, name: str) -> tuple[Any, Layout, Any]:
    """(client, layout, stopper) of a topology."""
    if name == "single":
        node = start_node(engine, name="bench-scale-single", heap="1g")
        return connect(url=node.url, engine=engine), Layout(shards=1, replicas=0), node.stop
    cluster = start_cluster(engine, 3, name="bench-scale")
    settings = Settings(urls=tuple(cluster.urls), engine=engine, request_timeout=120)
    return connect(settings), Layout(shards=3, replicas=1), cluster.stop


def main() -> None:
    parser = model_engine_parser(__doc__)
    parser.add_argument("--sizes", default="5000,50000,200000,1000000")
    parser.add_argument("--topologies", default="single,cluster")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--prune", type=int, default=16, help="SPLADE query terms kept by the pruned plan")
    parser.add_argument(
        "--rescore-window", type=int, default=100, help="hits rescored exactly after a pruned SPLADE query"
    )
    parser.add_argument("--bulk-docs", type=int, default=500)
    parser.add_argument("--max-minutes", type=float, default=90.0, help="stop growing past this budget")
    parser.add_argument("--min-free-gb", type=float, default=15.0)
    parser.add_argument("--work", default="/tmp/colsplade-bench-scale")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    parser.add_argument("--plot", default="benchmarks/results/scale.png")
    parser.add_argument("--keep", action="store_true", help="leave the nodes and indices running")
    args = parser.parse_args()
    started = time.monotonic()
    load_at_start = os.getloadavg()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    topologies = args.topologies.split(",")
    data = load_beir(args.data, "test")
    queries = [data.queries[q] for q in list(data.queries)[: args.queries]]
    # opened as SearchClient opens a model directory for queries (one thread per call, no spinning)
    encoder = as_encoder(args.model, variant="int8", **QUERY_ENCODER_OPTIONS)
    stoppers = []
    clients: dict[str, tuple[Any, Layout]] = {}
    report: dict[str, Any] = {
        "settings": {
            "engine": args.engine,
            "load_average_at_start": load_at_start,
            "model": Path(args.model).name,
            "variant": "int8",
            "data": Path(str(args.data)).name,
            "queries": args.queries,
            "window": args.window,
            "prune_terms": args.prune,
            "rescore_window": args.rescore_window,
            "bulk_docs": args.bulk_docs,
            "topologies": {
                "single": "1 node, 1 shard, 0 replicas",
                "cluster": "3 nodes, 3 primaries, 1 replica",
            },
            "sizes_asked": sizes,
            "corpus": "SciFact copies: new ids, impacts x exp(N(0,0.1)) with 5% of terms dropped, 5% of token "
            "ids replaced, 2% of residual bytes with a bit flipped; same text",
            "index": "refreshed + flushed, not force-merged",
        },
        "sizes": [],
        "rows": [],
    }
    try:
        for name in topologies:
            client, layout, stop = _topology(args.engine, name)
            clients[name] = (client, layout)
            stoppers.append(stop)
        seed_client = clients[topologies[0]][0]
        seeds = seed_corpus(seed_client, encoder, data, work)
        from colsplade.encoders import load_model_codec

        codec = load_model_codec(encoder)
        report["settings"]["seed_docs"] = len(seeds)
        report["settings"]["codec"] = codec.describe()
        report["settings"]["splade_type"] = seed_client.capabilities().splade_type
        report["settings"]["engine_version"] = seed_client.capabilities().version
        written = {name: 0 for name in topologies}
        rate: dict[str, float] = {}
        active = list(topologies)
        report["stopped"] = {}
        for size in sizes:
            # will the growth to `size` fit the time left and the disk, at the last measured bulk rates?
            # If not, the last topology (the cluster: replicas, slower bulk) drops out first.
            left = args.max_minutes * 60 - (time.monotonic() - started)
            free_gb = shutil.disk_usage(work).free / 1e9
            while active:
                need = sum((size - written[n]) / rate[n] + 60 for n in active if n in rate) * 1.15
                need_gb = sum((size - written[n]) * 11e3 * (2 if n == "cluster" else 1) for n in active) / 1e9
                if rate and need > left:
                    why = f"growing to {size} needs ~{need / 60:.0f} min, {left / 60:.0f} min left"
                elif free_gb - need_gb < args.min_free_gb:
                    why = f"growing to {size} needs ~{need_gb:.0f} GB, {free_gb:.0f} GB free"
                else:
                    break
                name = active.pop()
                report["stopped"][name] = f"stopped at {written[name]} docs: {why}"
            if not active:
                break
            row: dict[str, Any] = {"docs": size, "topologies": {}}
            for name in active:
                client, layout = clients[name]
                index = f"bench-scale-{name}"
                if written[name] == 0 and client.index_exists(index):
                    client.delete_index(index)
                t0 = time.monotonic()
                summary = ingest_encoded(
                    synthetic(seeds, written[name], size, codec.n_centroids),
                    client,
                    index,
                    encoder,
                    layout=layout,
                    batching=Batching(bulk_docs=args.bulk_docs),
                    refresh=True,
                )
                seconds = time.monotonic() - t0
                assert summary.dead_lettered == 0, summary.reasons
                rate[name] = summary.indexed / seconds
                written[name] = size
                sizes_now = index_bytes(client, index)
                assert sizes_now["docs"] == size, sizes_now
                # the bulk leaves merges running for a while: time the searches, not the merges
                settled = wait_until_settled(client)
                measured = measure_queries(client, index, encoder, queries, args)
                measured["settled"] = settled
                row["topologies"][name] = {
                    "bulk_docs_per_s": round(rate[name], 1),
                    "bulk_seconds": round(seconds, 1),
                    "bulk_docs": summary.indexed,
                    "index_bytes_per_doc": round(sizes_now["primary_store_bytes"] / size, 1),
                    **sizes_now,
                    **measured,
                }
                if name == "single":
                    report["rows"].extend(_rows(measured, size))
                print(f"{name} {size}: {row['topologies'][name]}", flush=True)
            report["sizes"].append(row)
            _merge_engines(report, args)
            _summarise(report, topologies)
            write_report(args.out, report)
            _plot(report, topologies, args.plot)
        report["seconds"] = round(time.monotonic() - started, 1)
        _summarise(report, topologies)
        _merge_engines(report, args)
        write_report(args.out, report)
        _plot(report, topologies, args.plot)
    finally:
        for client, _ in clients.values():
            with contextlib.suppress(Exception):
                client.close()
        if not args.keep:
            for stop in stoppers:
                stop()


def _merge_engines(report: dict[str, Any], args: argparse.Namespace) -> None:
    """``engines``: this run's figures under its engine, next to the other engine's from the file's last run
    (one run per engine; the top-level keys are this run's, as before)."""
    engines = other_engines(args.out, args.engine)
    report["settings"]["load_average_now"] = os.getloadavg()
    engines[args.engine] = {
        "settings": report["settings"],
        "goal_default_plan_p50_ratio": report.get("goal_default_plan_p50_ratio"),
        "rows": report["rows"],
        "sizes": report["sizes"],
        "stopped": report.get("stopped", {}),
    }
    report["engines"] = engines


def _summarise(report: dict[str, Any], topologies: list[str]) -> None:
    goal = {}
    for name in topologies:
        rows = [r for r in report["sizes"] if name in r["topologies"]]
        if not rows:
            continue
        first, last = rows[0], rows[-1]
        # the library's default plan (runs before this one measured SPLADE -> MaxSim under that name)
        plan = "default" if "default" in first["topologies"][name]["plans"] else "rerank"
        a = first["topologies"][name]["plans"][plan]["p50_ms"]
        b = last["topologies"][name]["plans"][plan]["p50_ms"]
        ea = first["topologies"][name]["plans"][plan]["engine_p50_ms"]
        eb = last["topologies"][name]["plans"][plan]["engine_p50_ms"]
        goal[name] = {
            "plan": plan,
            "from_docs": first["docs"],
            "to_docs": last["docs"],
            "default_p50_ms": [a, b],
            "ratio": round(b / a, 2),
            "within_2x": b <= 2 * a,
            # the engine's share alone: steadier than the wall clock on a shared machine
            "default_engine_p50_ms": [ea, eb],
            "engine_ratio": round(eb / ea, 2),
        }
    report["goal_default_plan_p50_ratio"] = goal


def _plot(report: dict[str, Any], topologies: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    styles = {"single": "-", "cluster": "--"}
    for name in topologies:
        rows = [r for r in report["sizes"] if name in r["topologies"]]
        docs = [r["docs"] for r in rows]
        for plan in PLANS:
            p50 = [r["topologies"][name]["plans"][plan]["p50_ms"] for r in rows]
            axes[0].plot(docs, p50, styles[name], marker="o", label=f"{plan} ({name})")
        axes[1].plot(
            docs,
            [r["topologies"][name]["index_bytes_per_doc"] for r in rows],
            styles[name],
            marker="o",
            label=name,
        )
        axes[2].plot(
            docs,
            [r["topologies"][name]["bulk_docs_per_s"] for r in rows],
            styles[name],
            marker="o",
            label=name,
        )
    if report["sizes"]:
        plans = report["sizes"][0]["topologies"][topologies[0]]["plans"]
        base = plans["default" if "default" in plans else "rerank"]["p50_ms"]
        axes[0].axhline(
            2 * base, color="grey", lw=0.8, ls=":", label="goal: 2x default p50 at the first size"
        )
    titles = ("query p50 (ms, client wall clock)", "index bytes / doc (primaries)", "pre-encoded bulk docs/s")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("documents")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=6.5, ncol=2)
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    engine = report["settings"]["engine"]
    fig.suptitle(f"colsplade cost curve, {engine}, SciFact-grown corpus (2 shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
