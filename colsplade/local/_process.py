"""The processes of the local JVM services (engine nodes, the Kafka broker): free ports, the one launcher
and its wait-until-started loop, process groups, state files and the log line that says why a start failed
(stdlib only)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from colsplade.exceptions import EngineStartError

logger = logging.getLogger(__name__)

__all__ = [
    "free_port",
    "launch",
    "load_state",
    "log_hint",
    "pid_alive",
    "port_open",
    "port_taken",
    "terminate_group",
    "wait_until_started",
]

T = TypeVar("T")


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


def launch(
    command: list[str],
    *,
    cwd: str | os.PathLike[str],
    env: dict[str, str],
    log_file: Path,
    run_as: tuple[int, int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a service's JVM with its output appended to ``log_file``: the one launcher of the local
    services. It gets a process group of its own (stopped as a whole by :func:`terminate_group`, and it
    outlives the CLI that started it), no stdin, and runs as ``run_as`` (uid, gid) when given."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=run_as[0] if run_as else None,
            group=run_as[1] if run_as else None,
            extra_groups=[] if run_as else None,  # none of root's groups
        )


def port_taken(port: int) -> bool:
    """Whether a service could not bind ``port`` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A port in TIME_WAIT after a node stopped is free for the JVM (it sets SO_REUSEADDR too).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
