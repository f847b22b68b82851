"""``colsplade datasets download``: a thin shell over :func:`colsplade.evaluation.download_dataset`."""

from __future__ import annotations

import click

__all__ = ["datasets_group"]


@click.group("datasets")
def datasets_group() -> None:
    """Public BEIR datasets by name, for `colsplade eval --dataset NAME` and `colsplade train --data NAME`."""


@datasets_group.command("download")
@click.argument("name")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Cache root; the dataset goes to DIR/NAME [env COLSPLADE_DATASETS_DIR, else ~/.cache/colsplade/datasets].",
)
@click.option("--url", help="Download this archive (a mirror, your own BEIR-format zip) instead of BEIR's.")
@click.option("--sha256", help="Check the archive against this SHA-256 (default: BEIR's md5 for NAME).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def datasets_download(
    name: str, cache_dir: str | None, url: str | None, sha256: str | None, no_progress: bool
) -> None:
    """Download dataset NAME (e.g. scifact) once, verify and unpack it; print its directory."""
    from colsplade.evaluation import download_dataset

    options = {"sha256": sha256} if sha256 else {}
    if no_progress:
        options["progress"] = False
    click.echo(str(download_dataset(name, cache_dir=cache_dir, url=url, **options)))
