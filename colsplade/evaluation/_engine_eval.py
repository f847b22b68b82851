"""End-to-end evaluation on a real engine: index a BEIR dataset, run every retrieval plan, measure.

Used by ``colsplade eval`` and ``benchmarks/bench_query.py``. Every plan runs through the same
:class:`~colsplade.query.SearchClient` that backend code uses, interleaved per query so that latency
ratios are fair on a shared machine; quality goes through ir-measures (:func:`evaluate_run`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colsplade._types import VariantChoice
from colsplade.evaluation._beir import load_beir
from colsplade.evaluation._download import resolve_dataset
from colsplade.evaluation._metrics import mean_metrics, per_query_metrics
from colsplade.exceptions import InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "PLANS",
    "Plan",
    "compare_results",
    "default_plans",
    "ensure_dataset_index",
    "evaluate_on_engine",
    "results_markdown",
    "write_results",
]


@dataclass(frozen=True)
class Plan:
    """One retrieval plan: a name and the :meth:`SearchClient.search` arguments (None: the engine's BM25)."""

    name: str
    search_kwargs: Mapping[str, Any] | None


def default_plans(
    window: int = 100,
    knn_k: int = 10,
    bm25_fields: Sequence[str] = ("title", "text"),
    first_stage_weight: float = 0.0,
) -> list[Plan]:
    """BM25, SPLADE, SPLADE + ColBERT (engine / client rerank), BM25 + ColBERT, the fused plans (BM25 or
    SPLADE kept next to MaxSim: ``bm25+colbert(fused)`` is the default, ``(rrf)``, ``splade+colbert(fused)``,
    ``hybrid(bm25+splade)+colbert(fused)``), ColBERT token-ANN, hybrid BM25 + SPLADE (RRF) + ColBERT; with
    ``first_stage_weight`` > 0 also SPLADE + ColBERT with MaxSim + w * SPLADE score (``weighted``).

    The named plans (:data:`colsplade.query.QUERY_PLANS`) run under their own names with ``plan=``, so the
    figures are those of what backend code gets from ``SearchClient.search(plan=...)``; ``bm25_fields``
    is the BM25 plans' fields (the client's ``text_fields``).
    """
    fused = (
        [
            Plan(
                "splade+colbert(weighted)",
                {
                    "plan": "splade+colbert",
                    "rerank": "auto",
                    "window": window,
                    "first_stage_weight": first_stage_weight,
                },
            )
        ]
        if first_stage_weight
        else []
    )
    fields = list(bm25_fields)
    return [
        *fused,
        Plan("bm25", None),
        Plan("splade", {"plan": "splade", "window": window}),
        Plan("splade+colbert(engine)", {"plan": "splade+colbert", "rerank": "engine", "window": window}),
        Plan("splade+colbert(client)", {"plan": "splade+colbert", "rerank": "client", "window": window}),
        Plan("bm25+colbert", {"plan": "bm25+colbert", "bm25_fields": fields, "window": window}),
        *(
            Plan(name, {"plan": name, "bm25_fields": fields, "window": window})
            for name in ("bm25+colbert(fused)", "bm25+colbert(rrf)", "hybrid(bm25+splade)+colbert(fused)")
        ),
        Plan("splade+colbert(fused)", {"plan": "splade+colbert(fused)", "window": window}),
        Plan("colbert-ann", {"splade": False, "knn_k": knn_k, "rerank": "auto", "window": window}),
        Plan(
            "hybrid(bm25+splade)+colbert",
            {"plan": "hybrid(bm25+splade)+colbert", "bm25_fields": fields, "window": window},
        ),
    ]


PLANS = tuple(p.name for p in default_plans(first_stage_weight=1.0))


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {}
    a = np.asarray(ms, dtype=float)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "mean": round(float(a.mean()), 2),
        "n": len(a),
    }


