"""Local multi-node clusters for development and fault tests: N nodes of one engine on 127.0.0.1.

Every node is a :func:`~colsplade.local.start_node` node of its own (own HTTP and transport ports, own
data and log directories, own process group) with discovery seeded on the loopback transport ports of
all nodes, so the first start bootstraps one cluster and a restarted node rejoins it. The heap is sized
for the machine (:func:`cluster_heap`). The cluster's layout is recorded in a state file, so
``colsplade engine up --nodes 3`` reuses a running cluster and ``engine down`` stops it.

A node can be killed (``SIGKILL`` to its whole process group: the JVM gets no chance to hand anything
over, as when a machine dies) and restarted on the same ports and data, which is what the fault tests do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from colsplade._types import EngineName
from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local._distribution import check_engine, engines_home
from colsplade.local._http import probe_json
from colsplade.local._node import LocalNode, node_status, start_node
from colsplade.local._process import free_port, pid_alive

logger = logging.getLogger(__name__)

__all__ = ["LocalCluster", "cluster_heap", "cluster_status", "start_cluster", "stop_cluster"]

_HEALTH_ORDER = {"red": 0, "yellow": 1, "green": 2}


def cluster_heap(nodes: int, total_bytes: int | None = None) -> str:
    """The heap of each node of an ``nodes``-node local cluster: a sixteenth of the machine's memory
    split over the nodes, rounded to 128 MB, between 256m and 1g (512m each for 3 nodes on 23 GB).

    >>> cluster_heap(3, 23 * 1024**3), cluster_heap(3, 4 * 1024**3), cluster_heap(1, 64 * 1024**3)
    ('512m', '256m', '1g')
    """
    if total_bytes is None:
        total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mb = total_bytes / 16 / max(1, nodes) / 1024**2
    mb = int(min(1024, max(256, round(mb / 128) * 128)))
    return "1g" if mb == 1024 else f"{mb}m"


def _state_file(engine: str, name: str) -> Path:
    # a directory of its own: run/*.json are single nodes and Kafka brokers
    return engines_home() / "run" / "clusters" / f"{engine}-{name}.json"


@dataclass
class LocalCluster:
    """A local cluster colsplade started: its nodes (in start order) and how to start each again.

    ``urls`` lists every node's HTTP URL, which is what a client of a cluster takes
    (``Settings(urls=cluster.urls)``, ``COLSPLADE_URL=a,b,c``).
    """

    engine: EngineName
    version: str
    name: str
    node_names: list[str]
    http_ports: list[int]
    transport_ports: list[int]
    heap: str
    ephemeral: bool = False
    started_at: float = 0.0
    startup_seconds: float = 0.0
    node_settings: list[dict[str, str | None]] = field(default_factory=list)

    # -- nodes -----------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.http_ports]

    def node(self, i: int) -> LocalNode | None:
        """Node ``i`` if its process is alive, else None."""
        return node_status(self.engine, self.node_names[i])

    @property
    def nodes(self) -> list[LocalNode | None]:
        return [self.node(i) for i in range(len(self.node_names))]

    def live_urls(self) -> list[str]:
        return [url for url, node in zip(self.urls, self.nodes, strict=True) if node is not None]

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill node ``i`` at once (``SIGKILL`` to its process group by default: no clean shutdown), and
        wait until its process is gone. Its data directory stays, so :meth:`restart` brings it back."""
        node = self.node(i)
        if node is None:
            return
        try:
            pgid = os.getpgid(node.pid)
        except ProcessLookupError:
            return
        logger.info("killing node %s (pid %s) with signal %s", self.node_names[i], node.pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + 30
        while pid_alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, i: int, timeout: float = 240.0) -> LocalNode:
        """Start node ``i`` again on its ports and data (a no-op while it runs); returns it once it answers."""
        return self._start_node(i, timeout)

    def _start_node(self, i: int, timeout: float) -> LocalNode:
        return start_node(
            self.engine,
            self.version,
            name=self.node_names[i],
            port=self.http_ports[i],
            heap=self.heap,
            timeout=timeout,
            node_settings=self.node_settings[i],
        )

    # -- cluster ---------------------------------------------------------------------------------

    def health(self, timeout: float = 5.0, index: str | None = None) -> dict[str, Any] | None:
        """``_cluster/health`` (of ``index`` only, if given) from the first node that answers, else None."""
        path = "/_cluster/health" + (f"/{quote(index, safe='')}" if index else "")
        for url in self.live_urls():
            answer = probe_json(f"{url}{path}", timeout=timeout)
            if answer and "status" in answer:
                return answer
        return None

    def wait_for(
        self,
        status: str = "green",
        timeout: float = 120.0,
        nodes: int | None = None,
        index: str | None = None,
    ) -> dict[str, Any]:
        """Wait until the cluster (or ``index``) is at least ``status`` with ``nodes`` nodes (default: all
        that run); returns the health answer."""
        if status not in _HEALTH_ORDER:
            raise InvalidInputError(f"status must be one of green, yellow, red; got {status!r}")
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            want_nodes = nodes if nodes is not None else len(self.live_urls())
            last = self.health(index=index)
            if (
                last is not None
                and _HEALTH_ORDER.get(last.get("status", "red"), 0) >= _HEALTH_ORDER[status]
                and int(last.get("number_of_nodes", 0)) >= want_nodes
            ):
                return last
            time.sleep(0.25)
        raise EngineStartError(
            f"local {self.engine} cluster {self.name!r} did not reach {status} within {timeout:.0f} s "
            f"(last health: {last})",
            self._log_of_first_node(),
        )

    def _log_of_first_node(self) -> str | None:
        node = next((n for n in self.nodes if n is not None), None)
        return node.log_file if node else None

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every node, forget the cluster; an ephemeral cluster's data directories are removed."""
        with ThreadPoolExecutor(max_workers=len(self.node_names)) as pool:
            list(pool.map(lambda node: node.stop(timeout) if node else None, self.nodes))
        if self.ephemeral:
            for name in self.node_names:
                shutil.rmtree(_node_dir(self.engine, self.version, name), ignore_errors=True)
        _state_file(self.engine, self.name).unlink(missing_ok=True)

    def save(self) -> None:
        path = _state_file(self.engine, self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))


