"""``colsplade engine up|down|status``: local engines (one node, or a cluster with ``--nodes N``), thin shells
over :mod:`colsplade.engines`.

These commands manage the local nodes colsplade runs itself, so they take ``--engine`` (which node) but no
connection flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from colsplade.cli._options import ENGINE_CHOICE, echo_json

__all__ = ["engine_group"]


@click.group("engine")
def engine_group() -> None:
    """Local Elasticsearch / OpenSearch nodes and clusters for development (from Maven Central)."""


@engine_group.command("up")
@click.option("--engine", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
@click.option("--version", help="Distribution version (default: the newest verified one).")
@click.option("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one).")
@click.option("--heap", help="JVM heap per node [default: 1g; a cluster: sized for the machine].")
@click.option(
    "--name", default="default", show_default=True, help="Several local nodes run under different names."
)
@click.option(
    "--secure",
    is_flag=True,
    help="HTTPS with a CA of its own, users with random passwords and the roles colsplade_ingest / "
    "colsplade_search (OpenSearch: the security plugin; Elasticsearch: its security module, file realm).",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="More than 1: a local cluster of that many nodes on 127.0.0.1 (prints every node's URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the node as JSON.")
def engine_up(
    engine: str,
    version: str | None,
    port: int | None,
    heap: str | None,
    name: str,
    secure: bool,
    nodes: int,
    as_json: bool,
) -> None:
    """Start a local node or cluster (reuses a running one) and print its URL(s)."""
    if nodes > 1:
        if secure:
            raise click.UsageError("--secure is for one node; a local cluster runs without security")
        _cluster_up(engine, version, port, heap, nodes, as_json)
        return
    from colsplade.local import start_node

    node = start_node(engine, version, name=name, port=port, heap=heap or "1g", secure=secure)
    if as_json:
        echo_json({**dataclasses.asdict(node), "url": node.url})
        return
    click.echo(f"{engine} {node.version} running at {node.url} (pid {node.pid}, log {node.log_file})")
    if node.secure:
        click.echo(
            f"secured: users {', '.join(node.credentials())}; their passwords are in "
            f"{node.extras['credentials_file']} (owner-only). Connect with:\n"
            f"  export COLSPLADE_URL={node.url} COLSPLADE_CA_CERTS={node.ca_certs} "
            "COLSPLADE_USERNAME=colsplade-search\n"
            "  export COLSPLADE_PASSWORD=...  # that user's password from the file"
        )


def _cluster_up(
    engine: str, version: str | None, port: int | None, heap: str | None, nodes: int, as_json: bool
) -> None:
    from colsplade.local import start_cluster

    if port is not None:
        raise click.UsageError("--port is for one node; a cluster's nodes take free ports")
    cluster = start_cluster(engine, nodes, version, heap=heap)
    if as_json:
        echo_json({**dataclasses.asdict(cluster), "urls": cluster.urls})
        return
    click.echo(
        f"{engine} {cluster.version} cluster of {nodes} nodes (heap {cluster.heap} each) running at "
        f"{','.join(cluster.urls)}"
    )
    click.echo(f"use it with: export COLSPLADE_URL={','.join(cluster.urls)}")


@engine_group.command("down")
@click.option("--engine", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
@click.option("--name", default="default", show_default=True, help="The node's name (engine up --name).")
def engine_down(engine: str, name: str) -> None:
    """Stop the local node, and the local cluster (engine up --nodes N)."""
    from colsplade.local import stop_cluster, stop_node

    click.echo(
        f"{engine} stopped" if stop_node(engine, name) else f"no local {engine} node {name!r} was running"
    )
    if stop_cluster(engine):
        click.echo(f"{engine} cluster stopped")


@engine_group.command("roles")
@click.option("--engine", type=ENGINE_CHOICE, default="opensearch", show_default=True)
@click.option(
    "--index",
    "patterns",
    multiple=True,
    required=True,
    help="Index pattern the roles cover (repeatable), e.g. 'docs*' for the alias docs and its docs-vN.",
)
@click.option("--source", "sources", multiple=True, help="Pattern of an index the ingest role re-encodes.")
def engine_roles(engine: str, patterns: tuple[str, ...], sources: tuple[str, ...]) -> None:
    """Print the least-privilege roles colsplade_ingest and colsplade_search as JSON, in the format of the
    engine's security API, for an operator to review and apply (README, "Secured clusters")."""
    from colsplade.engines import ingest_role, search_role

    echo_json(
        {
            "colsplade_ingest": ingest_role(patterns, source_patterns=sources, engine=engine),
            "colsplade_search": search_role(patterns, engine=engine),
        }
    )


