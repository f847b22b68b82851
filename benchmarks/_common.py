"""What every benchmark JSON records (rules: benchmarks/README.md): machine, versions, commit, command."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: the benchmarks' dataset: a name resolved by colsplade's loaders (``colsplade datasets download scifact``
#: once), or pass ``--data DIR`` for a BEIR directory
DATA = "scifact"


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, Java and GPU (if any) of this machine."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpuinfo = Path("/proc/cpuinfo")
    cpu = platform.processor()
    if cpuinfo.is_file():
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln),
            cpu,
        )
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem, 1),
        "cpu": cpu,
        "python": sys.version.split()[0],
    }
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30
        ).stderr.splitlines()
        info["java"] = java[0] if java else None
    except (OSError, subprocess.SubprocessError):
        info["java"] = None
    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        info["gpu"] = gpu or None
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def versions(*modules: str) -> dict[str, str | None]:
    """Versions of colsplade and the libraries that change the figures."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("colsplade", "onnxruntime", "numpy", "tokenizers", *modules):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def model_engine_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every model-on-one-engine benchmark takes: ``--model``, ``--data``, ``--engine``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--engine", default="elasticsearch", choices=["elasticsearch", "opensearch"])
    return parser


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (numpy's linear interpolation), rounded to 0.01; NaN for none."""
    import numpy as np

    if not values:
        return float("nan")
    return round(float(np.percentile(values, q)), 2)


def other_engines(path: str | os.PathLike[str], engine: str) -> dict[str, Any]:
    """The figures under ``engines`` in the results file at ``path`` (its last run per engine), without
    ``engine``'s: what a one-engine-a-run benchmark keeps of the other engine when it rewrites the file."""
    try:
        engines = dict(json.loads(Path(path).read_text()).get("engines") or {})
    except (OSError, ValueError, AttributeError):
        return {}
    engines.pop(engine, None)
    return engines


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Add command, commit, machine and versions (unless given), write JSON, echo it."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    full = {
        "command": " ".join(sys.argv),
        "commit": commit,
        "machine": machine(),
        "versions": versions(),
        **report,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(full, indent=2) + "\n")
    print(json.dumps(full, indent=2))


def _cpu_busy(seconds: float) -> float:
    """Share of this machine's CPU time spent busy over the next ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_settled(client: Any, *, busy_below: float = 0.1, max_seconds: float = 300) -> dict[str, Any]:
    """Wait until the engine runs no merge and the machine's CPU is idle, before timing searches.

    Right after an ingest or a reindex the engine keeps merging segments for a minute or more; searches
    timed then measure the merges, not the plan (on 2 cores the serving figures read ~1.6x slower).
    Returns ``{"settle_seconds", "cpu_busy_at_start"}`` for the report; gives up after ``max_seconds``.
    """
    started = time.monotonic()
    busy = 1.0
    while time.monotonic() - started < max_seconds:
        stats = client.request("GET", "/_nodes/stats/indices/merge")
        merging = sum(
            node.get("indices", {}).get("merges", {}).get("current", 0)
            for node in stats.get("nodes", {}).values()
        )
        busy = _cpu_busy(2.0) if Path("/proc/stat").is_file() else 0.0
        if merging == 0 and busy < busy_below:
            break
    return {"settle_seconds": round(time.monotonic() - started, 1), "cpu_busy_at_start": round(busy, 3)}


def engine_pids(engine: str) -> list[int]:
    """The local node's processes (``colsplade engine up``: its process group), or [] for an engine
    colsplade did not start."""
    from colsplade.local import node_status

    node = node_status(engine)  # type: ignore[arg-type]
    if node is None:
        return []
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == node.pid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
