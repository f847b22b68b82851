"""Local single-node Elasticsearch / OpenSearch for development and tests.

The distributions come from Maven Central through ``mvn`` (the ``integ-test-zip`` artifacts), are unpacked
into a cache and started on 127.0.0.1 with single-node discovery and a small heap. The integ-test zips are
minimal: OpenSearch's lacks the ``lang-painless``, ``mapper-extras`` and ``analysis-common`` (the
``english`` and other language analysers) modules, which are published on Maven Central as jars, so they
are assembled into ``modules/`` here, and the k-NN plugin is installed with ``bin/opensearch-plugin``.
Elasticsearch's 8.x zip has no painless, no ``rank_features`` and no ``english`` analyser, and none is
published for 8.x, so a local Elasticsearch node stores SPLADE impacts in ``sparse_vector`` (same Lucene
feature encoding) and reranks in the client; full distributions (Docker images, Elastic Cloud) have both.

Both engines refuse to run as root, so when colsplade runs as root the JVM runs as the system user
``colsplade`` (created on first use) from a cache outside root's home (:mod:`colsplade.local._system`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colsplade._types import KNN_NATIVE_ATTRIBUTE, EngineName
from colsplade.config import Settings
from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local._distribution import (
    SECURE_OPENSEARCH_VERSION,
    check_engine,
    engines_home,
    find_java,
    has_native_knn,
    install_distribution,
    required_java,
)
from colsplade.local._http import probe_json
from colsplade.local._process import (
    free_port,
    launch,
    load_state,
    pid_alive,
    port_taken,
    terminate_group,
    wait_until_started,
)
from colsplade.local._secure import (
    bootstrap_file_realm,
    bootstrap_security,
    install_secure_distribution,
    node_config_dir,
    tls_files,
)
from colsplade.local._system import ensure_run_user, hand_over, keep_for_root

logger = logging.getLogger(__name__)

__all__ = ["LocalNode", "node_status", "start_node", "stop_node"]


@dataclass
class LocalNode:
    """A local node colsplade started: where it listens and where its files are."""

    engine: EngineName
    version: str
    name: str
    port: int
    pid: int
    home: str
    data_dir: str
    log_file: str
    started_at: float
    startup_seconds: float = 0.0
    java_home: str = ""
    extras: dict = field(default_factory=dict)
    #: ``"https"`` for a secured node (OpenSearch's security plugin or Elasticsearch's file realm, TLS from
    #: its own CA).
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def ca_certs(self) -> str | None:
        """The CA file that verifies a secured node's certificate (None for a plain node)."""
        return self.extras.get("ca_certs")

    def credentials(self) -> dict[str, str]:
        """A secured node's users and their passwords (``admin``, ``colsplade-ingest``, ``colsplade-search``)."""
        path = self.extras.get("credentials_file")
        if not path:
            raise InvalidInputError(f"the local {self.engine} node {self.name!r} is not secured")
        return json.loads(Path(path).read_text())

    def settings(self, user: str | None = None) -> Settings:
        """Settings that reach this node: URL and engine, plus the CA and ``user``'s password when secured."""
        settings = Settings(urls=(self.url,), engine=self.engine)
        if not self.secure:
            return settings
        user = user or "admin"
        password = self.credentials().get(user)
        if password is None:
            raise InvalidInputError(f"no user {user!r} on the secured node {self.name!r}")
        return settings.replace(ca_certs=self.ca_certs, username=user, password=password)

    def _probe_context(self) -> ssl.SSLContext | None:
        """OpenSearch: the admin certificate (the plugin's super user). Elasticsearch: the CA only (its
        admin logs in with a password, :meth:`_probe_headers`)."""
        if not self.secure:
            return None
        if self.engine == "elasticsearch":
            return ssl.create_default_context(cafile=self.ca_certs)
        return tls_files(self.home).admin_context()

    def _probe_headers(self) -> dict[str, str]:
        if not self.secure or self.engine != "elasticsearch":
            return {}
        token = base64.b64encode(f"admin:{self.credentials()['admin']}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _probe(self, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
        return probe_json(f"{self.url}{path}", timeout, self._probe_context(), self._probe_headers())

    def is_running(self) -> bool:
        return pid_alive(self.pid) and self._probe("/_cluster/health") is not None

    def healthy(self) -> bool:
        """Whether the node answers and its cluster is at least yellow (waits up to a second for it)."""
        health = self._probe("/_cluster/health?wait_for_status=yellow&timeout=1s")
        return health is not None and health.get("status") in ("yellow", "green")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (SIGTERM to its process group, SIGKILL after ``timeout``) and forget its state."""
        terminate_group(self.pid, timeout)
        _state_file(self.engine, self.name).unlink(missing_ok=True)
        if self.extras.get("ephemeral"):
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _state_file(engine: str, name: str) -> Path:
    return engines_home() / "run" / f"{engine}-{name}.json"


def node_status(engine: EngineName, name: str = "default") -> LocalNode | None:
    """The recorded local node of ``engine`` if it is still running, else None (stale state is removed)."""
    check_engine(engine, None)
    return load_state(_state_file(engine, name), LocalNode)


def _running_node(engine: EngineName, version: str, name: str, secure: bool) -> LocalNode | None:
    """The node of this name that runs already, if it is the one asked for; another one is an error."""
    running = node_status(engine, name)
    if running is None:
        return None
    if running.version != version:
        raise EngineStartError(
            f"a local {engine} {running.version} node named {name!r} already runs on {running.url}; "
            f"stop it first (colsplade engine down --engine {engine})"
        )
    if running.secure != secure:
        raise EngineStartError(
            f"a {'secured' if running.secure else 'plain'} local {engine} node named {name!r} already runs "
            f"on {running.url}; stop it first or choose another --name"
        )
    return running


def _node_dir(engine: EngineName, version: str, name: str, ephemeral: bool) -> Path:
    """Where the node keeps its data and logs: kept per version and name, or a temporary directory."""
    root = engines_home()
    if ephemeral:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{engine}-{name}-", dir=root / "tmp"))
    return root / "nodes" / f"{engine}-{version}-{name}"


def _engine_settings(
    engine: EngineName,
    name: str,
    secure: bool,
    http_port: int,
    node_dir: Path,
    home: Path,
    overrides: Mapping[str, str | None] | None,
) -> dict[str, str]:
    """The ``-E`` settings of a single dev node on 127.0.0.1; ``overrides`` win, a ``None`` drops one."""
    settings = {
        "cluster.name": f"colsplade-{name}",
        "node.name": f"colsplade-{engine}-{name}",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(http_port),
        "transport.port": str(free_port()),
        "path.data": str(node_dir / "data"),
        "path.logs": str(node_dir / "logs"),
        # Small dev disks must not flip indices to read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    if engine == "elasticsearch" and not secure:  # a secured node's own config turns it on
        settings["xpack.security.enabled"] = "false"
    if engine == "opensearch" and (home / "plugins" / "opensearch-knn").is_dir() and not has_native_knn(home):
        # The node itself says its k-NN plugin cannot run faiss (a faiss field would crash it), so a client
        # learns it from the engine (Capabilities.knn_native) wherever the node runs.
        settings[f"node.attr.{KNN_NATIVE_ATTRIBUTE}"] = "false"
    for key, value in (overrides or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    return settings


def _jvm_env(engine: EngineName, java_home: Path, heap: str, config_dir: str | None) -> dict[str, str]:
    """The engine's environment: this Java and heap, none of the caller's ES_* / OPENSEARCH_* / agents."""
    prefix = "ES" if engine == "elasticsearch" else "OPENSEARCH"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "OPENSEARCH_"))}
    env[f"{prefix}_JAVA_HOME"] = str(java_home)
    env[f"{prefix}_JAVA_OPTS"] = f"-Xms{heap} -Xmx{heap}"
    if config_dir:
        env["ES_PATH_CONF"] = config_dir
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env


def start_node(
    engine: EngineName,
    version: str | None = None,
    *,
    name: str = "default",
    port: int | None = None,
    heap: str = "1g",
    timeout: float = 240.0,
    ephemeral: bool = False,
    node_settings: Mapping[str, str | None] | None = None,
    secure: bool = False,
) -> LocalNode:
    """Start (or reuse) a local single node and wait until it is healthy.

    Args:
        engine: ``"elasticsearch"`` or ``"opensearch"``.
        version: distribution version; defaults to :data:`DEFAULT_VERSIONS`.
        name: several nodes of one engine can run side by side under different names.
        port: HTTP port on 127.0.0.1; a free one when omitted. A taken port is an error.
        heap: JVM heap (``-Xms``/``-Xmx``), at most 1g by default to share small machines.
        timeout: seconds to wait for the cluster to turn yellow.
        ephemeral: keep the data in a temporary directory removed by :meth:`LocalNode.stop`.
        node_settings: engine settings (``-E``) over the single-node defaults; a ``None`` value drops a
            default. :func:`colsplade.local.start_cluster` passes discovery and the cluster's names here.
        secure: HTTPS with a CA of its own (``node.ca_certs``), roles ``colsplade_ingest`` /
            ``colsplade_search`` and users ``admin``, ``colsplade-ingest``, ``colsplade-search`` with random
            passwords (``node.credentials()``, ``node.settings(user)``). OpenSearch (default version
            :data:`SECURE_OPENSEARCH_VERSION`, the newest whose security plugin Maven Central serves): the
            security plugin, users made through its REST API. Elasticsearch (any version): its security
            module with the file realm, users and roles in files of the node's own ``config`` directory
            (:func:`put_file_user`, :func:`put_file_role`); no native users, roles or API keys there.

    Raises:
        EngineStartError: Java missing or too old, artifact not served, port taken, node died or timed out
            (the message names the log file).
    """
    if secure and version is None and engine == "opensearch":
        version = SECURE_OPENSEARCH_VERSION  # the newest with its security plugin on Maven Central
    version = check_engine(engine, version)
    running = _running_node(engine, version, name, secure)
    if running is not None:
        return running
    if port is not None and port_taken(port):
        raise EngineStartError(
            f"port {port} on 127.0.0.1 is already in use; choose another --port or omit it"
        )
    home = install_secure_distribution(version, engine) if secure else install_distribution(engine, version)
    java_home = find_java(required_java(engine, version))
    node_dir = _node_dir(engine, version, name, ephemeral)
    http_port = port or free_port()
    node = LocalNode(
        engine=engine,
        version=version,
        name=name,
        port=http_port,
        pid=0,
        home=str(home),
        data_dir=str(node_dir),
        log_file=str(node_dir / "logs" / "console.log"),
        started_at=time.time(),
        java_home=str(java_home),
        extras=_prepare_node_dir(engine, home, node_dir, secure, ephemeral),
        scheme="https" if secure else "http",
    )
    settings = _engine_settings(engine, name, secure, http_port, node_dir, home, node_settings)
    started = _launch(node, settings, heap, timeout)
    if secure and engine == "opensearch":
        _secure_bootstrap(node, node_dir)
    node.startup_seconds = round(time.monotonic() - started, 1)
    _save(node)
    logger.info("%s %s up on %s in %.1f s", engine, version, node.url, node.startup_seconds)
    return node


def _prepare_node_dir(
    engine: EngineName, home: Path, node_dir: Path, secure: bool, ephemeral: bool
) -> dict[str, Any]:
    """Make the node's data and log directories (and a secured Elasticsearch node's own configuration, its
    users in it) and hand them to the run user; returns the node's ``extras``."""
    (node_dir / "data").mkdir(parents=True, exist_ok=True)
    (node_dir / "logs").mkdir(parents=True, exist_ok=True)
    extras: dict[str, Any] = {"ephemeral": ephemeral}
    if secure and engine == "elasticsearch":
        extras.update(_file_realm_config(home, node_dir))
    hand_over(node_dir)
    if "credentials_file" in extras:
        keep_for_root(extras["credentials_file"])  # the passwords stay root's, as a secured OpenSearch's do
    return extras


