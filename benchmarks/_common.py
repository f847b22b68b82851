"""What every benchmark JSON records (rules: benchmarks/README.md): machine, versions, commit, command."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
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