def ensure_dataset_index(
    client: Any,
    index: str,
    encoder: Any,
    data_dir: Path,
    reuse: bool = True,
    progress: bool = True,
    reencode: bool = False,
    analyzer: str = "auto",
) -> dict[str, Any]:
    """Ingest a BEIR ``corpus.jsonl`` (title + text) into ``index`` unless it already holds every document.

    A new index is first made as a team's own would be: ``title`` and ``text`` as text fields analysed by
    ``analyzer`` (``auto``: ``english`` where the engine has the language analysers, else ``standard``);
    ingest then adds colsplade's fields next to them. The report names the analyser the index has.
    """
    from colsplade.ingest import FieldMapping, ingest
    from colsplade.mappings import text_properties

    with open(data_dir / "corpus.jsonl", encoding="utf-8") as fh:
        n_docs = sum(1 for line in fh if line.strip())
    exists = client.index_exists(index)
    if exists and reuse:
        count = client.count(index)
        if count >= n_docs:
            return {"reused": True, "documents": count, "analyzer": _bm25_analyzer(client, index)}
        logger.info("index %s holds %d of %d documents; ingesting the rest", index, count, n_docs)
    elif not exists:
        chosen = client.capabilities().resolve_analyzer(analyzer)
        client.create_index(
            index,
            {
                # colsplade's own index defaults (a single-node cluster stays green)
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": {"properties": text_properties(_TEXT_FIELDS, chosen)},
            },
        )
    started = time.monotonic()
    summary = ingest(
        str(data_dir / "corpus.jsonl"),
        client,
        index,
        encoder,
        fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
        reencode=reencode,
        progress=progress,
    )
    return {
        "reused": False,
        "seconds": round(time.monotonic() - started, 1),
        "analyzer": _bm25_analyzer(client, index),
        **summary.as_dict(),
    }


_TEXT_FIELDS = ("title", "text")


def _bm25_analyzer(client: Any, index: str) -> str:
    """The analyser of the index's BM25 text fields (``title`` / ``text``), or ``a / b`` when they differ."""
    from colsplade.mappings import text_analyzers

    found = text_analyzers(client.get_mapping(index).get("properties", {}), _TEXT_FIELDS)
    return " / ".join(dict.fromkeys(found.values())) or "none"


def _store_size(client: Any, index: str) -> dict[str, Any]:
    stats = client.stats(index).get("_all", {}).get("primaries", {})
    docs = client.count(index)
    store = stats.get("store", {}).get("size_in_bytes")
    lucene_docs = stats.get("docs", {}).get("count")
    return {
        "documents": docs,
        "lucene_documents": lucene_docs,
        "store_bytes": store,
        "bytes_per_document": round(store / docs, 1) if store and docs else None,
        "bytes_per_token": round(store / (lucene_docs - docs), 1)
        if store and lucene_docs and lucene_docs > docs
        else None,
    }


