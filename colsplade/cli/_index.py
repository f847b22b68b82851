"""``colsplade index create|info|delete``: thin shells over :func:`colsplade.engines.create_index`,
:func:`~colsplade.engines.index_info` and :func:`~colsplade.engines.delete_index`.

Each command takes the shared connection flags. The token-store layout flags are shared with ``ingest``
(:func:`colsplade.cli._options.layout_options`); each is one argument of :class:`colsplade.mappings.FieldSpec`.
"""

from __future__ import annotations

from typing import Any

import click

from colsplade.cli._options import CliState, connection_options, echo_json, layout_options, pass_state

__all__ = ["index_group"]


@click.group("index")
def index_group() -> None:
    """Create, inspect and delete colsplade indices."""


def _client(state: CliState, autostart: bool):
    from colsplade.engines import connect_default

    return connect_default(state.settings(), autostart=autostart)


@index_group.command("create")
@click.argument("name")
@click.option("--dim", type=int, default=128, show_default=True, help="ColBERT vector dimension.")
@layout_options()
@click.option(
    "--quantization", type=click.Choice(["int8_hnsw", "int4_hnsw", "bbq_hnsw"]), help="ES graph quantisation."
)
@click.option("--shards", type=int, default=1, show_default=True)
@click.option("--replicas", type=int, default=0, show_default=True)
@click.option(
    "--existing-ok", is_flag=True, help="If NAME exists, add colsplade's fields to it (keeps its data)."
)
@connection_options()
@pass_state
def index_create(
    state: CliState,
    name: str,
    dim: int,
    layout: dict[str, Any],
    quantization: str | None,
    shards: int,
    replicas: int,
    existing_ok: bool,
) -> None:
    """Create index NAME with the colsplade fields, or add them to an existing index."""
    from colsplade.engines import create_index
    from colsplade.mappings import FieldSpec

    spec = FieldSpec(
        colbert_dim=dim, quantization=quantization, **{k: v for k, v in layout.items() if v is not None}
    )
    with _client(state, autostart=True) as client:
        result = create_index(client, name, spec, shards=shards, replicas=replicas, existing_ok=existing_ok)
    verb = "created" if result["created"] else "updated"
    added = ", ".join(result["added_fields"]) or "nothing (fields already there)"
    click.echo(f"{verb} {name} on {client.engine}: added {added} (splade as {result['spec'].splade_type})")


@index_group.command("info")
@click.argument("name")
@connection_options()
@pass_state
def index_info(state: CliState, name: str) -> None:
    """Show what index NAME holds (JSON)."""
    from colsplade.engines import index_info as info

    with _client(state, autostart=False) as client:
        echo_json(info(client, name))


@index_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--missing-ok", is_flag=True, help="Succeed when the index does not exist.")
@connection_options()
@pass_state
def index_delete(state: CliState, name: str, yes: bool, missing_ok: bool) -> None:
    """Delete index NAME and all its documents."""
    from colsplade.engines import delete_index

    if not yes:
        click.confirm(f"Delete index {name!r} and all its documents?", abort=True)
    with _client(state, autostart=False) as client:
        deleted = delete_index(client, name, missing_ok=missing_ok)
    click.echo(f"deleted {name}" if deleted else f"{name} did not exist")
