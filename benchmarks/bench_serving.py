"""Serving cost of the default layout (compact token store), both engines in one run.

Writes ``benchmarks/results/serving.json`` with the keys the compact-store issue reads:

    {"engines": {"elasticsearch": E, "opensearch": E}}, E = {"docs", "index_bytes_per_doc",
     "token_store_bytes_per_token", "query_encode_p50_ms", "plans": {"bm25", "splade", "rerank",
     "rerank_float_reference"}, "ingest": {"encoder_only_docs_per_s", "end_to_end_docs_per_s", "max_rss_mb"}}

What it does, per engine:
1. encoder-only docs/s on the first ``--encoder-docs`` documents (the same ONNX encoder ingest uses);
   with ``--fresh-codec`` the model's codec is removed, so the first engine's ingest fits the default one
   (as a team's first ingest does) and the second engine's reuses it;
2. the real ``ingest()`` of the whole corpus into a fresh index (end-to-end docs/s, peak RSS sampled
   from /proc every 0.2 s), force-merged to one segment, store bytes per document;
3. the token store's own bytes: the store of a twin index holding the same documents without the
   blob, subtracted, divided by the documents' ColBERT tokens (before any pooling);
4. ``codes_storage`` variants (``stored``, ``doc_values``) as twins with the blob, for the fetch choice;
5. the first ``--queries`` test queries, plans interleaved per query after warm-up: engine BM25
   (title + text), SPLADE top 10, SPLADE top ``window`` (the fetch-free baseline), SPLADE -> client
   MaxSim rerank at ``window`` from the blobs, and the same candidates reranked with the model's float
   vectors (kept aside during ingest: the quality reference).
``rerank_stage_p50_ms`` = p50 over queries of (engine time of the rerank request - engine time of the
same first stage without the blobs) + decode and MaxSim time: fetch + decode + MaxSim.

    python benchmarks/bench_serving.py --model MODEL_DIR --data scifact --queries 100
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report

from colsplade.encoders import CODEC_FILE, as_encoder
from colsplade.engines import connect_default
from colsplade.engines._bulk import BulkAction, bulk_write
from colsplade.engines._scan import scan_index
from colsplade.evaluation import evaluate_run, load_beir
from colsplade.ingest import FieldMapping, Layout, ingest
from colsplade.mappings import FieldSpec, index_body, spec_from_meta
from colsplade.query import SearchClient


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


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


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
        twins_made = (
            ("bare", "source", False, spec.store_compression),
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
        search = SearchClient(index, encoder, client=client, plan="splade+colbert", window=args.window)
        twins = {
            name: SearchClient(
                variants[name]["index"], encoder, client=client, plan="splade+colbert", window=args.window
            )
            for name in ("stored", "doc_values", "lz4")
        }
        runs: dict[str, dict[str, dict[str, float]]] = {p: {} for p in ("bm25", "splade", "rerank", "float")}
        lat: dict[str, list[float]] = {
            p: []
            for p in ("bm25", "splade", "rerank", "encode", "stage", "stored", "doc_values", "lz4", "fetch")
        }
        for warm, qid in [(True, q) for q in qids[:10]] + [(False, q) for q in qids]:
            query = data.queries[qid]
            t0 = time.perf_counter()
            bm25 = client.search(index, {"query": {"match": {"text": query}}, "size": 10, "_source": False})
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
            if warm:
                continue
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
        qrels = {q: data.qrels[q] for q in qids}
        for name in variants.values():
            client.delete_index(name["index"])
        return {
            "docs": len(corpus_ids),
            "index_bytes_per_doc": round(store / len(corpus_ids), 1),
            "token_store_bytes_per_token": round((store - variants["bare"]["store_bytes"]) / tokens, 2),
            "query_encode_p50_ms": _p50(lat["encode"]),
            "plans": {
                "bm25": {"p50_ms": _p50(lat["bm25"]), "ndcg@10": _ndcg(qrels, runs["bm25"])},
                "splade": {"p50_ms": _p50(lat["splade"]), "ndcg@10": _ndcg(qrels, runs["splade"])},
                "rerank": {
                    "window": args.window,
                    "p50_ms": _p50(lat["rerank"]),
                    "rerank_stage_p50_ms": _p50(lat["stage"]),
                    "ndcg@10": _ndcg(qrels, runs["rerank"]),
                },
                "rerank_float_reference": {"ndcg@10": _ndcg(qrels, runs["float"])},
            },
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
                "codec_describe": client.get_mapping(index)["_meta"]["colsplade"]["codec"],
                "encoder_only_docs": len(sample),
                "encoder_only_before_after_docs_per_s": [round(encoder_before, 2), round(encoder_after, 2)],
                "ingest_seconds": round(summary.seconds, 1),
                "ingest_encode_seconds": round(summary.encode_seconds, 1),
                "ingest_write_seconds": round(summary.write_seconds, 1),
                "fetch_p50_ms": _p50(lat["fetch"]),
                "store_compression": spec.store_compression,
                "lz4": {
                    "rerank_p50_ms": _p50(lat["lz4"]),
                    "store_bytes": variants["lz4"]["store_bytes"],
                    "index_bytes_per_doc": round(variants["lz4"]["store_bytes"] / len(corpus_ids), 1),
                    "token_store_bytes_per_token": round(
                        (variants["lz4"]["store_bytes"] - variants["lz4_bare"]["store_bytes"]) / tokens, 2
                    ),
                },
                "blob_bytes_per_token": round(_blob_bytes(client, index, spec) / tokens, 2),
                "codes_storage": {
                    "source": {"rerank_p50_ms": _p50(lat["rerank"]), "store_bytes": store},
                    "stored": {
                        "rerank_p50_ms": _p50(lat["stored"]),
                        "store_bytes": variants["stored"]["store_bytes"],
                    },
                    "doc_values": {
                        "rerank_p50_ms": _p50(lat["doc_values"]),
                        "store_bytes": variants["doc_values"]["store_bytes"],
                    },
                },
                "queries": len(qids),
                "p95_ms": {p: round(float(np.percentile(v, 95)), 2) for p, v in lat.items() if v},
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
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args()
    model_dir = Path(args.model)
    if args.fresh_codec and (model_dir / CODEC_FILE).is_file():
        (model_dir / CODEC_FILE).unlink()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    results = {}
    try:
        for engine in args.engines.split(","):
            results[engine] = bench_engine(engine, args, model_dir, work)
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
                "load_average_at_end": os.getloadavg(),
            },
            "engines": results,
        },
    )


if __name__ == "__main__":
    main()
