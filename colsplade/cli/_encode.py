"""``colsplade encode``: how a model reads a text, a thin shell over
:meth:`colsplade.encoders.Encoder.explain`."""

from __future__ import annotations

import json

import click

from colsplade.cli._options import model_options

__all__ = ["encode_command"]


@click.command("encode")
@model_options(pair=False, required=True, model_help="Model directory (SPLADE, ColBERT or joint).")
@click.option("--document", "is_document", is_flag=True, help="Encode as a document (default: as a query).")
@click.option("--top", default=30, show_default=True, type=int, help="How many SPLADE terms to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.argument("text")
def encode_command(model: str, variant: str, is_document: bool, top: int, as_json: bool, text: str) -> None:
    """Show how a model reads TEXT: SPLADE word impacts (expansion terms marked +) and ColBERT tokens."""
    from colsplade.encoders import load_encoder

    encoder = load_encoder(model, variant=variant)
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
