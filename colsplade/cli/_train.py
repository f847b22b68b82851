"""CLI command ``colsplade train splade|colbert|joint``: a thin shell over :func:`colsplade.training.train`.

Registered by :mod:`colsplade.cli`; torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from colsplade._types import MODEL_KINDS
from colsplade.cli._options import CliState, connection_options, pass_state

__all__ = ["train_command"]


@click.command("train")
@click.argument("kind", type=click.Choice(MODEL_KINDS))
@click.option(
    "--data",
    metavar="DIR|NAME",
    help="BEIR directory (corpus, queries, qrels/), or a dataset name (colsplade datasets download NAME).",
)
@click.option("--base", default=None, help="Base model: 'minilm' (default), a local directory or a hub id.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="JSON / TOML settings."
)
@click.option("--split", default=None, help="Training split (qrels/<split>.tsv) [train].")
@click.option("--dev-split", default=None, help="Dev split evaluated during training.")
@click.option("--dev-queries", type=int, default=None, help="Hold this many training queries out as dev.")
@click.option(
    "--label-free",
    is_flag=True,
    default=None,
    help="No queries or qrels: pseudo-queries from the documents of --from-index / --corpus "
    "(title -> body, a sentence -> the rest, random crops), BM25 negatives on the engine.",
)
@click.option(
    "--from-index", metavar="INDEX", default=None, help="--label-free: read the documents of this index."
)
@click.option(
    "--corpus",
    metavar="FILE|DIR|NAME",
    default=None,
    help="--label-free: a JSONL corpus (_id + text fields), or a BEIR directory / dataset whose corpus.jsonl only is read.",
)
@click.option("--title-field", default=None, help="--label-free: the title field [title].")
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    help="--label-free: a body text field (repeatable) [text].",
)
@click.option(
    "--pseudo-kinds",
    default=None,
    help="--label-free: comma-separated pseudo-query kinds among title,ict,crop [all three].",
)
@click.option(
    "--max-pairs", type=int, default=None, help="--label-free: at most this many pairs (one per document)."
)
@click.option("--triples", type=click.Path(exists=True, dir_okay=False), help="Triples / ranked-list JSONL.")
@click.option("--negatives", default=None, help="bm25 (mine on the engine), none, or a negatives JSONL file.")
@click.option("--n-negatives", type=int, default=None, help="Hard negatives per query per step [1].")
@click.option("--name", default=None, help="Model name in colsplade.json [the --out directory's name].")
@click.option("--loss", type=click.Choice(["infonce", "margin", "marginmse", "kl"]), default=None)
@click.option(
    "--teacher",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Trained ColBERT / joint model whose MaxSim scores the candidates (with --loss marginmse or kl).",
)
@click.option(
    "--sparse-query",
    type=click.Choice(["encoder", "inference-free"]),
    default=None,
    help="SPLADE query side: the encoder's head [encoder], or inference-free (a per-term weight table "
    "learnt with the document encoder, initialised from IDF; a query costs one tokenizer call).",
)
@click.option(
    "--splade-distill-weight",
    type=float,
    default=None,
    help="joint: weight of the listwise KL that distils the ColBERT side's in-batch scores into SPLADE [0].",
)
@click.option("--distill-temperature", type=float, default=None, help="Temperature of that KL [1].")
@click.option(
    "--teacher-filter/--no-teacher-filter",
    default=None,
    help="joint: keep the negatives the ColBERT side scores above the positive out of SPLADE's loss.",
)
@click.option("--epochs", type=float, default=None)
@click.option("--max-steps", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--grad-accum", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--max-doc-length", type=int, default=None)
@click.option("--max-query-length", type=int, default=None)
@click.option("--dim", type=int, default=None, help="ColBERT dimension [128].")
@click.option("--regularizer", type=click.Choice(["flops", "l1", "none"]), default=None)
@click.option("--lambda-query", type=float, default=None)
@click.option("--lambda-doc", type=float, default=None)
@click.option(
    "--init-doc-nnz", type=int, default=None, help="Calibrate a fresh MLM head to ~this many terms."
)
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--threads", "num_threads", type=int, default=None, help="torch CPU threads.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
@click.option("--no-resume", is_flag=True, help="Ignore checkpoints in --out and start over.")
@connection_options()
@pass_state
def train_command(
    state: CliState,
    kind: str,
    config_file: str | None,
    no_progress: bool,
    no_resume: bool,
    base: str | None,
    **flags: Any,
) -> None:
    """Train a SPLADE, ColBERT or joint model; writes a model directory that `colsplade export` takes.

    With --label-free no labels are read: `colsplade train joint --label-free --from-index products --out m`
    trains on an index's own documents (--base may be a trained colsplade model: domain transfer).
    BM25 negatives are mined on the engine of --url, else on the one COLSPLADE_URL / colsplade.toml names,
    else on the local node. --config here is the training settings file (JSON / TOML), not colsplade.toml.
    """

    from colsplade.training import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in flags.items() if v is not None and v != ()}
    if "text_fields" in overrides:
        overrides["text_fields"] = list(overrides["text_fields"])
    if "pseudo_kinds" in overrides:
        overrides["pseudo_kinds"] = [k.strip() for k in overrides["pseudo_kinds"].split(",") if k.strip()]
    overrides.update(kind=kind)
    if base is not None:
        overrides["base"] = base
    if no_progress:
        overrides["progress"] = False
    if no_resume:
        overrides["resume"] = False
    # colsplade's own errors propagate to the command group, which prints one line (exit 2 for bad input)
    config = (
        TrainConfig.from_file(config_file, **overrides) if config_file else TrainConfig.from_dict(overrides)
    )
    # the connection flags (and colsplade.toml / the environment) reach the negatives miner as settings,
    # never as part of the training config that is saved with the model
    result = train(config, settings=state.settings())
    click.echo(
        json.dumps(
            {
                "model_dir": str(result.model_dir),
                "steps": result.steps,
                "wall_time_s": round(result.wall_time_s, 1),
                "dev": result.dev_metrics,
            },
            indent=2,
        )
    )
