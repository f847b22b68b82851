"""Elasticsearch and OpenSearch adapters behind one protocol.

The only package that sends requests to a cluster. Backend code usually needs just::

    from colsplade.engines import connect_default
    client = connect_default()          # COLSPLADE_URL / config file, else the local node

The local nodes, clusters and their installer moved to :mod:`colsplade.local`; their names
(:data:`MOVED_TO_LOCAL`: ``start_node``, ``LocalNode``, ``install_distribution``, ...) are kept here for
one release, resolved lazily on first access, so importing this package never loads ``colsplade.local``.
Import them from ``colsplade.local``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from colsplade._types import ENGINE_NAMES, EngineName
from colsplade.config import Settings, load_settings
from colsplade.engines._bulk import BulkAction, BulkItemResult, RetryPolicy, bulk_write
from colsplade.engines._client import Capabilities, EngineClient, connect
from colsplade.engines._indices import create_index, delete_index, index_info, spec_for
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

if TYPE_CHECKING:  # the names kept for one release, for type checkers (resolved by __getattr__)
    from colsplade.local import (
        DEFAULT_VERSIONS,
        PREVIOUS_VERSIONS,
        SECURE_OPENSEARCH_VERSION,
        LocalCluster,
        LocalNode,
        TLSFiles,
        cluster_heap,
        cluster_status,
        delete_file_user,
        engines_home,
        install_distribution,
        make_certificates,
        node_status,
        put_file_role,
        put_file_user,
        start_cluster,
        start_node,
        stop_cluster,
        stop_node,
    )

logger = logging.getLogger(__name__)

#: The engine names (not a local-service thing: every client names one).
ENGINES: tuple[EngineName, ...] = ENGINE_NAMES

#: Names that moved to :mod:`colsplade.local`; kept here for one release (lazily: see ``__getattr__``).
MOVED_TO_LOCAL = frozenset(
    {
        "DEFAULT_VERSIONS",
        "PREVIOUS_VERSIONS",
        "SECURE_OPENSEARCH_VERSION",
        "LocalCluster",
        "LocalNode",
        "TLSFiles",
        "cluster_heap",
        "cluster_status",
        "delete_file_user",
        "engines_home",
        "install_distribution",
        "make_certificates",
        "node_status",
        "put_file_role",
        "put_file_user",
        "start_cluster",
        "start_node",
        "stop_cluster",
        "stop_node",
    }
)

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


def __getattr__(name: str) -> Any:
    """The names kept for one release after the move to :mod:`colsplade.local` (PEP 562)."""
    if name in MOVED_TO_LOCAL:
        return getattr(importlib.import_module("colsplade.local"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *MOVED_TO_LOCAL})


def resolve_settings(settings: Settings | None = None, *, autostart: bool = False) -> Settings:
    """Settings with a URL: the configured one, else the local node of ``settings.engine``.

    With no URL configured, the local node (``colsplade engine up``) is the default target, or every node of
    the local cluster (``colsplade engine up --nodes 3``) when only that runs; ``autostart`` starts a single
    node when neither runs, otherwise :class:`EngineUnreachableError` says how to start one.
    """
    settings = settings or load_settings()
    if settings.urls:
        return settings
    # Only here does a client need the local services: engines -> local, never the other way.
    from colsplade.local import cluster_status, node_status, start_node

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
