"""CLI commands ``colsplade init-model`` and ``import-model``: thin shells over
:func:`colsplade.training.init_model_dir` and :func:`colsplade.training.import_checkpoint`.

torch is imported only when a command runs, so ``colsplade --help`` works without the ``[train]`` extra.
With ``--export`` (the default) the new directory is exported like ``colsplade export`` does (fp32 + int8,
parity-checked; exit status 1 when a check fails).
"""

from __future__ import annotations

import click

from colsplade._types import CHECKPOINT_FORMATS, MODEL_KINDS
from colsplade.cli._export import export_and_report

__all__ = ["import_model_command", "init_model_command"]


@click.command("init-model")
@click.argument("kind", type=click.Choice(MODEL_KINDS))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--base", default="minilm", show_default=True, help="minilm, a local HF dir or a hub id.")
@click.option("--dim", default=128, show_default=True, type=int, help="ColBERT dimension.")
@click.option("--pooling", default="max", show_default=True, type=click.Choice(["max", "sum"]))
@click.option("--inference-free", is_flag=True, help="SPLADE queries by a learned weight per term.")
@click.option("--max-query-length", default=32, show_default=True, type=int)
@click.option("--max-doc-length", default=256, show_default=True, type=int)
@click.option("--export/--no-export", default=True, show_default=True, help="Also export fp32 + int8 ONNX.")
def init_model_command(
    kind: str,
    out_dir: str,
    base: str,
    dim: int,
    pooling: str,
    inference_free: bool,
    max_query_length: int,
    max_doc_length: int,
    export: bool,
) -> None:
    """Create an untrained KIND model directory in OUT_DIR from a base model (the start of training)."""
    from colsplade.training import init_model_dir

    path = init_model_dir(
        kind,
        out_dir,
        base=base,
        dim=dim,
        pooling=pooling,
        query_encoder="inference_free" if inference_free else "model",
        max_query_length=max_query_length,
        max_doc_length=max_doc_length,
    )
    click.echo(f"wrote {kind} model directory {path}")
    if export:
        export_and_report(path, variants=["int8"])


@click.command("import-model")
@click.argument("source")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *CHECKPOINT_FORMATS]),
)
@click.option(
    "--max-query-length",
    type=click.IntRange(min=4),
    default=None,
    help="Query length in tokens (default: the checkpoint's own).",
)
@click.option(
    "--max-doc-length",
    type=click.IntRange(min=4),
    default=None,
    help="Document length in tokens (default: the checkpoint's own), up to the backbone's position limit "
    "(8,192 for ModernBERT); ingest cuts or chunks (--long-docs) past it.",
)
@click.option("--export/--no-export", default=True, show_default=True, help="Also export fp32 + int8 ONNX.")
def import_model_command(
    source: str,
    out_dir: str,
    fmt: str,
    max_query_length: int | None,
    max_doc_length: int | None,
    export: bool,
) -> None:
    """Convert a public checkpoint SOURCE (local directory or hub id) into a model directory OUT_DIR."""
    from colsplade.training import import_checkpoint

    lengths = {"max_query_length": max_query_length, "max_doc_length": max_doc_length}
    path = import_checkpoint(source, out_dir, format=fmt, **{k: v for k, v in lengths.items() if v})
    click.echo(f"wrote model directory {path}")
    if export:
        export_and_report(path, variants=["int8"])
