"""pytest plugin: real Elasticsearch and OpenSearch nodes for colsplade's tests and for users' own.

Registered through the ``pytest11`` entry point, so installing colsplade makes these fixtures available:

``elasticsearch_url`` / ``opensearch_url`` (session)
    URL of a running node. Taken from ``COLSPLADE_TEST_ELASTICSEARCH_URL`` / ``COLSPLADE_TEST_OPENSEARCH_URL``
    when set; else a container through testcontainers where a Docker engine answers; else a local node
    started from Maven Central (:func:`colsplade.local.start_node`) with throw-away data.
``engine`` (function)
    An :class:`~colsplade.engines.EngineClient`; a test using it runs once per entry of
    ``--colsplade-engines`` / ``--colsplade-engine-versions`` (``COLSPLADE_TEST_ENGINES``): ``ENGINE`` at
    the session's version of it (``--colsplade-elasticsearch-version``, default the current major) or
    ``ENGINE:VERSION``, e.g. ``elasticsearch:9.2.8,elasticsearch:8.19.21`` runs each test on both.
``engine_index``
    A unique index name on ``engine``, deleted after the test.
``cluster`` (session)
    A local 3-node cluster (:class:`~colsplade.local.LocalCluster`: ``urls``, ``kill(i)``, ``restart(i)``,
    ``wait_for(status)``) with throw-away data, started on first use; a test using it runs once per engine
    and is marked ``slow`` (deselect with ``-m "not slow"``). One engine's cluster runs at a time.
``secured_engine`` (session)
    A :class:`~colsplade.testing.SecuredEngine`: a node with HTTPS and authentication, its CA file, an
    admin, and ``add_user(roles)`` for users of chosen roles. The cluster ``COLSPLADE_TEST_SECURE_URL``
    (``_CA_CERTS``, ``_USERNAME``, ``_PASSWORD``) names when set; else a test using it runs once per entry
    of ``--colsplade-secure-engines`` (``COLSPLADE_TEST_SECURE_ENGINES``, default ``opensearch,elasticsearch``;
    entries ``ENGINE`` or ``ENGINE:VERSION``, e.g. ``elasticsearch:8.19.21``) on a local secured node
    (``start_node(..., secure=True)``: OpenSearch with its security plugin, Elasticsearch with its file
    realm), one at a time, each started on first use and stopped when the tests move to the next.
``kafka_bootstrap`` (session)
    ``host:port`` of a real Kafka broker: ``COLSPLADE_TEST_KAFKA_BOOTSTRAP`` when set, else a container where
    a Docker engine answers, else a local KRaft broker from Maven Central
    (:func:`colsplade.local.start_broker`) with throw-away data. ``kafka_broker`` is that local
    :class:`~colsplade.local.KafkaBroker` (for tests that restart it; one is started when the
    session's broker is not local).

A node that cannot be started fails the tests that need it, with the reason and the log file. Only the
explicit opt-out ``--colsplade-allow-skip`` turns that into a skip (CI never sets it). Nodes started here
are stopped at the end of the session, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast

import pytest

from colsplade._types import EngineName
from colsplade.engines import ENGINES, EngineClient, connect
from colsplade.exceptions import ColspladeError
from colsplade.local import (
    DEFAULT_VERSIONS,
    SECURE_OPENSEARCH_VERSION,
    LocalCluster,
    start_cluster,
    start_node,
)
from colsplade.testing._secured import SecuredEngine

_DOCKER_IMAGES = {
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:{version}",
    "opensearch": "opensearchproject/opensearch:{version}",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("colsplade", "colsplade engine fixtures")
    group.addoption(
        "--colsplade-engines",
        "--colsplade-engine-versions",
        dest="colsplade_engines",
        default=os.environ.get("COLSPLADE_TEST_ENGINES", ",".join(ENGINES)),
        help="comma-separated engines the `engine` and `cluster` fixtures run on, each ENGINE (its default "
        "version) or ENGINE:VERSION, e.g. elasticsearch:9.2.8,elasticsearch:8.19.21,opensearch:3.5.0 "
        "(default: elasticsearch,opensearch; environment: COLSPLADE_TEST_ENGINES)",
    )
    group.addoption(
        "--colsplade-allow-skip",
        action="store_true",
        default=False,
        help="skip instead of fail the tests of an engine that cannot be started (never use in CI)",
    )
    for engine in ENGINES:
        group.addoption(
            f"--colsplade-{engine}-version",
            default=os.environ.get(f"COLSPLADE_TEST_{engine.upper()}_VERSION", DEFAULT_VERSIONS[engine]),
            help=f"{engine} version of the local node (default {DEFAULT_VERSIONS[engine]})",
        )
    group.addoption(
        "--colsplade-secure-opensearch-version",
        default=os.environ.get("COLSPLADE_TEST_SECURE_OPENSEARCH_VERSION", SECURE_OPENSEARCH_VERSION),
        help=f"version of the secured OpenSearch node (default {SECURE_OPENSEARCH_VERSION}: the newest whose "
        "security plugin Maven Central serves)",
    )
    group.addoption(
        "--colsplade-secure-engines",
        dest="colsplade_secure_engines",
        default=os.environ.get("COLSPLADE_TEST_SECURE_ENGINES", "opensearch,elasticsearch"),
        help="comma-separated engines the `secured_engine` fixture runs on, ENGINE or ENGINE:VERSION, e.g. "
        "opensearch,elasticsearch (default: both; opensearch at --colsplade-secure-opensearch-version, "
        "elasticsearch: --colsplade-elasticsearch-version; environment: COLSPLADE_TEST_SECURE_ENGINES)",
    )
    group.addoption(
        "--colsplade-no-docker",
        action="store_true",
        default=False,
        help="start local nodes from Maven Central even where a Docker engine answers",
    )


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def parse_engine_versions(text: str) -> list[tuple[EngineName, str | None]]:
    """``--colsplade-engines``' entries: ``[(engine, version or None)]``, in order, without repeats.

    >>> parse_engine_versions("elasticsearch, opensearch:2.19.1,elasticsearch:8.19.21")
    [('elasticsearch', None), ('opensearch', '2.19.1'), ('elasticsearch', '8.19.21')]
    """
    entries: list[tuple[EngineName, str | None]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, version = item.partition(":")
        if name not in ENGINES:
            raise pytest.UsageError(
                f"--colsplade-engines: unknown engine {name!r} in {item!r}; use {', '.join(ENGINES)}, "
                "optionally with :VERSION"
            )
        if version and not re.fullmatch(r"\d+\.\d+\.\d+", version):
            raise pytest.UsageError(f"--colsplade-engines: {item!r}: a version is MAJOR.MINOR.PATCH")
        entry = (cast(EngineName, name), version or None)
        if entry not in entries:
            entries.append(entry)
    return entries


def _param(engine: EngineName, version: str | None) -> str:
    return f"{engine}:{version}" if version else engine


def _unparam(param: str) -> tuple[EngineName, str | None]:
    name, _, version = param.partition(":")
    return cast(EngineName, name), version or None


class _Nodes:
    """Starts each engine once per session, on first use, and stops everything it started."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._urls: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._stoppers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._secured: dict[str, SecuredEngine] = {}
        self.startup_seconds: dict[str, float] = {}

    def url(self, engine: EngineName, version: str | None = None) -> str:
        """The URL of a node of ``engine`` at ``version`` (None: the session's version of that engine),
        started on first use."""
        key = _param(engine, version)
        with self._lock:
            if key in self._urls:
                return self._urls[key]
            if key not in self._errors:
                try:
                    self._urls[key] = self._start(engine, version)
                    return self._urls[key]
                except (ColspladeError, OSError) as exc:
                    self._errors[key] = f"cannot start {key} for the tests: {exc}"
            message = self._errors[key]
        self.give_up(message)

    def _start(self, engine: EngineName, version: str | None = None) -> str:
        env_url = os.environ.get(f"COLSPLADE_TEST_{engine.upper()}_URL")
        if env_url and version is None:
            return env_url
        name = f"pytest-{os.getpid()}" + (f"-{version}" if version else "")
        version = version or self.config.getoption(f"colsplade_{engine}_version")
        if not self.config.getoption("colsplade_no_docker") and _docker_available():
            return self._start_container(engine, version)
        node = start_node(engine, version, name=name, ephemeral=True)
        self._stoppers.append(node.stop)
        self.startup_seconds[f"{engine} {version}"] = node.startup_seconds
        return node.url

    def _start_container(self, engine: EngineName, version: str) -> str:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer(_DOCKER_IMAGES[engine].format(version=version))
        container.with_env("discovery.type", "single-node")
        if engine == "elasticsearch":
            container.with_env("xpack.security.enabled", "false").with_env("ES_JAVA_OPTS", "-Xms1g -Xmx1g")
        else:
            container.with_env("DISABLE_SECURITY_PLUGIN", "true").with_env(
                "OPENSEARCH_JAVA_OPTS", "-Xms1g -Xmx1g"
            )
        container.with_exposed_ports(9200)
        container.start()
        self._stoppers.append(container.stop)
        wait_for_logs(container, r'"message":\s?"started|\] started', timeout=240)
        return f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"

    def cluster(self, engine: EngineName, version: str | None = None) -> LocalCluster:
        """A 3-node local cluster of ``engine`` (the caller stops it); fails or skips as :meth:`url` does."""
        name = f"pytest-{os.getpid()}" + (f"-{version}" if version else "")
        version = version or self.config.getoption(f"colsplade_{engine}_version")
        try:
            cluster = start_cluster(engine, 3, version, name=name, ephemeral=True)
        except (ColspladeError, OSError) as exc:
            self.give_up(f"cannot start a 3-node {engine} cluster for the tests: {exc}")
        self._stoppers.append(cluster.stop)
        self.startup_seconds[f"{engine} 3-node cluster"] = cluster.startup_seconds
        return cluster

    def secured(self, engine: EngineName | None = None, version: str | None = None) -> SecuredEngine:
        """The cluster ``COLSPLADE_TEST_SECURE_URL`` names, else a local secured node of ``engine`` (None:
        OpenSearch) at ``version`` (None: the session's version for a secured node of that engine)."""
        what = _param(engine or "opensearch", version)
        key = "secure:" + what
        with self._lock:
            if key not in self._errors and key not in self._secured:
                try:
                    self._secured[key] = SecuredEngine.from_env() or self._start_secured(engine, version)
                except (ColspladeError, OSError, ImportError) as exc:
                    self._errors[key] = f"cannot start a secured {what} node for the tests: {exc}"
            if key in self._secured:
                return self._secured[key]
            message = self._errors[key]
        self.give_up(message)

    def release_secured(self, engine: EngineName | None = None, version: str | None = None) -> None:
        """Stop the local secured node of ``engine`` at ``version`` (the tests moved on to another)."""
        key = "secure:" + _param(engine or "opensearch", version)
        with self._lock:
            secured = self._secured.pop(key, None)
        if secured is not None and secured.node is not None:
            with contextlib.suppress(Exception):
                secured.node.stop()

    def kafka(self) -> tuple[str, Any]:
        """(bootstrap, the local KafkaBroker or None), started once per session."""
        with self._lock:
            if "kafka" not in self._urls and "kafka" not in self._errors:
                try:
                    self._urls["kafka"], self._kafka_broker = self._start_kafka()
                except (ColspladeError, OSError) as exc:
                    self._errors["kafka"] = f"cannot start Kafka for the tests: {exc}"
            if "kafka" in self._urls:
                return self._urls["kafka"], getattr(self, "_kafka_broker", None)
            message = self._errors["kafka"]
        self.give_up(message)

    def _start_secured(self, engine: EngineName | None = None, version: str | None = None) -> SecuredEngine:
        engine = engine or "opensearch"
        name = f"pytest-secure-{os.getpid()}" + (f"-{version}" if version else "")
        if version is None:
            option = (
                "colsplade_secure_opensearch_version"
                if engine == "opensearch"
                else "colsplade_elasticsearch_version"
            )
            version = self.config.getoption(option)
        node = start_node(engine, version, name=name, ephemeral=True, secure=True)
        self._stoppers.append(node.stop)
        self.startup_seconds[f"{engine} {version} (secured)"] = node.startup_seconds
        return SecuredEngine.from_node(node)

    def _start_kafka(self) -> tuple[str, Any]:
        from colsplade.local import start_broker

        if env := os.environ.get("COLSPLADE_TEST_KAFKA_BOOTSTRAP"):
            return env, None
        if not self.config.getoption("colsplade_no_docker") and _docker_available():
            from testcontainers.kafka import KafkaContainer

            container = KafkaContainer().with_kraft()
            container.start()
            self._stoppers.append(container.stop)
            return container.get_bootstrap_server(), None
        broker = start_broker(name=f"pytest-{os.getpid()}", ephemeral=True)
        self._stoppers.append(broker.stop)
        self.startup_seconds["kafka"] = broker.startup_seconds
        return broker.bootstrap, broker

    def local_kafka(self) -> Any:
        """A local broker this session may restart: the session's, or one started for it."""
        _, broker = self.kafka()
        if broker is None:
            from colsplade.local import start_broker

            with self._lock:
                broker = start_broker(name=f"pytest-local-{os.getpid()}", ephemeral=True)
                self._stoppers.append(broker.stop)
                self._kafka_broker = broker
        return broker

    def give_up(self, message: str) -> NoReturn:
        """Fail the test that needs what could not start (skip it only with --colsplade-allow-skip)."""
        if self.config.getoption("colsplade_allow_skip"):
            pytest.skip(message)
        pytest.fail(message, pytrace=False)

    def stop_all(self) -> None:
        while self._stoppers:
            stop = self._stoppers.pop()
            with contextlib.suppress(Exception):
                stop()


