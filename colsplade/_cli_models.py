"""CLI commands for models: ``colsplade export``, ``encode``, ``init-model``, ``import-model``.

Registered in :mod:`colsplade.cli`; heavy imports (torch, onnxruntime) stay inside the functions so
``colsplade --help`` is fast and works without the ``[train]`` extra.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from colsplade.exceptions import ColspladeError

__all__ = ["encode_command", "export_command", "import_model_command", "init_model_command"]


@contextmanager
def _clean_errors() -> Iterator[None]:
    """colsplade's own errors carry a message that says what to do: show it, not a traceback."""
    try:
        yield
    except ColspladeError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--variants",
    default="int8",
    show_default=True,
    help="Comma-separated variants besides fp32: int8, fp16 (empty for fp32 only).",
)
@click.option(
    "--tolerance", default=1e-4, show_default=True, type=float, help="Max absolute fp32 difference to torch."
)
@click.option(
    "--min-kendall-tau",
    default=0.8,
    show_default=True,
    type=float,
    help="Min mean Kendall tau of int8 / fp16 rankings against torch fp32.",
)
@click.option("--opset", default=17, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export_command(
    model_dir: str, variants: str, tolerance: float, min_kendall_tau: float, opset: int, as_json: bool
) -> None:
    """Export MODEL_DIR to ONNX (onnx/model.onnx + variants) and check each file against torch.

    Exits with status 1 when a check fails.
    """
    from colsplade.onnx_export import ParityError, export_model_dir

    wanted = [v.strip() for v in variants.split(",") if v.strip()]
    try:
        with _clean_errors():
            report = export_model_dir(
                model_dir, variants=wanted, tolerance=tolerance, min_kendall_tau=min_kendall_tau, opset=opset
            )
    except click.ClickException as exc:
        if not isinstance(exc.__cause__, ParityError):
            raise
        report = exc.__cause__.report
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())
    if not report.ok:
        sys.exit(1)


@click.command("encode")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--document", "is_document", is_flag=True, help="Encode as a document (default: as a query).")
@click.option("--variant", default="auto", show_default=True, help="fp32, int8, fp16 or auto.")
@click.option("--top", default=30, show_default=True, type=int, help="How many SPLADE terms to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.argument("text")
def encode_command(
    model_dir: str, is_document: bool, variant: str, top: int, as_json: bool, text: str
) -> None:
    """Show how a model reads TEXT: SPLADE word impacts (expansion terms marked +) and ColBERT tokens."""
    from colsplade.encoders import load_encoder

    with _clean_errors():
        encoder = load_encoder(model_dir, variant=variant)
        exp = encoder.explain(text, is_query=not is_document)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": encoder.config.model_id,
                    "kind": encoder.config.kind,
                    "tokens": exp.tokens,
                    "impacts": [{"term": t, "weight": w, "expansion": e} for t, w, e in exp.impacts],
                    "colbert_tokens": exp.colbert_tokens,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"model {encoder.config.model_id} ({encoder.config.kind}, {encoder.variant})")
    click.echo("tokens: " + " ".join(exp.tokens))
    if encoder.config.splade is not None:
        click.echo(f"SPLADE: {len(exp.impacts)} terms (+ = expansion, not in the text)")
        for term, weight, expansion in exp.impacts[:top]:
            click.echo(f"  {'+' if expansion else ' '} {term:20s} {weight:7.3f}")
        if len(exp.impacts) > top:
            click.echo(f"  ... {len(exp.impacts) - top} more")
    if encoder.config.colbert is not None:
        click.echo(f"ColBERT: {len(exp.colbert_tokens)} vectors of dim {encoder.config.colbert.dim}")
        click.echo("  " + " ".join(exp.colbert_tokens))
    if encoder.truncated_count:
        click.echo(f"(truncated to {encoder.tokenizer.max_length(not is_document)} tokens)")


@click.command("init-model")
@click.argument("kind", type=click.Choice(["splade", "colbert", "joint"]))
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

    with _clean_errors():
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
        _export_and_report(path)


def _export_and_report(path: Any) -> None:
    """Export fp32 + int8 ONNX with the parity check; print the report; exit 1 when a check failed."""
    from colsplade.onnx_export import ParityError, export_model_dir

    try:
        report = export_model_dir(path, variants=["int8"])
    except ParityError as exc:
        report = exc.report
    except ColspladeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@click.command("import-model")
@click.argument("source")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "naver-splade", "colbertv2", "pylate", "colsplade"]),
)
@click.option("--export/--no-export", default=True, show_default=True, help="Also export fp32 + int8 ONNX.")
def import_model_command(source: str, out_dir: str, fmt: str, export: bool) -> None:
    """Convert a public checkpoint SOURCE (local directory or hub id) into a model directory OUT_DIR."""
    from colsplade.training import import_checkpoint

    with _clean_errors():
        path = import_checkpoint(source, out_dir, format=fmt)
    click.echo(f"wrote model directory {path}")
    if export:
        _export_and_report(path)
