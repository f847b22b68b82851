"""Local services for development and tests: Elasticsearch / OpenSearch nodes and clusters and a Kafka
broker, run as JVMs on this machine from what Maven Central serves.

::

    from colsplade.local import start_node, start_broker

    node = start_node("opensearch")      # installs once, starts on 127.0.0.1, waits until yellow
    broker = start_broker()              # Kafka 4.x in KRaft mode on a free port
    ...
    node.stop(); broker.stop()

The modules, from the bottom up: ``_system`` (every change to the machine outside colsplade's own files,
made only when colsplade runs as root), ``_process`` (the one launcher, process groups, ports, state
files), ``_http`` (JSON probes before any client exists), ``_distribution`` (the installer: the Maven
fetch, the Java finder, versions), ``_file_realm`` (a secured Elasticsearch node's users and roles in
files), ``_secure`` (certificates, secured distributions and their bootstrap), ``_node`` (one node),
``_file_users`` (users of a running secured node), ``_cluster`` (several nodes) and ``_kafka_broker``.

This package talks to no cluster through :mod:`colsplade.engines` and imports nothing from it (the engines
package imports from here, and only where no URL is configured); a node tells a client what it lacks
through the engine itself (a node attribute, read by :class:`colsplade.engines.Capabilities`).
"""

from __future__ import annotations

from colsplade.local._cluster import LocalCluster, cluster_heap, cluster_status, start_cluster, stop_cluster
from colsplade.local._distribution import (
    DEFAULT_VERSIONS,
    PREVIOUS_VERSIONS,
    SECURE_OPENSEARCH_VERSION,
    engines_home,
    find_java,
    install_distribution,
)
from colsplade.local._file_users import delete_file_user, put_file_role, put_file_user
from colsplade.local._kafka_broker import (
    DEFAULT_KAFKA_VERSION,
    KafkaBroker,
    broker_status,
    install_kafka,
    start_broker,
    stop_broker,
)
from colsplade.local._node import LocalNode, node_status, start_node, stop_node
from colsplade.local._secure import TLSFiles, make_certificates

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DEFAULT_VERSIONS",
    "PREVIOUS_VERSIONS",
    "SECURE_OPENSEARCH_VERSION",
    "KafkaBroker",
    "LocalCluster",
    "LocalNode",
    "TLSFiles",
    "broker_status",
    "cluster_heap",
    "cluster_status",
    "delete_file_user",
    "engines_home",
    "find_java",
    "install_distribution",
    "install_kafka",
    "make_certificates",
    "node_status",
    "put_file_role",
    "put_file_user",
    "start_broker",
    "start_cluster",
    "start_node",
    "stop_broker",
    "stop_cluster",
    "stop_node",
]