_NODES_KEY = pytest.StashKey[_Nodes]()


def pytest_configure(config: pytest.Config) -> None:
    nodes = _Nodes(config)
    config.stash[_NODES_KEY] = nodes
    atexit.register(nodes.stop_all)
    # SIGTERM (CI cancelling a job) must still run the teardown that stops the JVMs.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):

        def _on_sigterm(signum: int, frame: Any) -> None:
            nodes.stop_all()
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    nodes = config.stash.get(_NODES_KEY, None)
    if nodes is not None:
        nodes.stop_all()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    nodes = config.stash.get(_NODES_KEY, None)
    if nodes and nodes.startup_seconds:
        times = ", ".join(f"{e} {s:.1f} s" for e, s in sorted(nodes.startup_seconds.items()))
        terminalreporter.write_line(f"colsplade: local engine start-up times: {times}")


_ENGINE_FIXTURES = {
    "engine",
    "engine_index",
    "elasticsearch_url",
    "opensearch_url",
    "secured_engine",
    "cluster",
    "kafka_bootstrap",
    "kafka_broker",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if _ENGINE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.integration)
        if "cluster" in fixtures:
            item.add_marker(pytest.mark.slow)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    own: set[str] = set()
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = names.split(",")
        own.update(n.strip() for n in names)
    # A test that parametrizes its own "engine" argument (a plain string, say) keeps it; a test using both
    # fixtures runs once per engine with the same engine for both.
    if (
        "secured_engine" in metafunc.fixturenames
        and "secured_engine" not in own
        and not os.environ.get("COLSPLADE_TEST_SECURE_URL")  # that one cluster, once
    ):
        secured = parse_engine_versions(metafunc.config.getoption("colsplade_secure_engines"))
        params = [_param(*e) for e in secured]
        metafunc.parametrize(
            "secured_engine",
            params,
            indirect=True,
            scope="session",
            ids=[f"secured-{p.replace(':', '-')}" for p in params],
        )
    fixtures = [f for f in ("engine", "cluster") if f in metafunc.fixturenames and f not in own]
    if not fixtures:
        return
    engines = [_param(*e) for e in parse_engine_versions(metafunc.config.getoption("colsplade_engines"))]
    values = engines if len(fixtures) == 1 else [(e,) * len(fixtures) for e in engines]
    ids = [e.replace(":", "-") for e in engines]  # elasticsearch, elasticsearch-8.19.21, ...
    metafunc.parametrize(",".join(fixtures), values, indirect=True, scope="session", ids=ids)


