"""A local single-node Apache Kafka broker (KRaft) for development and tests, fetched from Maven Central.

Like the local engines (:func:`colsplade.local.start_node`), the broker's jars come through ``mvn``
(``org.apache.kafka:kafka_2.13`` and its runtime dependencies, plus the log4j binding the distribution
ships), are kept in a cache, and the broker runs on 127.0.0.1 on a free port with a small heap: one
process acting as broker and KRaft controller, its storage formatted with ``kafka.tools.StorageTool``.
A state file records it, so ``colsplade engine kafka up`` reuses a running broker and ``down`` stops it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local._distribution import engines_home, find_java, mvn_fetch_with_deps
from colsplade.local._process import (
    free_port,
    launch,
    load_state,
    pid_alive,
    port_open,
    port_taken,
    terminate_group,
    wait_until_started,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "KafkaBroker",
    "broker_status",
    "install_kafka",
    "start_broker",
    "stop_broker",
]

#: Newest version verified to start here on Java 17 (Kafka 4.x brokers need Java 17+).
DEFAULT_KAFKA_VERSION = "4.1.1"
_ARTIFACT = "org.apache.kafka:kafka_2.13"
_VERSION_RE = re.compile(r"^4\.\d+\.\d+$")
_READY_LINE = "Kafka Server started"

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def _kafka_home(version: str) -> Path:
    return engines_home() / "dist" / f"kafka-{version}"


def install_kafka(version: str | None = None) -> Path:
    """Fetch Kafka's jars (once; later calls reuse them). Returns the directory holding ``libs/``."""
    version = version or DEFAULT_KAFKA_VERSION
    if not _VERSION_RE.match(version):
        raise InvalidInputError(
            f"unsupported Kafka version {version!r}; expected 4.x.y, e.g. {DEFAULT_KAFKA_VERSION}"
        )
    home = _kafka_home(version)
    marker = home / ".colsplade-installed"
    if marker.is_file():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"kafka-{version}-", dir=home.parent))
    try:
        libs = staging / "libs"
        mvn_fetch_with_deps([f"{_ARTIFACT}:{version}"], libs)
        # Kafka logs through slf4j 1.x; the distribution binds it to log4j2 with log4j-slf4j-impl.
        log4j = next(iter(sorted(libs.glob("log4j-api-*.jar"))), None)
        if log4j is not None:
            log4j_version = log4j.name[len("log4j-api-") : -len(".jar")]
            mvn_fetch_with_deps([f"org.apache.logging.log4j:log4j-slf4j-impl:{log4j_version}"], libs)
        (staging / "log4j2.properties").write_text(_LOG4J2)
        if home.exists():
            shutil.rmtree(home)
        staging.rename(home)
        marker.write_text(json.dumps({"kafka": version, "jars": len(list((home / "libs").glob("*.jar")))}))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home


def _java() -> str:
    """A ``java`` of version 17 or later (Kafka 4 needs it): the same finder as the engines'
    (``COLSPLADE_JAVA_HOME``, ``JAVA_HOME``, the system's JDKs, the PATH)."""
    return str(find_java(17) / "bin" / "java")


def _state_file(name: str) -> Path:
    return engines_home() / "run" / f"kafka-{name}.json"


@dataclass
class KafkaBroker:
    """A local broker colsplade started: where it listens and where its files are."""

    version: str
    name: str
    port: int
    controller_port: int
    pid: int
    home: str
    data_dir: str
    log_file: str
    started_at: float
    startup_seconds: float = 0.0
    heap: str = "512m"
    extras: dict = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def is_running(self) -> bool:
        return pid_alive(self.pid) and port_open(self.port)

    def stop(self, timeout: float = 30.0, *, keep_data: bool = False) -> None:
        """Stop the broker (SIGTERM to its process group, SIGKILL after ``timeout``) and forget its state.

        ``keep_data``: keep the log directories even of an ephemeral broker (:meth:`restart` does)."""
        terminate_group(self.pid, timeout)
        _state_file(self.name).unlink(missing_ok=True)
        if self.extras.get("ephemeral") and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, timeout: float = 120.0) -> None:
        """Stop the broker and start it again on the same ports with the same data (tests of outages)."""
        self.stop(keep_data=True)
        fresh = _launch(self, timeout)
        self.pid, self.startup_seconds = fresh.pid, fresh.startup_seconds


def broker_status(name: str = "default") -> KafkaBroker | None:
    """The recorded local broker if it is still running, else None (stale state is removed)."""
    return load_state(_state_file(name), KafkaBroker)


