"""``colsplade index create|info|delete``: thin shells over :func:`colsplade.engines.create_index`,
:func:`~colsplade.engines.index_info` and :func:`~colsplade.engines.delete_index`.

Each command takes the shared connection flags. A new layout option of ``create`` is one ``click.option``
here plus one argument of :class:`colsplade.mappings.FieldSpec` (or of ``create_index``).
"""

from __future__ import annotations

import click

from colsplade.cli._options import CliState, connection_options, echo_json, pass_state

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
@click.option(
    "--element-type", type=click.Choice(["float", "byte", "bit"]), default="float", show_default=True
)
@click.option(
    "--nested-vectors",
    is_flag=True,
    help="Also store nested token vectors (opt-in: token kNN candidates, in-engine rerank); "
    "the default layout is the compact token store only.",
)
@click.option(
    "--codes-storage",
    type=click.Choice(["source", "stored", "doc_values"]),
    default="source",
    show_default=True,
    help="Where the engine keeps the compact token blob.",
)
@click.option(
    "--store-compression",
    type=click.Choice(["best_compression", "default"]),
    default="best_compression",
    show_default=True,
    help="index codec: best_compression (DEFLATE, ~20 % smaller) or default (LZ4, a little faster to fetch).",
)
@click.option(
    "--no-vector-index", is_flag=True, help="Nested vectors: store them for rerank only (no HNSW graph)."
)
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
    element_type: str,
    nested_vectors: bool,
    codes_storage: str,
    store_compression: str,
    no_vector_index: bool,
    quantization: str | None,
    shards: int,
    replicas: int,
    existing_ok: bool,
) -> None:
    """Create index NAME with the colsplade fields, or add them to an existing index."""
    from colsplade.engines import create_index
    from colsplade.mappings import FieldSpec

    spec = FieldSpec(
        colbert_dim=dim,
        element_type=element_type,
        index_vectors=not no_vector_index,
        quantization=quantization,
        nested_vectors=nested_vectors,
        codes_storage=codes_storage,
        store_compression=store_compression,
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
