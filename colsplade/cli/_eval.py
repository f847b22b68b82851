"""``colsplade eval`` and ``colsplade compare``: thin shells over colsplade.evaluation's engine evaluation
(:func:`colsplade.evaluation.evaluate_on_engine` and :func:`~colsplade.evaluation.compare_results`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from colsplade.cli._options import (
    CliState,
    connection_options,
    model_options,
    model_or_default,
    pass_state,
)

__all__ = ["compare_command", "eval_command"]


@click.command("eval")
@click.option(
    "--dataset",
    "data_dir",
    required=True,
    metavar="DIR|NAME",
    help="BEIR-format directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or a dataset name "
    "(colsplade datasets download NAME).",
)
@model_options(variant="int8")
@click.option("--index", "index_name", help="Index to (re)use; default eval-<dataset>-<model>.")
@click.option("--split", default="test", show_default=True)
@click.option("--max-queries", type=int, help="Evaluate the first N queries only.")
@click.option("--window", type=int, default=100, show_default=True, help="Rerank window.")
@click.option(
    "--knn-k", type=int, default=10, show_default=True, help="Token-ANN neighbours per query token."
)
@click.option(
    "--first-stage-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Also run the fused plan: MaxSim + w * SPLADE score (w chosen on held-out queries, not on the test set).",
)
@click.option("--plan", "plans", multiple=True, help="Plans to run (repeatable; default: all).")
@click.option(
    "--analyzer",
    default="auto",
    show_default=True,
    help="Analyser of a new index's title/text fields, which BM25 searches: auto = english where the "
    "engine has it (analysis-common), else standard; or any analyser the engine has.",
)
@click.option("--no-reuse", is_flag=True, help="Re-ingest even if the index already holds the corpus.")
@click.option("--out", "out_dir", default="eval-results", show_default=True, type=click.Path(file_okay=False))
@click.option("--no-progress", is_flag=True)
@connection_options(local_engine="elasticsearch")
@pass_state
def eval_command(
    state: CliState,
    data_dir,
    model,
    splade_model,
    colbert_model,
    variant,
    index_name,
    split,
    max_queries,
    window,
    knn_k,
    first_stage_weight,
    plans,
    analyzer,
    no_reuse,
    out_dir,
    no_progress,
) -> None:
    """Index a BEIR dataset and evaluate BM25, SPLADE, SPLADE+ColBERT, token-ANN and hybrid on it."""
    from colsplade.encoders import load_joint_encoder
    from colsplade.engines import connect, resolve_settings
    from colsplade.evaluation import (
        default_plans,
        evaluate_on_engine,
        results_markdown,
        write_results,
    )
    from colsplade.exceptions import InvalidInputError

    settings = state.settings()  # with no URL configured: the local node of --engine
    encoder = load_joint_encoder(
        model_or_default(settings, model, splade_model, colbert_model),
        splade_model=splade_model,
        colbert_model=colbert_model,
        variant=variant,
    )
    chosen = default_plans(window=window, knn_k=knn_k, first_stage_weight=first_stage_weight)
    if plans:
        unknown = set(plans) - {p.name for p in chosen}
        if unknown:
            raise InvalidInputError(
                f"unknown plan(s) {sorted(unknown)}; choose from {[p.name for p in chosen]}"
            )
        chosen = [p for p in chosen if p.name in plans]
    with connect(resolve_settings(settings, autostart=True)) as client:
        result = evaluate_on_engine(
            client,
            data_dir,
            encoder,
            index=index_name,
            split=split,
            plans=chosen,
            max_queries=max_queries,
            reuse_index=not no_reuse,
            variant=variant,
            progress=not no_progress,
            analyzer=analyzer,
        )
    paths = write_results(result, out_dir, stem=f"eval-{Path(data_dir).name}-{result['engine']}")
    click.echo(results_markdown(result))
    click.echo("written: " + ", ".join(paths.values()))


@click.command("compare")
@click.argument("result_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("result_b", type=click.Path(exists=True, dir_okay=False))
def compare_command(result_a: str, result_b: str) -> None:
    """Compare two `colsplade eval` JSON results: metrics and latency side by side."""
    from colsplade.evaluation import compare_results

    click.echo(
        compare_results(json.loads(Path(result_a).read_text()), json.loads(Path(result_b).read_text()))
    )