def _server_properties(broker: KafkaBroker) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{broker.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(Path(broker.data_dir) / "data"),
        # one node: every internal topic has one replica, and few partitions (fast first use)
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # tests kill workers: let them use short sessions, and abort a dead producer's transaction soon
        "group.min.session.timeout.ms": "1000",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        "num.partitions": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _launch(broker: KafkaBroker, timeout: float) -> KafkaBroker:
    """Start the JVM of ``broker`` (its storage already formatted) and wait until it serves."""
    home, node_dir = Path(broker.home), Path(broker.data_dir)
    java = _java()
    classpath = str(home / "libs" / "*")
    log_file = Path(broker.log_file)
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "KAFKA_OPTS")}
    jvm = [
        java,
        f"-Xms{broker.heap}",
        f"-Xmx{broker.heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node_dir / 'logs'}",
        "-cp",
        classpath,
    ]
    started = time.monotonic()
    offset = log_file.stat().st_size if log_file.is_file() else 0
    proc = launch(
        [*jvm, "kafka.Kafka", str(node_dir / "server.properties")], cwd=node_dir, env=env, log_file=log_file
    )
    broker.pid = proc.pid
    state = _state_file(broker.name)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(asdict(broker), indent=2))
    wait_until_started(
        proc,
        lambda: _ready(log_file, offset) and port_open(broker.port),
        what=f"Kafka {broker.version}",
        log_file=log_file,
        started=started,
        timeout=timeout,
        stop=lambda: broker.stop(timeout=10),
        poll=0.3,
    )
    broker.startup_seconds = round(time.monotonic() - started, 1)
    state.write_text(json.dumps(asdict(broker), indent=2))
    logger.info("Kafka %s up on %s in %.1f s", broker.version, broker.bootstrap, broker.startup_seconds)
    return broker


def _ready(log_file: Path, offset: int) -> bool:
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            return _READY_LINE.encode() in f.read()
    except OSError:
        return False


def _format_storage(home: Path, node_dir: Path) -> None:
    cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    proc = subprocess.run(
        [
            _java(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp",
            str(home / "libs" / "*"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node_dir / "server.properties"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise EngineStartError(f"formatting the Kafka storage failed: {tail}")


def start_broker(
    version: str | None = None,
    *,
    name: str = "default",
    port: int | None = None,
    heap: str = "512m",
    timeout: float = 120.0,
    ephemeral: bool = False,
) -> KafkaBroker:
    """Start (or reuse) a local single-node Kafka broker in KRaft mode and wait until it serves.

    Args:
        version: Kafka version (4.x); defaults to :data:`DEFAULT_KAFKA_VERSION`.
        name: several brokers can run side by side under different names.
        port: client port on 127.0.0.1; a free one when omitted. A taken port is an error.
        heap: JVM heap.
        timeout: seconds to wait for the broker to serve.
        ephemeral: keep the data in a temporary directory removed by :meth:`KafkaBroker.stop`.

    Raises:
        EngineStartError: Java or Maven missing, jars not served, port taken, broker died or timed out
            (the message names the log file).
    """
    version = version or DEFAULT_KAFKA_VERSION
    running = broker_status(name)
    if running is not None:
        if running.version != version:
            raise EngineStartError(
                f"a local Kafka {running.version} broker named {name!r} already runs on {running.bootstrap}; "
                "stop it first (colsplade engine kafka down)"
            )
        return running
    if port is not None and port_taken(port):
        raise EngineStartError(
            f"port {port} on 127.0.0.1 is already in use; choose another --port or omit it"
        )
    home = install_kafka(version)
    root = engines_home()
    if ephemeral:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        node_dir = Path(tempfile.mkdtemp(prefix=f"kafka-{name}-", dir=root / "tmp"))
    else:
        node_dir = root / "nodes" / f"kafka-{version}-{name}"
    (node_dir / "logs").mkdir(parents=True, exist_ok=True)
    broker = KafkaBroker(
        version=version,
        name=name,
        port=port or free_port(),
        controller_port=free_port(),
        pid=0,
        home=str(home),
        data_dir=str(node_dir),
        log_file=str(node_dir / "logs" / "console.log"),
        started_at=time.time(),
        heap=heap,
        extras={"ephemeral": ephemeral},
    )
    (node_dir / "server.properties").write_text(_server_properties(broker))
    if not (node_dir / "data" / "meta.properties").is_file():
        _format_storage(home, node_dir)
    return _launch(broker, timeout)


def stop_broker(name: str = "default", timeout: float = 30.0) -> bool:
    """Stop the recorded local broker; returns False when none was running."""
    broker = broker_status(name)
    if broker is None:
        return False
    broker.stop(timeout=timeout)
    return True
