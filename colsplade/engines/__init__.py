"""Elasticsearch and OpenSearch adapters behind one protocol, and local nodes for development.

The only package that sends requests to a cluster. Backend code usually needs just::

    from colsplade.engines import connect_default
    client = connect_default()          # COLSPLADE_URL / config file, else the local node
"""

from __future__ import annotations

import logging

from colsplade.config import Settings, load_settings
from colsplade.engines._bulk import BulkAction, BulkItemResult, RetryPolicy, bulk_write
from colsplade.engines._client import Capabilities, EngineClient, connect
from colsplade.engines._cluster import LocalCluster, cluster_heap, cluster_status, start_cluster, stop_cluster
from colsplade.engines._file_realm import delete_file_user, put_file_role, put_file_user
from colsplade.engines._indices import create_index, delete_index, index_info, spec_for
from colsplade.engines._install import (
    DEFAULT_VERSIONS,
    ENGINES,
    PREVIOUS_VERSIONS,
    SECURE_OPENSEARCH_VERSION,
    engines_home,
    install_distribution,
)
from colsplade.engines._local import LocalNode, node_status, start_node, stop_node
from colsplade.engines._scan import (
    ScanHit,
    alias_indices,
    close_point_in_time,
    next_version,
    open_point_in_time,
    resolve_alias,
    scan_index,
    seq_no_mark,
    switch_alias,
)
from colsplade.engines._secure_node import TLSFiles, make_certificates
from colsplade.engines._security import (
    ROLE_NAMES,
    check_write_privileges,
    delete_user,
    ingest_role,
    put_role,
    put_user,
    search_role,
)
from colsplade.exceptions import EngineUnreachableError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_VERSIONS",
    "ENGINES",
    "PREVIOUS_VERSIONS",
    "ROLE_NAMES",
    "SECURE_OPENSEARCH_VERSION",
    "BulkAction",
    "BulkItemResult",
    "Capabilities",
    "EngineClient",
    "LocalCluster",
    "LocalNode",
    "RetryPolicy",
    "ScanHit",
    "TLSFiles",
    "alias_indices",
    "bulk_write",
    "check_write_privileges",
    "close_point_in_time",
    "cluster_heap",
    "cluster_status",
    "connect",
    "connect_default",
    "create_index",
    "delete_file_user",
    "delete_index",
    "delete_user",
    "engines_home",
    "index_info",
    "ingest_role",
    "install_distribution",
    "make_certificates",
    "next_version",
    "node_status",
    "open_point_in_time",
    "put_file_role",
    "put_file_user",
    "put_role",
    "put_user",
    "resolve_alias",
    "resolve_settings",
    "scan_index",
    "search_role",
    "seq_no_mark",
    "spec_for",
    "start_cluster",
    "start_node",
    "stop_cluster",
    "stop_node",
    "switch_alias",
]


def resolve_settings(settings: Settings | None = None, *, autostart: bool = False) -> Settings:
    """Settings with a URL: the configured one, else the local node of ``settings.engine``.

    With no URL configured, the local node (``colsplade engine up``) is the default target, or every node of
    the local cluster (``colsplade engine up --nodes 3``) when only that runs; ``autostart`` starts a single
    node when neither runs, otherwise :class:`EngineUnreachableError` says how to start one.
    """
    settings = settings or load_settings()
    if settings.urls:
        return settings
    engine = settings.engine or "elasticsearch"
    node = node_status(engine)
    cluster = cluster_status(engine) if node is None else None
    if cluster is not None:
        return settings.replace(urls=cluster.live_urls(), engine=engine)
    if node is None:
        if not autostart:
            raise EngineUnreachableError(
                f"local {engine} node",
                f"no URL is configured and no local {engine} node runs; start one with "
                f"`colsplade engine up --engine {engine}` or pass --url / set COLSPLADE_URL",
            )
        logger.info("no engine configured: starting a local %s node", engine)
        node = start_node(engine, settings.engine_version)
    # A secured local node's own CA; credentials stay the caller's to give.
    return settings.replace(urls=[node.url], engine=engine, ca_certs=settings.ca_certs or node.ca_certs)


def connect_default(settings: Settings | None = None, *, autostart: bool = False) -> EngineClient:
    """Connect to the configured engine, or to the local node when none is configured."""
    return connect(resolve_settings(settings, autostart=autostart))
