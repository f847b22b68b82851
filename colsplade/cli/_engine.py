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
@click.option("--engine", "kind", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
@click.option("--version", help="Distribution version (default: the newest verified one).")
@click.option("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one).")
@click.option("--heap", help="JVM heap per node [default: 1g; a cluster: sized for the machine].")
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="More than 1: a local cluster of that many nodes on 127.0.0.1 (prints every node's URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the node as JSON.")
def engine_up(
    kind: str, version: str | None, port: int | None, heap: str | None, nodes: int, as_json: bool
) -> None:
    """Start a local node or cluster (reuses a running one) and print its URL(s)."""
    if nodes > 1:
        _cluster_up(kind, version, port, heap, nodes, as_json)
        return
    from colsplade.engines import start_node

    node = start_node(kind, version, port=port, heap=heap or "1g")
    if as_json:
        echo_json({**dataclasses.asdict(node), "url": node.url})
    else:
        click.echo(f"{kind} {node.version} running at {node.url} (pid {node.pid}, log {node.log_file})")


def _cluster_up(
    kind: str, version: str | None, port: int | None, heap: str | None, nodes: int, as_json: bool
) -> None:
    from colsplade.engines import start_cluster

    if port is not None:
        raise click.UsageError("--port is for one node; a cluster's nodes take free ports")
    cluster = start_cluster(kind, nodes, version, heap=heap)
    if as_json:
        echo_json({**dataclasses.asdict(cluster), "urls": cluster.urls})
        return
    click.echo(
        f"{kind} {cluster.version} cluster of {nodes} nodes (heap {cluster.heap} each) running at "
        f"{','.join(cluster.urls)}"
    )
    click.echo(f"use it with: export COLSPLADE_URL={','.join(cluster.urls)}")


@engine_group.command("down")
@click.option("--engine", "kind", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
def engine_down(kind: str) -> None:
    """Stop the local node and the local cluster."""
    from colsplade.engines import stop_cluster, stop_node

    click.echo(f"{kind} stopped" if stop_node(kind) else f"no local {kind} node was running")
    if stop_cluster(kind):
        click.echo(f"{kind} cluster stopped")


@engine_group.command("status")
@click.option("--engine", "kind", type=ENGINE_CHOICE, help="One engine (default: both).")
@click.option("--json", "as_json", is_flag=True)
def engine_status(kind: str | None, as_json: bool) -> None:
    """Show the local nodes and whether they answer."""
    from colsplade.engines import ENGINES, cluster_status, node_status

    report: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    for name in [kind] if kind else list(ENGINES):
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