@pytest.fixture(scope="session")
def elasticsearch_url(pytestconfig: pytest.Config) -> str:
    """URL of a real Elasticsearch node for this test session."""
    return pytestconfig.stash[_NODES_KEY].url("elasticsearch")


@pytest.fixture(scope="session")
def opensearch_url(pytestconfig: pytest.Config) -> str:
    """URL of a real OpenSearch node for this test session."""
    return pytestconfig.stash[_NODES_KEY].url("opensearch")


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[EngineClient]:
    """A connected client; tests using it run once per engine (and version) of ``--colsplade-engines``."""
    engine_name, version = _unparam(getattr(request, "param", "elasticsearch"))
    url = pytestconfig.stash[_NODES_KEY].url(engine_name, version)
    client = connect(url=url, engine=engine_name)
    yield client
    client.close()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    """A local 3-node cluster; tests using it run once per engine (``--colsplade-engines``), marked slow.

    The fault tests kill and restart its nodes: a test that kills one restarts it before it ends.
    """
    engine_name, version = _unparam(getattr(request, "param", "elasticsearch"))
    started = pytestconfig.stash[_NODES_KEY].cluster(engine_name, version)
    yield started
    started.stop()


@pytest.fixture
def engine_index(engine: EngineClient) -> Iterator[str]:
    """A fresh index name on ``engine``; the index (if created) is deleted after the test."""
    name = f"colsplade-test-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(ColspladeError):
        if engine.index_exists(name):
            engine.delete_index(name)


@pytest.fixture(scope="session")
def secured_engine(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[SecuredEngine]:
    """A real node with TLS and authentication (see :class:`~colsplade.testing.SecuredEngine`); tests
    using it run once per engine of ``--colsplade-secure-engines``."""
    param = getattr(request, "param", None)
    engine_name, version = _unparam(param) if param else (None, None)
    nodes = pytestconfig.stash[_NODES_KEY]
    yield nodes.secured(engine_name, version)
    if param:  # one secured node at a time: this one stops when the tests move to the next engine
        nodes.release_secured(engine_name, version)


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> str:
    """``host:port`` of a real Kafka broker for this test session."""
    return pytestconfig.stash[_NODES_KEY].kafka()[0]


@pytest.fixture(scope="session")
def kafka_broker(pytestconfig: pytest.Config) -> Any:
    """A local :class:`~colsplade.local.KafkaBroker` a test may stop and restart."""
    return pytestconfig.stash[_NODES_KEY].local_kafka()