def evaluate_on_engine(
    client: Any,
    data_dir: str | os.PathLike[str],
    model: Any,
    *,
    index: str | None = None,
    split: str = "test",
    plans: Sequence[Plan] | None = None,
    max_queries: int | None = None,
    warmup: int = 5,
    reuse_index: bool = True,
    variant: VariantChoice = "int8",
    progress: bool = True,
    on_query: Callable[[int, int], None] | None = None,
    max_query_length: int | None = None,
    query_ids: Sequence[str] | None = None,
    ingest: bool = True,
    analyzer: str = "auto",
) -> dict[str, Any]:
    """Index ``data_dir`` (BEIR) into ``client``'s engine and evaluate every plan on its ``split`` queries.

    ``data_dir`` is a BEIR directory or the name of a downloaded dataset (``colsplade datasets download``).

    Returns a plain dict: engine, index size, query encoding time, and per plan nDCG@10 / MRR@10 /
    Recall@100 plus latency percentiles (ms, end to end: encoding, engine round trips, client rerank).
    Plans the engine cannot run (in-engine rerank without painless) are reported as skipped with the reason.
    ``default_plan`` names the plan a :class:`~colsplade.query.SearchClient` on this index uses when the
    caller names none, and ``default_plan_result`` the evaluated plan that runs it (None if none does).

    ``max_query_length``: the search client's query length (see :class:`~colsplade.query.SearchClient`);
    ``query_ids``: evaluate these queries of the split (default: the first ``max_queries``);
    ``ingest=False``: the index must already hold the corpus (filled by the caller, e.g. pre-encoded).
    ``analyzer``: the analyser of a new index's text fields, which the BM25 plans search (``auto``:
    ``english`` where the engine has it, else ``standard``); ``bm25_analyzer`` in the result names the one
    the index has, so every figure says which BM25 it is compared to.
    """
    from colsplade.query import SearchClient

    given = os.fspath(data_dir)
    data_dir = resolve_dataset(data_dir)
    data = load_beir(data_dir, split)
    encoder = _encoder(model, variant, max_query_length)
    index = index or f"eval-{data_dir.name}-{encoder.config.name}".lower().replace("_", "-").replace("+", "-")
    if ingest:
        ingest_report = ensure_dataset_index(
            client, index, encoder, data_dir, reuse_index, progress, analyzer=analyzer
        )
    else:
        ingest_report = {"reused": True, "documents": client.count(index)}
    search = SearchClient(
        index, encoder, client=client, text_fields=_TEXT_FIELDS, max_query_length=max_query_length
    )
    runnable, skipped = _runnable_plans(search, plans or default_plans())
    query_ids = _query_ids(data.queries, split, max_queries, query_ids)
    measured = evaluate_plans(
        client,
        search,
        {q: data.queries[q] for q in query_ids},
        {q: data.qrels[q] for q in query_ids},
        runnable,
        bm25_index=index,
        bm25_fields=_TEXT_FIELDS,
        warmup=warmup,
        progress=progress,
        on_query=on_query,
    )
    return {
        "dataset": given,
        "split": split,
        "queries": len(query_ids),
        **_engine_and_model(client, search, encoder, index, variant, runnable),
        "ingest": ingest_report,
        "index_size": _store_size(client, index),
        "query_encoding_ms": measured["query_encoding_ms"],
        "plans": measured["plans"],
        "skipped": skipped,
    }


def _encoder(model: Any, variant: VariantChoice, max_query_length: int | None) -> Any:
    """The ONNX encoder of ``model`` (a model directory, a pair, or an encoder as it is)."""
    from colsplade.encoders import as_encoder

    options: dict[str, Any] = {"variant": variant}
    if max_query_length is not None:
        options["max_query_length"] = max_query_length
    return as_encoder(model, **options)


def _runnable_plans(search: Any, plans: Sequence[Plan]) -> tuple[list[Plan], dict[str, str]]:
    """-> (the plans this index and engine can run, {skipped plan: why}): in-engine rerank needs
    painless, token kNN the nested vector layout."""
    runnable: list[Plan] = []
    skipped: dict[str, str] = {}
    for plan in plans:
        if plan.search_kwargs and plan.search_kwargs.get("rerank") == "engine":
            try:
                search.resolve_rerank("engine")
            except InvalidInputError as exc:
                skipped[plan.name] = str(exc)
                continue
        if plan.search_kwargs and plan.search_kwargs.get("knn_k") and not search.spec.nested_vectors:
            skipped[plan.name] = (
                "token kNN needs the opt-in nested vector layout; this index has the compact token store only"
            )
            continue
        runnable.append(plan)
    return runnable, skipped


def _query_ids(
    queries: Mapping[str, str], split: str, max_queries: int | None, query_ids: Sequence[str] | None
) -> list[str]:
    """The queries to evaluate: ``query_ids`` (each must be a query of the split), else the first
    ``max_queries`` (all when None)."""
    if query_ids is None:
        return list(queries)[: max_queries or None]
    missing = [q for q in query_ids if q not in queries]
    if missing:
        raise InvalidInputError(f"{len(missing)} query ids are not {split} queries, e.g. {missing[0]!r}")
    return list(query_ids)