@engine_group.command("status")
@click.option("--engine", type=ENGINE_CHOICE, help="One engine (default: both).")
@click.option("--json", "as_json", is_flag=True)
def engine_status(engine: str | None, as_json: bool) -> None:
    """Show the local nodes and whether they answer."""
    from colsplade.engines import ENGINES
    from colsplade.local import cluster_status, node_status

    report: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    for name in [engine] if engine else list(ENGINES):
        node = node_status(name)
        report[name] = (
            None
            if node is None
            else {**dataclasses.asdict(node), "url": node.url, "healthy": node.is_running()}
        )
        cluster = cluster_status(name)
        if cluster is not None:
            clusters[name] = {
                **dataclasses.asdict(cluster),
                "urls": cluster.urls,
                "live_urls": cluster.live_urls(),
                "health": (cluster.health() or {}).get("status"),
            }
    if as_json:
        echo_json({**report, "clusters": clusters} if clusters else report)
        return
    for name, info in clusters.items():
        click.echo(
            f"{name} {info['version']} cluster: {info['health'] or 'not answering'}, "
            f"{len(info['live_urls'])} of {len(info['urls'])} nodes up at {','.join(info['live_urls'])}"
        )
    for name, info in report.items():
        if info is None:
            click.echo(f"{name}: not running")
        else:
            state = "healthy" if info["healthy"] else "not answering"
            click.echo(
                f"{name} {info['version']}: {state} at {info['url']} (pid {info['pid']}, log {info['log_file']})"
            )


# ---------------------------------------------------------------------------------------------- Kafka


@engine_group.group("kafka")
def kafka_group() -> None:
    """Local single-node Apache Kafka broker (KRaft, from Maven Central) for stream ingest."""


@kafka_group.command("up")
@click.option("--version", help="Kafka version (default: the newest verified one).")
@click.option("--port", type=int, help="Client port on 127.0.0.1 (default: a free one).")
@click.option("--heap", default="512m", show_default=True, help="JVM heap.")
@click.option("--json", "as_json", is_flag=True, help="Print the broker as JSON.")
def kafka_up(version: str | None, port: int | None, heap: str, as_json: bool) -> None:
    """Start a local broker (reuses a running one) and print its bootstrap address."""
    from colsplade.local import start_broker

    broker = start_broker(version, port=port, heap=heap)
    if as_json:
        echo_json({**dataclasses.asdict(broker), "bootstrap": broker.bootstrap})
    else:
        click.echo(
            f"kafka {broker.version} running at {broker.bootstrap} (pid {broker.pid}, log {broker.log_file})"
        )


@kafka_group.command("down")
def kafka_down() -> None:
    """Stop the local broker."""
    from colsplade.local import stop_broker

    click.echo("kafka stopped" if stop_broker() else "no local kafka broker was running")


@kafka_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def kafka_status(as_json: bool) -> None:
    """Show the local broker and whether it answers."""
    from colsplade.local import broker_status

    broker = broker_status()
    info = None if broker is None else {**dataclasses.asdict(broker), "bootstrap": broker.bootstrap}
    if as_json:
        echo_json({"kafka": info and {**info, "healthy": broker.is_running()}})
    elif broker is None:
        click.echo("kafka: not running")
    else:
        state = "healthy" if broker.is_running() else "not answering"
        click.echo(
            f"kafka {broker.version}: {state} at {broker.bootstrap} (pid {broker.pid}, log {broker.log_file})"
        )