def _node_dir(engine: str, version: str, node_name: str) -> Path:
    # where start_node keeps a non-ephemeral node's data and logs
    return engines_home() / "nodes" / f"{engine}-{version}-{node_name}"


def _discovery_settings(
    engine: str, cluster_name: str, node_names: list[str], transport_ports: list[int], i: int
) -> dict[str, str | None]:
    seeds = ",".join(f"127.0.0.1:{port}" for port in transport_ports)
    bootstrap = (
        "cluster.initial_master_nodes"
        if engine == "elasticsearch"
        else "cluster.initial_cluster_manager_nodes"
    )
    return {
        "discovery.type": None,
        "cluster.name": cluster_name,
        "node.name": node_names[i],
        "transport.port": str(transport_ports[i]),
        "discovery.seed_hosts": seeds,
        bootstrap: ",".join(node_names),
    }


def cluster_status(engine: EngineName, name: str = "cluster") -> LocalCluster | None:
    """The recorded local cluster if at least one of its nodes runs, else None (stale state removed)."""
    check_engine(engine, None)
    path = _state_file(engine, name)
    if not path.is_file():
        return None
    try:
        cluster = LocalCluster(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not cluster.live_urls():
        path.unlink(missing_ok=True)
        return None
    return cluster


def start_cluster(
    engine: EngineName,
    nodes: int = 3,
    version: str | None = None,
    *,
    name: str = "cluster",
    heap: str | None = None,
    timeout: float = 300.0,
    ephemeral: bool = False,
) -> LocalCluster:
    """Start (or reuse) a local ``nodes``-node cluster of ``engine`` and wait until it is green.

    Args:
        nodes: how many nodes (each on 127.0.0.1 with its own free HTTP and transport ports and data dir).
        version: distribution version; defaults to :data:`~colsplade.local.DEFAULT_VERSIONS`.
        name: the cluster's name; several clusters of one engine can run side by side.
        heap: JVM heap per node; default :func:`cluster_heap` (a sixteenth of the memory over the nodes).
        timeout: seconds for all nodes to start and the cluster to turn green.
        ephemeral: remove the nodes' data when :meth:`LocalCluster.stop` runs (tests).

    Raises:
        EngineStartError: a node could not start or the cluster did not form (names the log file);
            every node started here is stopped again.
    """
    version = check_engine(engine, version)
    if nodes < 1:
        raise InvalidInputError(f"nodes must be >= 1, got {nodes}")
    running = cluster_status(engine, name)
    if running is not None:
        if running.version != version or len(running.node_names) != nodes:
            raise EngineStartError(
                f"a local {engine} {running.version} cluster {name!r} of {len(running.node_names)} nodes already "
                f"runs on {', '.join(running.urls)}; stop it first (colsplade engine down --engine {engine})"
            )
        for i, node in enumerate(running.nodes):
            if node is None:
                running.restart(i, timeout)
        running.wait_for("yellow", timeout)
        return running
    node_names = [f"{name}-{i}" for i in range(nodes)]
    transport_ports: list[int] = []
    http_ports: list[int] = []
    while len(set(transport_ports + http_ports)) < 2 * nodes:
        transport_ports = [free_port() for _ in range(nodes)]
        http_ports = [free_port() for _ in range(nodes)]
    full_names = [f"colsplade-{engine}-{n}" for n in node_names]
    cluster = LocalCluster(
        engine=engine,
        version=version,
        name=name,
        node_names=node_names,
        http_ports=http_ports,
        transport_ports=transport_ports,
        heap=heap or cluster_heap(nodes),
        ephemeral=ephemeral,
        started_at=time.time(),
        node_settings=[
            _discovery_settings(engine, f"colsplade-{name}", full_names, transport_ports, i)
            for i in range(nodes)
        ],
    )
    started = time.monotonic()
    cluster.save()
    try:
        # All at once: no node turns healthy before a majority of them has joined and elected a manager.
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            futures = [pool.submit(cluster._start_node, i, timeout) for i in range(nodes)]
            for future in futures:
                future.result()
        cluster.wait_for("green", timeout, nodes=nodes)
    except BaseException:
        cluster.stop(timeout=20)
        raise
    cluster.startup_seconds = round(time.monotonic() - started, 1)
    cluster.save()
    logger.info(
        "%s %s cluster of %d nodes up on %s in %.1f s",
        engine,
        version,
        nodes,
        ", ".join(cluster.urls),
        cluster.startup_seconds,
    )
    return cluster


def stop_cluster(engine: EngineName, name: str = "cluster", timeout: float = 60.0) -> bool:
    """Stop the recorded local cluster; returns False when none was running."""
    cluster = cluster_status(engine, name)
    if cluster is None:
        return False
    cluster.stop(timeout=timeout)
    return True