def _engine_and_model(
    client: Any, search: Any, encoder: Any, index: str, variant: VariantChoice, runnable: Sequence[Plan]
) -> dict[str, Any]:
    """The result's description of what was measured: engine, index, model, default plan, BM25 analyser."""
    caps = client.capabilities()
    return {
        "engine": client.engine,
        "engine_version": caps.version,
        "index": index,
        "model": {
            "name": encoder.config.name,
            "version": str(encoder.config.version),
            "variant": getattr(encoder, "variant", variant),
        },
        "default_rerank": search.resolve_rerank("auto"),
        "default_plan": search.resolve_plan(),
        "default_plan_result": _default_plan_result(search, runnable),
        "max_query_length": encoder.config.max_query_length,
        "bm25_analyzer": _bm25_analyzer(client, index),
    }


def evaluate_plans(
    client: Any,
    search: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    plans: Sequence[Plan],
    *,
    bm25_index: str | None = None,
    bm25_fields: Sequence[str] = ("title", "text"),
    warmup: int = 5,
    progress: bool = True,
    on_query: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every plan on every query through ``search`` (a :class:`~colsplade.query.SearchClient`) and score
    the runs against ``qrels``.

    The plans are interleaved query by query, so every plan meets the same machine state; the first
    ``warmup`` queries run once unmeasured. A plan whose ``search_kwargs`` is None is the engine's own
    BM25 (``multi_match`` over ``bm25_fields``) on ``bm25_index`` (default: the search client's index):
    the team's current search, on its own index and analysers.

    Returns ``{"plans": {name: {metric: mean, "latency_ms": percentiles}}, "per_query": {name: {qid:
    {metric: value}}}, "query_encoding_ms": percentiles}``.
    """
    from colsplade.query import bm25_clause, search_body

    bm25_index = bm25_index or search.index

    def run(plan: Plan, text: str) -> dict[str, float]:
        if plan.search_kwargs is None:
            # the team's BM25 as it runs today: no model, so not SearchClient(plan="bm25"), which encodes
            # the query too; the request is built as the client builds its own (the same hits and scores)
            body = search_body(bm25_clause(text, list(bm25_fields)), 100)
            return {h["_id"]: float(h["_score"]) for h in client.search(bm25_index, body)["hits"]["hits"]}
        kwargs = dict(plan.search_kwargs)
        window = int(kwargs.pop("window", 100))
        result = search.search(text, k=min(100, window), window=window, **kwargs)
        return {h.id: h.score for h in result.hits}

    query_ids = list(queries)
    for qid in query_ids[:warmup]:
        for plan in plans:
            run(plan, queries[qid])
    latencies: dict[str, list[float]] = {p.name: [] for p in plans}
    runs: dict[str, dict[str, dict[str, float]]] = {p.name: {} for p in plans}
    encode_ms: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(query_ids), desc="eval queries", unit="q")
    for n, qid in enumerate(query_ids, start=1):
        text = queries[qid]
        t = time.perf_counter()
        search.encode_query(text)
        encode_ms.append((time.perf_counter() - t) * 1000)
        for plan in plans:  # interleaved: every plan meets the same machine state
            t = time.perf_counter()
            runs[plan.name][qid] = run(plan, text)
            latencies[plan.name].append((time.perf_counter() - t) * 1000)
        if bar is not None:
            bar.update(1)
        if on_query is not None:
            on_query(n, len(query_ids))
    if bar is not None:
        bar.close()
    judged = {q: qrels[q] for q in query_ids if q in qrels}
    per_query = {plan.name: per_query_metrics(judged, runs[plan.name]) for plan in plans}
    results = {}
    for plan in plans:
        results[plan.name] = {
            **{k: round(v, 4) for k, v in mean_metrics(per_query[plan.name]).items()},
            "latency_ms": _percentiles(latencies[plan.name]),
        }
    return {
        "plans": results,
        "per_query": per_query,
        "query_encoding_ms": _percentiles(encode_ms),
    }


def _default_plan_result(search: Any, plans: Sequence[Plan]) -> str | None:
    """The evaluated plan that runs what ``search`` does when the caller names no plan: the default plan
    by name, with no fusion weight, and no rerank or the client's default one."""
    default = search.resolve_plan()
    reranks = search.plan_arguments(default).get("rerank", "auto") != "none"
    mode = search.resolve_rerank() if reranks else "none"
    for plan in plans:
        kwargs = plan.search_kwargs or {}
        if kwargs.get("plan") != default or kwargs.get("first_stage_weight") or "fusion_weight" in kwargs:
            continue
        if kwargs.get("rerank") in (None, "auto", mode):
            return str(plan.name)
    return None


def results_markdown(result: Mapping[str, Any]) -> str:
    """A markdown table of one result: plan, quality, latency."""
    lines = [
        f"**{result['engine']} {result['engine_version']}**, {result['dataset']} ({result['split']}, "
        f"{result['queries']} queries), model {result['model']['name']} v{result['model']['version']} "
        f"({result['model']['variant']}); query encoding p50 {result['query_encoding_ms'].get('p50')} ms; "
        f"BM25 analyser: {result.get('bm25_analyzer', 'unknown')}",
        "",
        f"Default plan (what `SearchClient.search` runs when no plan is named): `{result.get('default_plan')}`"
        + (
            f", reported as **{result['default_plan_result']}** below."
            if result.get("default_plan_result")
            else " (not among the evaluated plans)."
        ),
        "",
        "| plan | nDCG@10 | MRR@10 | Recall@100 | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["plans"].items():
        lat = r["latency_ms"]
        label = f"**{name}** (default)" if name == result.get("default_plan_result") else name
        lines.append(
            f"| {label} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | {r['recall@100']:.4f} | "
            f"{lat.get('p50')} | {lat.get('p95')} | {lat.get('p99')} |"
        )
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {reason} | | | | | |")
    size = result.get("index_size", {})
    if size.get("bytes_per_document"):
        line = f"Index: {size['store_bytes']} bytes, {size['bytes_per_document']} per document"
        # Only nested vectors are Lucene documents of their own; the compact store's tokens are not counted.
        if size.get("bytes_per_token"):
            line += f", {size['bytes_per_token']} per ColBERT token"
        lines += ["", line + "."]
    return "\n".join(lines) + "\n"


def write_results(
    result: Mapping[str, Any], out_dir: str | os.PathLike[str], stem: str | None = None
) -> dict[str, str]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` (quality against p50 latency); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"eval-{result['engine']}"
    paths = {"json": str(out / f"{stem}.json"), "markdown": str(out / f"{stem}.md")}
    Path(paths["json"]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    Path(paths["markdown"]).write_text(results_markdown(result), encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'colsplade[eval]'): no plot written")
        return paths
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in result["plans"].items():
        x, y = r["latency_ms"].get("p50"), r["ndcg@10"]
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("p50 latency per query (ms, encoding included)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(
        f"{result['dataset'].rstrip('/').split('/')[-1]} on {result['engine']} {result['engine_version']}"
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths["plot"] = str(out / f"{stem}.png")
    fig.savefig(paths["plot"], dpi=120)
    plt.close(fig)
    return paths


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """A markdown table of the plans two results share: each metric and p50 latency, A, B and B − A."""
    lines = [
        f"A: {a['engine']} {a['engine_version']}, model {a['model']['name']} v{a['model']['version']}",
        f"B: {b['engine']} {b['engine_version']}, model {b['model']['name']} v{b['model']['version']}",
        "",
        "| plan | nDCG@10 A | nDCG@10 B | Δ | Recall@100 A | Recall@100 B | Δ | p50 ms A | p50 ms B | B/A |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in [n for n in a["plans"] if n in b["plans"]]:
        ra, rb = a["plans"][name], b["plans"][name]
        pa, pb = ra["latency_ms"].get("p50") or 0.0, rb["latency_ms"].get("p50") or 0.0
        ratio = f"{pb / pa:.2f}" if pa else "n/a"
        lines.append(
            f"| {name} | {ra['ndcg@10']:.4f} | {rb['ndcg@10']:.4f} | {rb['ndcg@10'] - ra['ndcg@10']:+.4f} | "
            f"{ra['recall@100']:.4f} | {rb['recall@100']:.4f} | {rb['recall@100'] - ra['recall@100']:+.4f} | "
            f"{pa} | {pb} | {ratio} |"
        )
    return "\n".join(lines) + "\n"
