"""``colsplade upgrade``: a thin shell over :func:`colsplade.upgrade.upgrade` (and its ``rollback`` /
``cleanup``). torch is imported only when training runs."""

from __future__ import annotations

import click

from colsplade.cli._options import CliState, connection_options, echo_json, pass_state

__all__ = ["upgrade_command"]


@click.command("upgrade")
@click.argument("index")
@click.option(
    "--alias", help="The alias the search reads, when INDEX is an index (INDEX itself is never modified)."
)
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    help="A text field to train and search on (repeat; default: every text field).",
)
@click.option(
    "--title-field", help="The title field (default: a text field named title, name, headline, subject)."
)
@click.option(
    "--base",
    help="The model to start from: a colsplade model directory or an imported public model (default: the packaged base).",
)
@click.option(
    "--budget-minutes",
    default=8.0,
    show_default=True,
    type=float,
    help="Training time; the steps follow from it.",
)
@click.option(
    "--steps", type=int, help="Training steps (overrides the budget's estimate; the budget still stops it)."
)
@click.option(
    "--holdout",
    default=300,
    show_default=True,
    type=int,
    help="Documents held out of training; their pseudo-queries are the gate.",
)
@click.option(
    "--distractors",
    default=2000,
    show_default=True,
    type=int,
    help="Other documents in the gate's scratch index.",
)
@click.option(
    "--qrels",
    type=click.Path(exists=True, dir_okay=False),
    help="Your labelled queries' judgements (BEIR TSV); measured, never trained on.",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False),
    help="Your labelled queries (BEIR JSONL: _id, text).",
)
@click.option(
    "--decide-by",
    type=click.Choice(["auto", "pseudo", "qrels"]),
    default="auto",
    show_default=True,
    help="Which queries decide (auto: yours when given).",
)
@click.option("--force", is_flag=True, help="Switch the alias even when the gate keeps BM25.")
@click.option("--rollback", is_flag=True, help="Point the alias back at the index before the upgrade.")
@click.option(
    "--cleanup", "clean", is_flag=True, help="Delete the indices of the upgrade the alias does not read."
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    help="State, model and report (default ./colsplade-upgrade/ALIAS).",
)
@click.option("--min-documents", default=200, show_default=True, type=int, help="Refuse smaller indices.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Training device: auto (a GPU when present), cpu, cuda.",
)
@click.option("--seed", default=13, show_default=True, type=int)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@connection_options()
@pass_state
def upgrade_command(
    state: CliState,
    index: str,
    text_fields: tuple[str, ...],
    clean: bool,
    rollback: bool,
    no_progress: bool,
    as_json: bool,
    **options: object,
) -> None:
    """Upgrade the BM25 index (or alias) INDEX to neural search, label-free, behind its alias.

    Trains on INDEX's own documents, re-encodes them into INDEX-vN, measures your current BM25 against
    every plan on held-out pseudo-queries (and your --qrels), and switches the alias only when the best
    plan beats BM25 with its 95 % interval above 0. Run it again to resume; --rollback undoes the switch.
    """
    from colsplade import upgrade as up

    settings = state.settings()
    if rollback or clean:
        if rollback:
            result = up.rollback(index, settings=settings)
            click.echo(f"alias {result['alias']} points back to {result['now']} (kept: {result['was']})")
        if clean:
            result = up.cleanup(index, settings=settings, work_dir=options.get("work_dir"))  # type: ignore[arg-type]
            click.echo(
                f"deleted {', '.join(result['deleted']) or 'nothing'}; the alias reads {', '.join(result['kept'])}"
            )
        return
    summary = up.upgrade(
        index,
        settings=settings,
        text_fields=list(text_fields) or None,
        progress=not no_progress,
        **options,  # type: ignore[arg-type]
    )
    if as_json:
        echo_json(summary)
        return
    verdict = "switched" if summary["switched"] else "not switched"
    click.echo(
        f"{summary['alias']}: {verdict}; default plan {summary['decision']['plan']}. "
        f"{summary['decision']['reason']}. Report: {summary.get('report', '')}"
    )
