"""Local JVM services (engine nodes, the Kafka broker): Maven fetches, ports and process groups (stdlib only)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from colsplade.exceptions import EngineStartError

logger = logging.getLogger(__name__)

__all__ = [
    "find_java",
    "free_port",
    "load_state",
    "log_hint",
    "mvn_copy_with_deps",
    "pid_alive",
    "terminate_group",
]

T = TypeVar("T")


def mvn_copy_with_deps(
    coordinates: Sequence[str], dest: Path, exclude_groups: Sequence[str] = (), *, what: str = "artifacts"
) -> list[Path]:
    """Fetch ``group:artifact:version`` coordinates and their runtime dependencies (minus
    ``exclude_groups``) from Maven Central into ``dest``; returns the jars there."""
    dest.mkdir(parents=True, exist_ok=True)
    exclusions = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>*</artifactId></exclusion>" for g in exclude_groups
    )
    deps = ""
    for coordinate in coordinates:
        group, name, version = coordinate.split(":")
        deps += (
            f"<dependency><groupId>{group}</groupId><artifactId>{name}</artifactId><version>{version}</version>"
            f"<exclusions>{exclusions}</exclusions></dependency>"
        )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>colsplade.local</groupId><artifactId>local-services</artifactId><version>0</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineStartError(f"Maven (mvn) is needed to fetch {what}; install it (apt-get install maven)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pom.xml").write_text(pom)
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={dest}",
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise EngineStartError(f"Maven could not fetch {', '.join(coordinates)}: {tail}")
    return sorted(dest.glob("*.jar"))


def load_state(path: Path, cls: Callable[..., T]) -> T | None:
    """The service recorded in the state file ``path`` (``cls(**json)``, which has a ``pid``) if its
    process still runs; a stale or unreadable file is removed."""
    if not path.is_file():
        return None
    try:
        service: Any = cls(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not pid_alive(service.pid):
        path.unlink(missing_ok=True)
        return None
    return service


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def terminate_group(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``'s process group, SIGKILL it after ``timeout`` seconds (no JVM child outlives it)."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.2)
    else:
        logger.warning("pid %s did not stop within %.0f s; killing it", pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- Java


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if release.is_file():
        match = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"))
        if match:
            major = int(match.group(1))
            return int(match.group(2)) if major == 1 and match.group(2) else major
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _java_candidates() -> list[Path]:
    homes: list[Path] = []
    for env in ("COLSPLADE_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(env):
            homes.append(Path(os.environ[env]))
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        homes.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir() and not p.is_symlink()))
    if java := shutil.which("java"):
        homes.append(Path(os.path.realpath(java)).parent.parent)
    seen: set[Path] = set()
    unique = []
    for home in homes:
        resolved = home.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(resolved)
    return unique


def find_java(min_major: int) -> Path:
    """The JDK home with the lowest major version >= ``min_major`` (the most tested one for old engines)."""
    found: list[tuple[int, Path]] = []
    for home in _java_candidates():
        major = _java_major(home)
        if major is not None:
            found.append((major, home))
    suitable = sorted((m, h) for m, h in found if m >= min_major)
    if suitable:
        return suitable[0][1]
    seen = ", ".join(f"{h} (Java {m})" for m, h in found) or "none"
    raise EngineStartError(
        f"Java {min_major}+ is needed and was not found (seen: {seen}); install a JDK "
        f"(e.g. apt-get install openjdk-{max(min_major, 17)}-jdk-headless) or set COLSPLADE_JAVA_HOME"
    )


def log_hint(log_file: Path) -> str:
    """The line of a service's log most likely to say why it failed: the last one that mentions an
    error or an exception, else the last line (at most 500 characters)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "no log written"
    interesting = [
        line for line in lines if "ERROR" in line or "Exception" in line or "error" in line.lower()
    ]
    return (interesting or lines or ["empty log"])[-1][:500]


def wait_until_started(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log_file: Path,
    started: float,
    timeout: float,
    stop: Callable[[], None],
    poll: float = 0.5,
) -> None:
    """Poll a just-launched service until ``ready()``; the one launch-and-wait loop of the local services.

    Raises :class:`EngineStartError` naming ``what`` and the log's tail when the process exits or
    ``timeout`` seconds pass since ``started`` (``time.monotonic()``); on any failure, Ctrl-C included, ``stop()`` runs first, so
    no JVM outlives the caller.
    """
    try:
        while True:
            code = proc.poll()
            if code is not None:
                raise EngineStartError(
                    f"{what} exited with code {code} while starting: {log_hint(log_file)}", str(log_file)
                )
            if ready():
                return
            if time.monotonic() - started > timeout:
                raise EngineStartError(
                    f"{what} did not start within {timeout:.0f} s: {log_hint(log_file)}", str(log_file)
                )
            time.sleep(poll)
    except BaseException:
        stop()
        raise
