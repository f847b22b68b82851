"""The query client's CPU per search and its throughput: MaxSim's product on the calling thread or on BLAS's
pool, and ``compute_slots``, side by side.

    python benchmarks/bench_client_cpu.py --model MODEL_DIR [--engine elasticsearch] [--index bench-serving-elasticsearch]

Runs on an index colsplade already filled (``bench_serving.py`` leaves ``bench-serving-<engine>``) with the
test queries of ``--data``. Each setting runs the default plan (``k=10``) over the queries from
``callers`` threads sharing one ``SearchClient``, in a fresh process per run, the settings alternating
``--rounds`` times so that every setting sees the same machine (after one untimed run; each run starts
once the CPU is idle, its ``settled`` block says how long that took and how busy the CPU was):

- ``pool_product``: the rerank's (32 x window tokens x dim) product as one call, which numpy's OpenBLAS
  spreads over every core (``SINGLE_THREAD_PRODUCT`` raised past it), ``compute_slots=None``: the client
  before the change;
- ``calling_thread``: the product in blocks on the calling thread (the default), ``compute_slots=None``;
- ``default``: the calling-thread product and the default ``compute_slots`` (cores + 1).

Per run: queries/s, the client process's CPU ms per search (``getrusage``), the engine process's CPU ms per
search (``/proc/PID/stat``, when the engine runs on this machine), and the p50 of the searches' timings.
Writes ``benchmarks/results/client_cpu.json``: ``{"runs": {setting: {callers: [run, ...]}}, "median_qps":
{setting: {callers: q}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, engine_pids, wait_until_settled, write_report

SETTINGS = ("pool_product", "calling_thread", "default")


def _proc_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by the processes (an engine's process group)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """One run of one setting, in this (fresh) process."""
    import colsplade.scoring._maxsim as maxsim_module
    from colsplade.config import load_settings
    from colsplade.encoders import as_encoder
    from colsplade.engines import connect_default
    from colsplade.evaluation import load_beir
    from colsplade.query import QUERY_ENCODER_OPTIONS, SearchClient

    if args.setting == "pool_product":
        maxsim_module.SINGLE_THREAD_PRODUCT = 1 << 62  # one product, as before the change
    slots: dict[str, Any] = {} if args.setting == "default" else {"compute_slots": None}
    data = load_beir(args.data, "test")
    queries = list(data.queries.values())[: args.queries]
    client = connect_default(load_settings(engine=args.engine))
    encoder = as_encoder(args.model, variant=args.variant, **QUERY_ENCODER_OPTIONS)
    search = SearchClient(args.index, encoder, client=client, window=args.window, **slots)
    for query in queries[:20]:
        search.search(query, k=10)
    timings: dict[str, list[float]] = {"encode": [], "engine": [], "rerank": []}

    def one(query: str) -> None:
        result = search.search(query, k=10)
        for key in timings:
            timings[key].append(result.timings_ms[key])

    pids = engine_pids(args.engine)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    mine0, engine0, t0 = usage.ru_utime + usage.ru_stime, _proc_cpu_s(pids), time.perf_counter()
    with ThreadPoolExecutor(args.callers) as pool:
        list(pool.map(one, queries))
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    n = len(queries)
    return {
        "qps": round(n / wall, 1),
        "client_cpu_ms_per_search": round((usage.ru_utime + usage.ru_stime - mine0) * 1000 / n, 2),
        "engine_cpu_ms_per_search": round((_proc_cpu_s(pids) - engine0) * 1000 / n, 2) if pids else None,
        "p50_ms": {key: round(statistics.median(v), 2) for key, v in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--engine", default="elasticsearch")
    parser.add_argument("--index", default=None, help="default: bench-serving-<engine>")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--callers", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/client_cpu.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.index = args.index or f"bench-serving-{args.engine}"
    if args.child:
        args.callers = int(args.callers)
        print(json.dumps(_child(args)))
        return
    from colsplade.config import load_settings
    from colsplade.engines import connect_default

    load_at_start = os.getloadavg()
    engine = connect_default(load_settings(engine=args.engine))
    callers = [int(c) for c in args.callers.split(",")]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {str(c): [] for c in callers} for s in SETTINGS}
    passed = ["--model", args.model, "--data", args.data, "--engine", args.engine, "--index", args.index]
    passed += ["--variant", args.variant, "--queries", str(args.queries), "--window", str(args.window)]
    # one untimed run first: a freshly started engine compiles its search paths during the first searches
    warm = [sys.executable, __file__, *passed, "--child", "--setting", "default", "--callers", "4"]
    subprocess.run(warm, capture_output=True, text=True, check=True)
    for count in callers:
        for _ in range(args.rounds):
            for setting in SETTINGS:
                child = [sys.executable, __file__, *passed, "--child", "--setting", setting]
                child += ["--callers", str(count)]
                # each run starts on an idle machine: the previous run's callers leave the load high
                settled = wait_until_settled(engine)
                out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
                run = json.loads(out.strip().splitlines()[-1])
                runs[setting][str(count)].append({**run, "settled": settled})
    write_report(
        args.out,
        {
            "settings": {
                "model": Path(args.model).name,
                "variant": args.variant,
                "engine": args.engine,
                "index": args.index,
                "queries": args.queries,
                "window": args.window,
                "callers": callers,
                "rounds": args.rounds,
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "runs": runs,
            "median_qps": {
                s: {c: statistics.median(r["qps"] for r in rs) for c, rs in by.items()}
                for s, by in runs.items()
            },
        },
    )


if __name__ == "__main__":
    main()
