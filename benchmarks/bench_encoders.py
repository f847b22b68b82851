"""Encoder speed and memory: torch fp32 vs ONNX fp32 / int8, SPLADE / ColBERT / joint (see benchmarks/README.md).

    python3 benchmarks/bench_encoders.py --out benchmarks/results/encoders.json
    python3 benchmarks/bench_encoders.py --variants int8 --lengths 256 --baseline --rss \
        --work-dir /tmp/bench-models --out benchmarks/results/encoders-cpu.json

Builds untrained model directories from the base model (weights do not change speed), exports them,
then measures in one process: documents/s for 128- and 256-token passages (``--batch`` texts per
encode call, split into ONNX runs of at most ``--max-batch-tokens`` padded tokens), and the latency
p50/p99 of single 10-word queries (>= 200 after warm-up). ``--baseline`` adds, interleaved in the
same process, the encoders as they were before issue 11: the plain export (SDPA attention trace, no
transformer optimiser) and runs of ``--batch`` texts whatever their length. ``--rss`` measures the
peak RSS of each encoder (before / after, memory arena on / off) in a process of its own, encoding
``--rss-docs`` passages of the longest length. Writes one JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    return info


def versions() -> dict:
    import onnxruntime
    import tokenizers
    import torch
    import transformers

    return {
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "ort_providers": onnxruntime.get_available_providers(),
    }


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "unknown"


def load_texts(data: Path, n_docs: int, n_queries: int) -> tuple[list[str], list[str]]:
    docs, queries = [], []
    with (data / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = (d.get("title", "") + " " + d.get("text", "")).strip()
            if len(text.split()) > 260:  # long enough to fill 256 tokens
                docs.append(text)
            if len(docs) >= n_docs:
                break
    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            words = json.loads(line)["text"].split()
            if len(words) >= 10:
                queries.append(" ".join(words[:10]))
            if len(queries) >= n_queries:
                break
    return docs, queries


def cut_to_tokens(texts: list[str], tokenizer_file: Path, n_tokens: int) -> list[str]:
    """Texts that tokenise to n_tokens including [CLS], marker and [SEP] (so nothing is truncated)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    # all-MiniLM-L6-v2's tokenizer.json truncates and pads to 128; without this, every "256-token"
    # passage was cut to 128 tokens (results written before issue 11 measured 131-token passages).
    tok.no_truncation()
    tok.no_padding()
    out = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids[: n_tokens - 3]
        out.append(tok.decode(ids))
    return out