def _launch(node: LocalNode, settings: Mapping[str, str], heap: str, timeout: float) -> float:
    """Start the node's JVM, record it, and wait until its cluster is yellow; returns when the JVM started
    (``time.monotonic()``). A node that dies or is not healthy within ``timeout`` is stopped."""
    home = Path(node.home)
    command = [str(home / "bin" / node.engine)] + [f"-E{k}={v}" for k, v in settings.items()]
    env = _jvm_env(node.engine, Path(node.java_home), heap, node.extras.get("config_dir"))
    log_file = Path(node.log_file)
    run_as = ensure_run_user()
    started = time.monotonic()
    proc = launch(command, cwd=home, env=env, log_file=log_file, run_as=run_as)
    node.pid = proc.pid
    _save(node)
    wait_until_started(
        proc,
        node.healthy,
        what=f"{node.engine} {node.version}",
        log_file=log_file,
        started=started,
        timeout=timeout,
        stop=lambda: node.stop(timeout=20),
    )
    return started


def _save(node: LocalNode) -> None:
    state = _state_file(node.engine, node.name)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(asdict(node), indent=2))


def _file_realm_config(home: Path, node_dir: Path) -> dict[str, str]:
    """A secured Elasticsearch node's own configuration directory, its users and roles written into the
    file realm before the JVM starts; the node's ``extras``."""
    config = node_config_dir(home, node_dir)
    credentials_file = node_dir / "credentials.json"
    bootstrap_file_realm(config, credentials_file)
    return {
        "config_dir": str(config),
        "ca_certs": str(tls_files(home).ca_certs),
        "credentials_file": str(credentials_file),
    }


def _secure_bootstrap(node: LocalNode, node_dir: Path) -> None:
    """A secured OpenSearch node's roles and users, made through the security API once it answers."""
    files = tls_files(node.home)
    credentials_file = node_dir / "credentials.json"
    try:
        bootstrap_security(node.url, files, credentials_file)
    except BaseException:
        node.stop(timeout=20)
        raise
    node.extras.update(ca_certs=str(files.ca_certs), credentials_file=str(credentials_file))


def stop_node(engine: EngineName, name: str = "default", timeout: float = 60.0) -> bool:
    """Stop the recorded local node; returns False when none was running."""
    node = node_status(engine, name)
    if node is None:
        return False
    node.stop(timeout=timeout)
    return True
