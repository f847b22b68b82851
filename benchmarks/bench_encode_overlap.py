"""The default plan with its query encoding overlapped with the engine's BM25 request, and without.

    python benchmarks/bench_encode_overlap.py --model MODEL_DIR [--index bench-serving-{engine}]

Runs on an index colsplade already filled (``bench_serving.py`` leaves ``bench-serving-<engine>``), with the
test queries of ``--data``. The default plan (``bm25+colbert(fused)``: BM25 candidates reranked by MaxSim
in the client) needs the encoded query only once the window is back, so ``SearchClient`` sends the request
first and encodes while the engine works (``overlap_encoding=True``, the default). Both settings run
interleaved per query after warm-up, in two placements:

- ``shared``: the engine and the client on the same cores (this machine as it is);
- ``engine_pinned``: the engine's threads pinned to core 0 and this process to core 1 (Linux
  ``sched_setaffinity``), standing in for an engine on its own machine, as in production.

Per setting: p50 / p95 wall, the p50 of each timing (encode, engine, rerank), and whether every query gave
the same hits and scores both ways. Writes ``benchmarks/results/encode_overlap.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, engine_pids, write_report

from colsplade.config import load_settings
from colsplade.engines import connect_default
from colsplade.evaluation import load_beir
from colsplade.query import QUERY_ENCODER_OPTIONS, SearchClient

PLACEMENTS = ("shared", "engine_pinned")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _pin(pids: list[int], cores: set[int]) -> None:
    """Every thread of every process in ``pids`` onto ``cores`` (a JVM's threads each have their own)."""
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), cores)


def _measure(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both settings interleaved per query, in this process (placed by the parent)."""
    data = load_beir(args.data, "test")
    qids = list(data.queries)[: args.queries]
    index = args.index.format(engine=engine)
    with contextlib.closing(connect_default(load_settings(engine=engine), autostart=True)) as client:
        options = {"variant": args.variant, **QUERY_ENCODER_OPTIONS}
        clients = {
            "overlap": SearchClient(index, args.model, client=client, encoder_options=options),
            "serial": SearchClient(
                index, args.model, client=client, encoder_options=options, overlap_encoding=False
            ),
        }
        wall: dict[str, list[float]] = {n: [] for n in clients}
        parts: dict[str, dict[str, list[float]]] = {n: {} for n in clients}
        same = 0
        try:
            for warm, qid in [(True, q) for q in qids[:20]] + [(False, q) for q in qids]:
                answers = {}
                for name, search in clients.items():
                    t0 = time.perf_counter()
                    result = search.search(data.queries[qid], window=args.window)
                    ms = (time.perf_counter() - t0) * 1000
                    answers[name] = [(h.id, round(h.score, 5)) for h in result.hits]
                    if warm:
                        continue
                    wall[name].append(ms)
                    for key, value in result.timings_ms.items():
                        parts[name].setdefault(key, []).append(value)
                same += not warm and answers["overlap"] == answers["serial"]
            plan = clients["overlap"].resolve_plan()
        finally:
            for search in clients.values():
                search.close()
    out: dict[str, Any] = {
        name: {
            "p50_ms": _pct(wall[name], 0.5),
            "p95_ms": _pct(wall[name], 0.95),
            "timings_p50_ms": {k: round(statistics.median(v), 2) for k, v in parts[name].items()},
        }
        for name in clients
    }
    out["overlap_over_serial_p50"] = round(out["overlap"]["p50_ms"] / out["serial"]["p50_ms"], 3)
    out["same_hits_and_scores"] = f"{same}/{len(qids)}"
    out["plan"] = plan
    return out


def bench_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each placement in a child process whose cores are set before it starts (numpy's BLAS and ONNX
    Runtime size their thread pools from the cores a process sees at start)."""
    with contextlib.closing(connect_default(load_settings(engine=engine), autostart=True)):
        pass  # the local node is up before its processes are looked for
    pids = engine_pids(engine)
    all_cores = set(os.sched_getaffinity(0))
    cores = sorted(all_cores)
    out: dict[str, Any] = {"engine_processes_pinned": len(pids)}
    try:
        for placement in PLACEMENTS:
            if placement == "engine_pinned":
                if not pids or len(cores) < 2:
                    out[placement] = {"skipped": "needs a local engine and 2 cores"}
                    continue
                _pin(pids, {cores[0]})
                client_cores = set(cores[1:])
            else:
                client_cores = all_cores
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                subprocess.run(
                    [sys.executable, __file__, "--child", "--engines", engine, "--out", part.name]
                    + [f"--{k}={getattr(args, k)}" for k in ("model", "data", "index", "variant")]
                    + [f"--queries={args.queries}", f"--window={args.window}"],
                    check=True,
                    preexec_fn=lambda cores=client_cores: os.sched_setaffinity(0, cores),  # type: ignore[misc]
                )
                out[placement] = json.loads(Path(part.name).read_text())
            _pin(pids, all_cores)
    finally:
        _pin(pids, all_cores)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the joint model directory that filled the index")
    parser.add_argument("--data", default=DATA, help="BEIR dataset name or directory")
    parser.add_argument("--index", default="bench-serving-{engine}")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/encode_overlap.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one placement, one engine: the parent placed this process
        Path(args.out).write_text(json.dumps(_measure(args.engines, args)))
        return
    load_at_start = os.getloadavg()
    results = {engine: bench_engine(engine, args) for engine in args.engines.split(",")}
    write_report(
        args.out,
        {
            "settings": {
                "model": Path(args.model).name,
                "variant": args.variant,
                "data": args.data,
                "queries": args.queries,
                "window": args.window,
                "placements": {
                    "shared": "engine and client on the same cores",
                    "engine_pinned": "engine threads on core 0, the client process started on the others",
                },
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "engines": results,
        },
    )


if __name__ == "__main__":
    main()
