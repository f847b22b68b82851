"""Ingest speed, memory and index footprint (measurement rules: benchmarks/README.md).

    python3 benchmarks/bench_ingest.py --model MODEL_DIR --out benchmarks/results/ingest.json
    python3 benchmarks/bench_ingest.py --build-model /tmp/joint-minilm ...   # untrained joint model from MiniLM

Measures, in one process and on the same texts (SciFact, title + " " + text):

1. encoder only: documents/s of ``encode_documents`` (int8 ONNX, batch 32) over the corpus;
2. end to end into each engine: documents/s of :func:`colsplade.ingest.ingest` from the JSONL file into a
   fresh index (float vectors; with and without the HNSW graph on the token vectors), next to (1);
3. peak RSS while ingesting a generated endless-style stream (``--stream-docs``, 100k by default), sampled
   every ``--rss-every`` documents: the curve must stay flat;
4. index size on disk per document and per token for float, byte and bit ColBERT vectors (after a force
   merge to one segment).

Engines: local nodes started here (ephemeral), unless ``--elasticsearch-url`` / ``--opensearch-url``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, write_report


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_corpus(path: Path, limit: int | None) -> list[dict[str, Any]]:
    docs = []
    with path.open(encoding="utf-8") as f:
        for line in itertools.islice(f, limit):
            docs.append(json.loads(line))
    return docs


def encoder_only(encoder: Any, texts: list[str], batch: int) -> dict[str, Any]:
    encoder.encode_documents(texts[:batch])  # warm-up
    t0 = time.perf_counter()
    tokens = terms = 0
    for start in range(0, len(texts), batch):
        out = encoder.encode_documents(texts[start : start + batch])
        tokens += sum(len(c) for c in out.colbert)
        terms += sum(len(s) for s in out.splade)
    seconds = time.perf_counter() - t0
    return {
        "docs": len(texts),
        "seconds": round(seconds, 2),
        "docs_per_s": round(len(texts) / seconds, 1),
        "colbert_tokens_per_doc": round(tokens / len(texts), 1),
        "splade_terms_per_doc": round(terms / len(texts), 1),
    }


def end_to_end(client: Any, encoder: Any, corpus_file: Path, n_docs: int, batch: int, vectors: bool) -> dict:
    from colsplade.engines import delete_index
    from colsplade.ingest import FieldMapping, ingest

    index = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    try:
        summary = ingest(
            corpus_file,
            client,
            index,
            encoder,
            fields=FieldMapping(id_field="_id", text_fields=("title", "text"), joiner=" "),
            encode_batch_size=batch,
            index_vectors=vectors,
            progress=False,
        )
        client.refresh(index)
        count = client.count(index)
    finally:
        delete_index(client, index, missing_ok=True)
    assert summary.indexed == n_docs == count, (summary, count)
    return {
        "index_vectors": vectors,
        "docs": summary.indexed,
        "seconds": round(summary.seconds, 2),
        "docs_per_s": round(summary.docs_per_second, 1),
        "encode_seconds": round(summary.encode_seconds, 2),
        "write_seconds": round(summary.write_seconds, 2),
        "retried": summary.retried,
    }


def rss_curve(client: Any, encoder: Any, n_docs: int, every: int) -> dict[str, Any]:
    """Ingest a generated stream (a generator: no length, nothing held) and sample RSS as it goes."""
    from colsplade.engines import delete_index
    from colsplade.ingest import IterableSource, ingest

    words = ["cell", "gene", "protein", "virus", "immune", "response", "cancer", "patient", "blood", "brain", "heart", "liver", "lung", "mouse", "human", "treatment", "therapy", "drug", "dose", "trial", "data", "analysis", "method", "signal", "pathway", "expression"]  # fmt: skip

    def stream():
        for i in range(n_docs):
            text = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(60 + i % 40))
            yield {"_id": f"s{i}", "title": f"generated {i}", "text": text, "n": i}

    index = f"bench-rss-{uuid.uuid4().hex[:8]}"
    samples: list[dict[str, float]] = []
    started = time.perf_counter()
    next_mark = [0]

    def on_batch(summary: Any) -> None:
        if summary.read >= next_mark[0]:
            samples.append(
                {
                    "docs": summary.read,
                    "seconds": round(time.perf_counter() - started, 1),
                    "rss_mib": round(_rss_mib(), 1),
                }
            )
            next_mark[0] = summary.read + every

    try:
        summary = ingest(
            IterableSource(stream(), name="generated"),
            client,
            index,
            encoder,
            index_vectors=False,
            progress=False,
            on_batch=on_batch,
        )
    finally:
        delete_index(client, index, missing_ok=True)
    samples.append(
        {"docs": summary.read, "seconds": round(summary.seconds, 1), "rss_mib": round(_rss_mib(), 1)}
    )
    rss = [s["rss_mib"] for s in samples]
    tail = rss[len(rss) // 4 :]  # after warm-up
    return {
        "docs": summary.read,
        "docs_per_s": round(summary.docs_per_second, 1),
        "samples": samples,
        "rss_first_mib": rss[0],
        "rss_max_mib": max(rss),
        "rss_growth_after_first_quarter_mib": round(max(tail) - min(tail), 1) if tail else 0.0,
        "peak_rss_process_mib": round(_peak_rss_mib(), 1),
    }


def index_sizes(client: Any, encoder: Any, corpus_file: Path, n_docs: int) -> dict[str, Any]:
    from colsplade.engines import delete_index
    from colsplade.exceptions import InvalidInputError
    from colsplade.ingest import FieldMapping, ingest

    out: dict[str, Any] = {}
    for element_type in ("float", "byte", "bit"):
        index = f"bench-size-{element_type}-{uuid.uuid4().hex[:6]}"
        vectors = True
        try:
            try:
                summary = ingest(
                    corpus_file, client, index, encoder,
                    fields=FieldMapping(id_field="_id", joiner=" "), element_type=element_type,
                    index_vectors=True, progress=False,
                )  # fmt: skip
            except InvalidInputError as exc:
                # The Maven OpenSearch k-NN plugin has no native library, which bit vectors need.
                logging.getLogger("bench").warning(
                    "%s with HNSW refused (%s); storing only", element_type, exc
                )
                delete_index(client, index, missing_ok=True)
                vectors = False
                summary = ingest(
                    corpus_file, client, index, encoder,
                    fields=FieldMapping(id_field="_id", joiner=" "), element_type=element_type,
                    index_vectors=False, progress=False,
                )  # fmt: skip
            client.refresh(index)
            client.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": "1"})
            client.refresh(index)
            stats = client.stats(index)["_all"]["primaries"]
            store = stats["store"]["size_in_bytes"]
            lucene_docs = stats["docs"]["count"]
            docs = summary.indexed
            out[element_type] = {
                "index_vectors": vectors,
                "docs": docs,
                "store_bytes": store,
                "bytes_per_doc": round(store / docs, 1),
                "bytes_per_token": round(store / max(1, lucene_docs - docs), 1),
                "tokens_per_doc": round((lucene_docs - docs) / docs, 1),
            }
        finally:
            delete_index(client, index, missing_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="joint model directory with onnx/model-int8.onnx")
    parser.add_argument("--build-model", help="build an untrained joint MiniLM model directory here first")
    parser.add_argument(
        "--data", default=str(DATA), help="BEIR folder with corpus.jsonl, or a downloaded dataset's name"
    )
    parser.add_argument("--docs", type=int, default=None, help="limit the corpus (default: all 5,183)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--elasticsearch-url")
    parser.add_argument("--opensearch-url")
    parser.add_argument("--stream-docs", type=int, default=100_000, help="RSS curve stream length (0: skip)")
    parser.add_argument("--rss-every", type=int, default=2_000)
    parser.add_argument("--size-docs", type=int, default=1_000, help="documents per index-size run (0: skip)")
    parser.add_argument("--no-graph-run", action="store_true", help="skip the end-to-end run without HNSW")
    parser.add_argument(
        "--doc-top-k",
        type=int,
        default=1000,
        help="keep this many SPLADE terms per document (an untrained head is dense; trained ones keep ~1,000)",
    )
    parser.add_argument("--out", default="benchmarks/results/ingest.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from colsplade.encoders import load_encoder
    from colsplade.engines import connect
    from colsplade.evaluation import resolve_dataset
    from colsplade.local import start_node

    model = args.model
    if args.build_model:
        from colsplade.onnx_export import export_model_dir
        from colsplade.training import init_model_dir

        if not (Path(args.build_model) / "onnx" / "model-int8.onnx").is_file():
            init_model_dir("joint", args.build_model, base="minilm", max_doc_length=256, max_query_length=32)
            export_model_dir(args.build_model, variants=["int8"])
        model = args.build_model
    if not model:
        parser.error("--model or --build-model is needed")
    encoder = load_encoder(model, variant="int8", batch_size=args.batch, doc_top_k=args.doc_top_k or None)

    data = resolve_dataset(args.data)
    corpus = load_corpus(data / "corpus.jsonl", args.docs)
    work = Path("/tmp") / f"bench-ingest-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    corpus_file = work / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    size_file = work / "size.jsonl"
    size_file.write_text("".join(json.dumps(d) + "\n" for d in corpus[: args.size_docs]), encoding="utf-8")
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]

    report: dict[str, Any] = {
        "settings": {
            "model": str(model),
            "model_id": encoder.config.model_id,
            "variant": "int8",
            "max_doc_length": encoder.config.max_doc_length,
            "colbert_dim": encoder.config.colbert.dim if encoder.config.colbert else None,
            "batch": args.batch,
            "doc_top_k": args.doc_top_k,
            "docs": len(corpus),
            "stream_docs": args.stream_docs,
            "size_docs": args.size_docs,
            "bulk_docs": 200,
            "bulk_bytes": 16 * 1024 * 1024,
        },
        "encoder_only": encoder_only(encoder, texts, args.batch),
        "engines": {},
    }
    nodes = []
    try:
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            url = getattr(args, f"{engine}_url")
            if not url:
                node = start_node(engine, name=f"bench-{uuid.uuid4().hex[:6]}", ephemeral=True, heap="1g")
                nodes.append(node)
                url = node.url
            client = connect(url=url, engine=engine)
            caps = client.capabilities()
            result: dict[str, Any] = {"version": caps.version, "splade_type": caps.splade_type}
            runs = [True] if args.no_graph_run else [True, False]
            for vectors in runs:
                key = "end_to_end_hnsw" if vectors else "end_to_end_stored_only"
                result[key] = end_to_end(client, encoder, corpus_file, len(corpus), args.batch, vectors)
                result[key]["ratio_to_encoder"] = round(
                    result[key]["docs_per_s"] / report["encoder_only"]["docs_per_s"], 3
                )
            if args.size_docs:
                result["index_size"] = index_sizes(
                    client, encoder, size_file, min(args.size_docs, len(corpus))
                )
            if args.stream_docs and not report["engines"]:  # once: memory is the client's, not the engine's
                result["rss_curve"] = rss_curve(client, encoder, args.stream_docs, args.rss_every)
            report["engines"][engine] = result
            client.close()
            # Interim results survive a later failure.
            write_report(args.out, report)
    finally:
        for node in nodes:
            threading.Thread(target=node.stop).start()
    write_report(args.out, report)


if __name__ == "__main__":
    main()
