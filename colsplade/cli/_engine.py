"""``colsplade engine up|down|status``: local single-node engines, thin shells over :mod:`colsplade.engines`.

These commands manage the local nodes colsplade runs itself, so they take ``--engine`` (which node) but no
connection flags.
"""

from __future__ import annotations

import dataclasses

import click

from colsplade.cli._options import ENGINE_CHOICE, echo_json

__all__ = ["engine_group"]


@click.group("engine")
def engine_group() -> None:
    """Local single-node Elasticsearch / OpenSearch for development (from Maven Central)."""


@engine_group.command("up")
@click.option("--engine", "kind", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
@click.option("--version", help="Distribution version (default: the newest verified one).")
@click.option("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one).")
@click.option("--heap", default="1g", show_default=True, help="JVM heap.")
@click.option("--json", "as_json", is_flag=True, help="Print the node as JSON.")
def engine_up(kind: str, version: str | None, port: int | None, heap: str, as_json: bool) -> None:
    """Start a local node (reuses a running one) and print its URL."""
    from colsplade.engines import start_node

    node = start_node(kind, version, port=port, heap=heap)
    if as_json:
        echo_json({**dataclasses.asdict(node), "url": node.url})
    else:
        click.echo(f"{kind} {node.version} running at {node.url} (pid {node.pid}, log {node.log_file})")


@engine_group.command("down")
@click.option("--engine", "kind", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
def engine_down(kind: str) -> None:
    """Stop the local node."""
    from colsplade.engines import stop_node

    click.echo(f"{kind} stopped" if stop_node(kind) else f"no local {kind} node was running")


@engine_group.command("status")
@click.option("--engine", "kind", type=ENGINE_CHOICE, help="One engine (default: both).")
@click.option("--json", "as_json", is_flag=True)
def engine_status(kind: str | None, as_json: bool) -> None:
    """Show the local nodes and whether they answer."""
    from colsplade.engines import ENGINES, node_status

    report = {}
    for name in [kind] if kind else list(ENGINES):
        node = node_status(name)
        report[name] = (
            None
            if node is None
            else {**dataclasses.asdict(node), "url": node.url, "healthy": node.is_running()}
        )
    if as_json:
        echo_json(report)
        return
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
    from colsplade.streams import start_broker

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
    from colsplade.streams import stop_broker

    click.echo("kafka stopped" if stop_broker() else "no local kafka broker was running")


@kafka_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def kafka_status(as_json: bool) -> None:
    """Show the local broker and whether it answers."""
    from colsplade.streams import broker_status

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