def interleaved_docs_per_s(encoders: dict, texts: list[str], batch: int, rounds: int) -> dict:
    """docs/s per encoder, measured round-robin (one batch each per round) so that load from other
    processes on a shared machine hits every variant alike; median and best batch time are reported."""
    batches = [texts[(r % max(1, len(texts) // batch)) * batch :][:batch] for r in range(rounds)]
    for enc_docs, _ in encoders.values():
        enc_docs(texts[:batch])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for r in range(rounds):
        for name, (enc_docs, _) in encoders.items():
            start = time.perf_counter()
            enc_docs(batches[r])
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "docs_per_s_median": round(batch / float(np.median(t)), 2),
            "docs_per_s_best": round(batch / min(t), 2),
            "batches": len(t),
        }
        for name, t in times.items()
    }


def interleaved_latency(encoders: dict, queries: list[str], warmup: int = 20) -> dict:
    """Single-query latency per encoder, interleaved query by query; p50 / p99 in ms."""
    for _, enc_queries in encoders.values():
        for q in queries[:warmup]:
            enc_queries([q])
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for q in queries:
        for name, (_, enc_queries) in encoders.items():
            start = time.perf_counter()
            enc_queries([q])
            times[name].append((time.perf_counter() - start) * 1000)
    return {
        name: {
            "p50_ms": round(float(np.percentile(t, 50)), 3),
            "p99_ms": round(float(np.percentile(t, 99)), 3),
            "n": len(t),
        }
        for name, t in times.items()
    }


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(spec: dict) -> dict:
    """In a fresh process: open one encoder, encode ``docs`` in calls of ``batch`` texts, report peak
    RSS and docs/s. One encoder per process, so its peak is its own: VmHWM, the peak of this
    process's own address space (ru_maxrss would also count the parent's RSS at fork time)."""
    from colsplade.encoders import load_encoder

    enc = load_encoder(
        spec["model_dir"],
        variant=spec["variant"],
        device=spec["device"],
        intra_op_threads=spec["threads"],
        batch_size=spec["batch"],
        max_batch_tokens=spec["max_batch_tokens"],
        memory_arena=spec["memory_arena"],
        doc_top_k=spec["doc_top_k"],
    )
    docs = spec["docs"]
    loaded = _status_mb("VmHWM")
    start = time.perf_counter()
    for i in range(0, len(docs), spec["batch"]):
        enc.encode_documents(docs[i : i + spec["batch"]])
    seconds = time.perf_counter() - start
    return {
        "peak_rss_mb": round(_status_mb("VmHWM")),
        "rss_after_load_mb": round(loaded),
        "rss_after_encoding_mb": round(_status_mb("VmRSS")),
        "docs_per_s": round(len(docs) / seconds, 2),
        "docs": len(docs),
        "max_batch_tokens": enc.max_batch_tokens,
        "memory_arena": spec["memory_arena"],
    }


def measure_rss(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child"],
        input=json.dumps(spec),  # on stdin: the passages exceed the 128 kB limit of one argument
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export_plain(model_dir: Path, before_dir: Path, variants: list[str]) -> dict:
    """The same torch weights exported as before issue 11 (SDPA trace, no transformer optimiser)."""
    from colsplade.onnx_export import ParityError, export_model_dir

    if not (before_dir / "onnx/model.onnx").is_file():
        shutil.rmtree(before_dir, ignore_errors=True)
        shutil.copytree(model_dir, before_dir, ignore=shutil.ignore_patterns("onnx"))
        try:
            report = export_model_dir(before_dir, variants=variants, optimize=False)
        except ParityError as exc:
            report = exc.report
        return report.to_dict()
    return json.loads((before_dir / "onnx/export-report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/encoders.json"))
    parser.add_argument("--work-dir", default=None, help="where the model directories go (default: temp)")
    parser.add_argument("--base", default="minilm")
    parser.add_argument(
        "--data",
        default=str(ROOT / "colsplade/data/scifact_sample"),
        help="a BEIR directory (corpus.jsonl, queries.jsonl); its passages of > 260 words are used",
    )
    parser.add_argument("--kinds", default="splade,colbert,joint")
    parser.add_argument("--variants", default="torch,fp32,int8", help="torch, fp32, int8, fp16")
    parser.add_argument("--lengths", default="128,256")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="timed batches per encoder (interleaved)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op / torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (ONNX Runtime; torch follows)")
    # An untrained SPLADE head puts ~29k of 30k terms above zero; turning those into dicts would
    # dominate the timing, while trained SPLADE models keep a few hundred. Prune like production.
    parser.add_argument("--doc-top-k", type=int, default=256, help="SPLADE terms kept per document (0: all)")
    parser.add_argument("--query-top-k", type=int, default=64, help="SPLADE terms kept per query (0: all)")
    parser.add_argument(
        "--max-batch-tokens",
        default="auto",
        help="padded tokens per ONNX run: auto (the default), N, 0 (none)",
    )
    parser.add_argument(
        "--memory-arena",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX Runtime's CPU memory arena (the encoders' default: on)",
    )
    parser.add_argument("--baseline", action="store_true", help="also time the pre-issue-11 encoders")
    parser.add_argument("--rss", action="store_true", help="peak RSS per ONNX encoder, one process each")
    parser.add_argument("--rss-docs", type=int, default=96, help="passages encoded per RSS measurement")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        print(json.dumps(rss_child(json.loads(sys.stdin.read()))))
        return
    max_batch_tokens = {"auto": "auto", "0": None}.get(args.max_batch_tokens, args.max_batch_tokens)
    if isinstance(max_batch_tokens, str) and max_batch_tokens != "auto":
        max_batch_tokens = int(max_batch_tokens)

    import torch

    from colsplade.encoders import load_encoder
    from colsplade.encoders._encoder import DEFAULT_MAX_BATCH_TOKENS
    from colsplade.onnx_export import ParityError, export_model_dir
    from colsplade.training import init_model_dir, load_model_dir

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    kinds = args.kinds.split(",")
    variants = args.variants.split(",")
    lengths = [int(x) for x in args.lengths.split(",")]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="colsplade-bench-"))
    n_docs = args.batch * args.rounds
    raw_docs, queries = load_texts(Path(args.data), n_docs, args.queries)
    result: dict = {
        "benchmark": "encoders",
        "command": "python3 benchmarks/bench_encoders.py " + " ".join(os.sys.argv[1:]),
        "git_commit": git_commit(),
        "machine": machine() | {"loadavg_start": list(os.getloadavg())},
        "versions": versions(),
        "settings": {
            "base": args.base,
            "batch": args.batch,
            "rounds": args.rounds,
            "timing": "variants interleaved batch by batch / query by query; median and best",
            "lengths": lengths,
            "queries": len(queries),
            "query_words": 10,
            "threads": threads,
            "device": args.device,
            "colbert_dim": 128,
            "splade_doc_top_k": args.doc_top_k or None,
            "splade_query_top_k": args.query_top_k or None,
            "max_doc_length": max(lengths),
            "max_query_length": 32,
            "ort_memory_arena": args.memory_arena,
            "max_batch_tokens": max_batch_tokens,
            "default_max_batch_tokens_cpu": DEFAULT_MAX_BATCH_TOKENS,
            "ort_graph_optimization_level": "ORT_ENABLE_ALL",
            "ort_threads": args.threads or "onnxruntime default (one per core)",
            "export": (
                "torch.onnx.export(dynamo=False, opset 17) of the eager-attention backbone; fp32 fused by "
                "onnxruntime.transformers.optimizer (model_type=bert); int8 = quantize_dynamic QInt8 "
                "per-channel of the unfused graph"
            ),
            "baseline": (
                "plain export (SDPA trace, no optimiser), runs of --batch texts (no token budget), "
                "same arena setting"
                if args.baseline
                else None
            ),
        },
        "exports": {},
        "docs_per_s": {},
        "query_latency": {},
        "peak_rss": {},
    }
    for kind in kinds:
        model_dir = work / kind
        if not (model_dir / "onnx/model.onnx").is_file():
            init_model_dir(kind, model_dir, base=args.base, max_doc_length=max(lengths), max_query_length=32)
            t0 = time.perf_counter()
            try:
                report = export_model_dir(model_dir, variants=[v for v in variants if v in ("int8", "fp16")])
            except ParityError as exc:
                report = exc.report
            result["exports"][kind] = report.to_dict() | {
                "export_seconds": round(time.perf_counter() - t0, 1)
            }
        elif (model_dir / "onnx/export-report.json").is_file():
            result["exports"][kind] = json.loads((model_dir / "onnx/export-report.json").read_text())
        if args.baseline:
            onnx_variants = [v for v in variants if v in ("int8", "fp16")]
            result["exports"][f"{kind}-before"] = export_plain(
                model_dir, work / f"{kind}-before", onnx_variants
            )
    # Peak RSS first, one child process per encoder, while this process holds no session.
    if args.rss:
        docs = cut_to_tokens(raw_docs, work / kinds[0] / "tokenizer.json", max(lengths))
        docs = (docs * (args.rss_docs // max(1, len(docs)) + 1))[: args.rss_docs]
        for kind in kinds:
            for variant in (v for v in variants if v not in ("torch",)):
                setups = {"onnx": (work / kind, max_batch_tokens)}
                if args.baseline:
                    setups["before-onnx"] = (work / f"{kind}-before", None)
                for prefix, (model_dir, budget) in setups.items():
                    for arena in (True, False):
                        spec = {
                            "model_dir": str(model_dir),
                            "variant": variant,
                            "device": args.device,
                            "threads": args.threads,
                            "batch": args.batch,
                            "max_batch_tokens": budget,
                            "memory_arena": arena,
                            "doc_top_k": args.doc_top_k or None,
                            "docs": docs,
                        }
                        name = f"{prefix}-{variant}" + ("" if arena else "-no-arena")
                        figures = measure_rss(spec) | {"length": max(lengths)}
                        result["peak_rss"].setdefault(kind, {})[name] = figures
                        print(f"{kind:8s} {name:24s} {figures}", flush=True)

    # Every (kind, variant) encoder lives in one process and is timed interleaved with the others,
    # so joint-vs-separate and int8-vs-torch ratios see the same machine load.
    encoders: dict = {}
    for kind in kinds:
        model_dir = work / kind
        for variant in variants:
            if variant == "torch":
                model = load_model_dir(model_dir, device="cuda" if args.device == "cuda" else "cpu")
                encoders[(kind, "torch")] = (
                    lambda texts, m=model: m.encode(
                        texts, is_query=False, batch_size=args.batch, top_k=args.doc_top_k or None
                    ),
                    lambda texts, m=model: m.encode(texts, is_query=True, top_k=args.query_top_k or None),
                )
            else:
                enc = load_encoder(
                    model_dir,
                    variant=variant,
                    device=args.device,
                    intra_op_threads=args.threads,
                    batch_size=args.batch,
                    max_batch_tokens=max_batch_tokens,
                    doc_top_k=args.doc_top_k or None,
                    query_top_k=args.query_top_k or None,
                    memory_arena=args.memory_arena,
                )
                encoders[(kind, f"onnx-{variant}")] = (enc.encode_documents, enc.encode_queries)
                if args.baseline:
                    before = load_encoder(
                        work / f"{kind}-before",
                        variant=variant,
                        device=args.device,
                        intra_op_threads=args.threads,
                        batch_size=args.batch,
                        max_batch_tokens=None,
                        doc_top_k=args.doc_top_k or None,
                        query_top_k=args.query_top_k or None,
                        memory_arena=args.memory_arena,
                    )
                    encoders[(kind, f"before-onnx-{variant}")] = (
                        before.encode_documents,
                        before.encode_queries,
                    )
    for length in lengths:
        docs = cut_to_tokens(raw_docs, work / kinds[0] / "tokenizer.json", length)
        for (kind, name), figures in interleaved_docs_per_s(encoders, docs, args.batch, args.rounds).items():
            result["docs_per_s"].setdefault(kind, {}).setdefault(name, {})[str(length)] = figures
            print(f"{kind:8s} {name:10s} {length} tokens: {figures}", flush=True)
    for (kind, name), lat in interleaved_latency(encoders, queries).items():
        result["query_latency"].setdefault(kind, {})[name] = lat
        print(f"{kind:8s} {name:10s} query {lat}", flush=True)
    # Ratios the issue asks for (from median batch times).
    ratios: dict = {}
    dps = {
        k: {v: {n: f["docs_per_s_median"] for n, f in by_len.items()} for v, by_len in d.items()}
        for k, d in result["docs_per_s"].items()
    }
    for length in map(str, lengths):
        for kind in kinds:
            have = dps.get(kind, {})
            if "torch" in have and "onnx-int8" in have:
                ratios[f"{kind}_int8_vs_torch_{length}"] = round(
                    have["onnx-int8"][length] / have["torch"][length], 2
                )
            if "onnx-fp32" in have and "onnx-int8" in have:
                ratios[f"{kind}_int8_vs_fp32_{length}"] = round(
                    have["onnx-int8"][length] / have["onnx-fp32"][length], 2
                )
        for variant in ("onnx-fp32", "onnx-int8", "torch"):
            try:
                s, c, j = (1 / dps[k][variant][length] for k in ("splade", "colbert", "joint"))
            except KeyError:
                continue
            ratios[f"joint_cost_vs_splade_{variant}_{length}"] = round(j / s, 3)
            ratios[f"joint_cost_vs_splade_plus_colbert_{variant}_{length}"] = round(j / (s + c), 3)
    for length in map(str, lengths):
        for kind in kinds:
            for variant in variants:
                have = dps.get(kind, {})
                if f"before-onnx-{variant}" in have and f"onnx-{variant}" in have:
                    ratios[f"{kind}_{variant}_after_vs_before_{length}"] = round(
                        have[f"onnx-{variant}"][length] / have[f"before-onnx-{variant}"][length], 2
                    )
    for kind, by_name in result["query_latency"].items():
        for variant in variants:
            if f"before-onnx-{variant}" in by_name and f"onnx-{variant}" in by_name:
                ratios[f"{kind}_{variant}_query_p50_after_vs_before"] = round(
                    by_name[f"onnx-{variant}"]["p50_ms"] / by_name[f"before-onnx-{variant}"]["p50_ms"], 2
                )
    for kind, by_name in result["peak_rss"].items():
        for variant in variants:
            after, before = by_name.get(f"onnx-{variant}", {}), by_name.get(f"before-onnx-{variant}", {})
            if "peak_rss_mb" in after and "peak_rss_mb" in before:
                ratios[f"{kind}_{variant}_peak_rss_after_vs_before"] = round(
                    after["peak_rss_mb"] / before["peak_rss_mb"], 2
                )
    result["ratios"] = ratios
    # Other processes on a shared machine slow every figure; the load average says how much.
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(ratios, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
