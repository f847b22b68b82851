"""The ``colsplade`` command line: a thin click shell over the public functions.

Each command maps its flags onto one documented function and imports heavy code only when it runs, so
``colsplade --help`` stays fast. Connection flags are shared by every command and follow the precedence
of :mod:`colsplade.config` (flags > environment > config file).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any

import click

from colsplade.exceptions import ColspladeError

ENGINE_CHOICE = click.Choice(["elasticsearch", "opensearch"])


class _Context:
    def __init__(self, overrides: dict[str, Any], config_file: str | None) -> None:
        self.overrides = overrides
        self.config_file = config_file

    def settings(self, **more: Any):
        from colsplade.config import load_settings

        return load_settings(
            self.config_file, **{**self.overrides, **{k: v for k, v in more.items() if v is not None}}
        )


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class _Group(click.Group):
    """Turns colsplade's own errors into one clear line and exit code 1 (2 for bad input)."""

    def invoke(self, ctx: click.Context) -> Any:
        from colsplade.exceptions import InvalidInputError

        try:
            return super().invoke(ctx)
        except InvalidInputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except ColspladeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--url", help="Engine URL(s), comma-separated [env COLSPLADE_URL]. Default: the local node.")
@click.option("--engine", type=ENGINE_CHOICE, help="Engine kind; detected from the URL when omitted.")
@click.option("--username", help="Basic-auth user [env COLSPLADE_USERNAME].")
@click.option(
    "--api-key", help="API key [env COLSPLADE_API_KEY]; prefer the env variable to keep it out of history."
)
@click.option(
    "--ca-certs", type=click.Path(dir_okay=False), help="CA bundle for TLS [env COLSPLADE_CA_CERTS]."
)
@click.option("--no-verify-certs", is_flag=True, default=None, help="Do not verify TLS certificates.")
@click.option("--timeout", type=float, help="Request timeout in seconds [env COLSPLADE_TIMEOUT].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML config file [env COLSPLADE_CONFIG].",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="colsplade")
@click.pass_context
def main(
    ctx: click.Context,
    url,
    engine,
    username,
    api_key,
    ca_certs,
    no_verify_certs,
    timeout,
    config_file,
    verbose,
):
    """Two-stage neural search for Elasticsearch and OpenSearch: SPLADE retrieval, ColBERT rerank."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    overrides = {
        "urls": url,
        "engine": engine,
        "username": username,
        "api_key": api_key,
        "ca_certs": ca_certs,
        "verify_certs": False if no_verify_certs else None,
        "request_timeout": timeout,
    }
    ctx.obj = _Context(overrides, config_file)


# ---------------------------------------------------------------------------------------------- engine


@main.group()
def engine() -> None:
    """Local single-node Elasticsearch / OpenSearch for development (from Maven Central)."""


@engine.command("up")
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
        _echo_json({**dataclasses.asdict(node), "url": node.url})
    else:
        click.echo(f"{kind} {node.version} running at {node.url} (pid {node.pid}, log {node.log_file})")


@engine.command("down")
@click.option("--engine", "kind", type=ENGINE_CHOICE, default="elasticsearch", show_default=True)
def engine_down(kind: str) -> None:
    """Stop the local node."""
    from colsplade.engines import stop_node

    click.echo(f"{kind} stopped" if stop_node(kind) else f"no local {kind} node was running")


@engine.command("status")
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
        _echo_json(report)
        return
    for name, info in report.items():
        if info is None:
            click.echo(f"{name}: not running")
        else:
            state = "healthy" if info["healthy"] else "not answering"
            click.echo(
                f"{name} {info['version']}: {state} at {info['url']} (pid {info['pid']}, log {info['log_file']})"
            )


# ---------------------------------------------------------------------------------------------- index


@main.group()
def index() -> None:
    """Create, inspect and delete colsplade indices."""


def _client(ctx: _Context, autostart: bool):
    from colsplade.engines import connect_default

    return connect_default(ctx.settings(), autostart=autostart)


@index.command("create")
@click.argument("name")
@click.option("--dim", type=int, default=128, show_default=True, help="ColBERT vector dimension.")
@click.option(
    "--element-type", type=click.Choice(["float", "byte", "bit"]), default="float", show_default=True
)
@click.option("--no-vector-index", is_flag=True, help="Store token vectors for rerank only (no HNSW graph).")
@click.option(
    "--quantization", type=click.Choice(["int8_hnsw", "int4_hnsw", "bbq_hnsw"]), help="ES graph quantisation."
)
@click.option("--shards", type=int, default=1, show_default=True)
@click.option("--replicas", type=int, default=0, show_default=True)
@click.option(
    "--existing-ok", is_flag=True, help="If NAME exists, add colsplade's fields to it (keeps its data)."
)
@click.pass_obj
def index_create(
    ctx: _Context, name, dim, element_type, no_vector_index, quantization, shards, replicas, existing_ok
):
    """Create index NAME with the colsplade fields, or add them to an existing index."""
    from colsplade.engines import create_index
    from colsplade.mappings import FieldSpec

    spec = FieldSpec(
        colbert_dim=dim,
        element_type=element_type,
        index_vectors=not no_vector_index,
        quantization=quantization,
    )
    with _client(ctx, autostart=True) as client:
        result = create_index(client, name, spec, shards=shards, replicas=replicas, existing_ok=existing_ok)
    verb = "created" if result["created"] else "updated"
    added = ", ".join(result["added_fields"]) or "nothing (fields already there)"
    click.echo(f"{verb} {name} on {client.engine}: added {added} (splade as {result['spec'].splade_type})")


@index.command("info")
@click.argument("name")
@click.pass_obj
def index_info_cmd(ctx: _Context, name: str) -> None:
    """Show what index NAME holds (JSON)."""
    from colsplade.engines import index_info

    with _client(ctx, autostart=False) as client:
        _echo_json(index_info(client, name))


@index.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--missing-ok", is_flag=True, help="Succeed when the index does not exist.")
@click.pass_obj
def index_delete(ctx: _Context, name: str, yes: bool, missing_ok: bool) -> None:
    """Delete index NAME and all its documents."""
    from colsplade.engines import delete_index

    if not yes:
        click.confirm(f"Delete index {name!r} and all its documents?", abort=True)
    with _client(ctx, autostart=False) as client:
        deleted = delete_index(client, name, missing_ok=missing_ok)
    click.echo(f"deleted {name}" if deleted else f"{name} did not exist")


@main.command("quickstart")
@click.option(
    "--engine",
    "kind",
    type=ENGINE_CHOICE,
    default="elasticsearch",
    show_default=True,
    help="Local engine to start when no --url / COLSPLADE_URL is configured.",
)
@click.option("--index", "index_name", default="colsplade-quickstart", show_default=True)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Joint model directory (default: the quick model, trained once and cached; needs [train]).",
)
@click.option("--query", help="Query to answer (default: a SciFact claim from the sample).")
@click.option(
    "--variant", default="auto", show_default=True, help="ONNX variant: auto (int8 if exported), fp32, int8."
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_obj
def quickstart_cmd(
    ctx: _Context, kind: str, index_name: str, model, query, variant: str, no_progress: bool
) -> None:
    """Run the main job: engine, model, ingest the SciFact sample, answer a query with its explanation."""
    from colsplade._quickstart import quickstart

    report = quickstart(
        ctx.settings(),
        engine=kind,
        index=index_name,
        model=model,
        query=query,
        variant=variant,
        progress=not no_progress,
        say=lambda line: click.echo(f"-- {line}", err=True),
    )
    click.echo(f"\nquery: {report['query']}")
    click.echo(
        f"{report['engine']} {report['engine_version']}, rerank={report['rerank']}, model {report['model']} ({report['variant']})"
    )
    for rank, hit in enumerate(report["hits"], start=1):
        title = (hit.source or {}).get("title", "")
        click.echo(f"{rank}. [{hit.id}] {hit.score:.3f}  {title[:90]}")
    if report["hits"] and report["hits"][0].explanation:
        ex = report["hits"][0].explanation
        click.echo("\nwhy the top hit matched:")
        terms = ", ".join(f"{t.term} ({t.query_weight:.2f}x{t.doc_weight:.2f})" for t in ex.terms[:8])
        click.echo(f"  SPLADE {ex.sparse_score:.2f} from: {terms}")
        tokens = ", ".join(
            f"{t.query_token}->{t.doc_token or t.doc_position} {t.contribution:.2f}"
            for t in ex.tokens
            if t.query_token not in ("[CLS]", "[SEP]", "[MASK]", "[unused0]")
        )
        click.echo(f"  MaxSim {ex.maxsim_score or 0:.2f}, query token -> best document token: {tokens[:400]}")
    t = report["timings"]
    click.echo(
        f"\ntimings: engine {t['engine_s']} s, model {t['model_s']} s, ingest {t['ingest_s']} s, "
        f"query {t['query_ms']} ms, total {t['total_s']} s"
    )


def _register_optional_commands() -> None:
    """Commands whose modules are added by later stages register here when present."""
    import importlib

    optional = (
        (
            "colsplade._cli_models",
            ("export_command", "encode_command", "init_model_command", "import_model_command"),
        ),
        ("colsplade._cli_ingest", ("ingest_command",)),
        ("colsplade._cli_query", ("search_command",)),
        ("colsplade._cli_train", ("train_command",)),
        ("colsplade._cli_eval", ("eval_command", "compare_command")),
    )
    for module_name, attrs in optional:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for attr in attrs:
            command = getattr(module, attr, None)
            if command is not None:
                main.add_command(command)


_register_optional_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
