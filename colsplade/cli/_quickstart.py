"""The main job of README: from nothing to a two-stage search that answers a query, with its explanation.

1. reach the configured engine, or start the local one (``colsplade engine up``);
2. take the user's model directory, or the quick default: a joint model trained from the packaged
   all-MiniLM-L6-v2 on the shipped SciFact sample (BM25 negatives from the same engine), exported to ONNX
   and cached, so only the first run trains;
3. ingest the sample corpus (skipped when the index already holds it, encoded by the same model);
4. answer a query: SPLADE on the inverted index, MaxSim rerank, and the explanation of the top hit.

:func:`quickstart` is the job (a plain dict report); ``colsplade quickstart`` (:data:`quickstart_command`)
is its thin shell. Both import the heavy parts only when they run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click

from colsplade.cli._options import CliState, connection_options, model_options, pass_state
from colsplade.config import Settings, load_settings

logger = logging.getLogger(__name__)

__all__ = [
    "QUICK_MODEL_VERSION",
    "quick_model_dir",
    "quickstart",
    "quickstart_command",
    "sample_dataset",
]

#: Bump when the quick recipe changes, so cached models are retrained.
QUICK_MODEL_VERSION = "1"


def sample_dataset() -> Path:
    """The SciFact sample shipped in the package (BEIR layout: corpus.jsonl, queries.jsonl, qrels/)."""
    return Path(str(resources.files("colsplade") / "data" / "scifact_sample"))


def quick_model_dir() -> Path:
    """Where the quick default model is cached (``COLSPLADE_CACHE`` or ``~/.cache/colsplade``)."""
    cache = Path(os.environ.get("COLSPLADE_CACHE", Path.home() / ".cache" / "colsplade"))
    return cache / "models" / f"quickstart-joint-v{QUICK_MODEL_VERSION}"


def _train_quick_model(out: Path, engine_url: str, say: Callable[[str], None], progress: bool) -> Path:
    try:
        from colsplade.onnx_export import export_model_dir
        from colsplade.training import TrainConfig, train
    except ImportError as exc:
        from colsplade.exceptions import MissingExtraError

        raise MissingExtraError(getattr(exc, "name", None) or "torch", "train") from exc
    import torch

    threads = max(1, min(os.cpu_count() or 1, 8))
    config = TrainConfig(
        kind="joint",
        out=str(out),
        data=str(sample_dataset()),
        base="minilm",
        negatives="bm25",
        engine_url=engine_url,
        n_negatives=1,
        epochs=1.0,
        batch_size=8,
        lr=5e-5,
        max_query_length=32,
        max_doc_length=256,
        train_max_doc_length=160,
        dim=128,
        query_top_k=64,
        doc_top_k=256,
        device="cuda" if torch.cuda.is_available() else "cpu",
        num_threads=threads,
        progress=progress,
    )
    say(
        "training the quick default model (joint SPLADE + ColBERT from all-MiniLM-L6-v2 on the shipped SciFact "
        "sample, one epoch of 38 steps: 76 s of training and 12 s of export measured on an idle 2-core "
        "CPU, several times that on a busy one; once: it is cached in "
        f"{out})"
    )
    started = time.monotonic()
    result = train(config)
    say(
        f"trained in {time.monotonic() - started:.0f} s ({result.steps} steps); exporting to ONNX (fp32 + int8)"
    )
    from colsplade.encoders import read_model_config, write_model_config

    model_config = read_model_config(out)
    model_config.name, model_config.version = "colsplade-quickstart-joint", QUICK_MODEL_VERSION
    write_model_config(out, model_config)
    # An int8 file that fails its ranking-parity check is not listed in colsplade.json; fp32 is used then.
    export_model_dir(out, variants=("int8",), raise_on_failure=False)
    (out / ".quickstart-complete").write_text(QUICK_MODEL_VERSION)
    return out


def quickstart(
    settings: Settings | None = None,
    *,
    engine: str = "elasticsearch",
    index: str = "colsplade-quickstart",
    model: str | os.PathLike[str] | None = None,
    query: str | None = None,
    variant: str = "auto",
    progress: bool = True,
    say: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Run the main job; returns a plain dict report (timings, index, hits, explanation).

    ``model``: a joint model directory; default the cached quick model (trained on first use, needs the
    ``[train]`` extra). ``query``: default the first test claim of the sample. ``say`` receives the progress
    lines (the CLI prints them).
    """
    from colsplade.encoders import load_encoder
    from colsplade.engines import connect, resolve_settings
    from colsplade.evaluation import ensure_dataset_index
    from colsplade.query import SearchClient

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    settings = settings or load_settings()
    if not settings.urls:
        settings = settings.replace(engine=settings.engine or engine)
        say(f"no engine configured: using the local {settings.engine} node (started if needed)")
    resolved = resolve_settings(settings, autostart=True)
    timings["engine_s"] = round(time.monotonic() - t0, 1)
    with connect(resolved) as client:
        caps = client.capabilities()
        say(f"{client.engine} {caps.version} at {client.url}")
        t = time.monotonic()
        if model is None:
            model_dir = quick_model_dir()
            if not (model_dir / ".quickstart-complete").is_file():
                _train_quick_model(model_dir, resolved.urls[0], say, progress)
            else:
                say(f"using the cached quick model {model_dir}")
        else:
            model_dir = Path(model)
        timings["model_s"] = round(time.monotonic() - t, 1)
        if variant == "auto":
            from colsplade.encoders import read_model_config

            variant = "int8" if "int8" in read_model_config(model_dir).onnx else "fp32"
        encoder = load_encoder(model_dir, variant=variant)

        t = time.monotonic()
        data = sample_dataset()
        say(f"ingesting the SciFact sample into {index!r} (skipped when it is already there)")
        ingest_summary = ensure_dataset_index(client, index, encoder, data, progress=progress, reencode=True)
        if ingest_summary.get("reused"):
            say(f"index {index!r} already holds the sample ({ingest_summary['documents']} documents)")
        timings["ingest_s"] = round(time.monotonic() - t, 1)

        if query is None:
            from colsplade.evaluation import load_queries

            query = next(iter(load_queries(data / "queries.jsonl").values()))
        search = SearchClient(index, encoder, client=client, text_fields=("title", "text"))
        t = time.monotonic()
        result = search.search(query, k=5, source=["title"], explain=True)
        timings["query_ms"] = round((time.monotonic() - t) * 1000, 1)
        timings["total_s"] = round(time.monotonic() - t0, 1)
        return {
            "engine": client.engine,
            "engine_version": caps.version,
            "url": client.url,
            "model": str(model_dir),
            "variant": variant,
            "index": index,
            "ingest": ingest_summary,
            "query": query,
            "rerank": result.rerank,
            "hits": result.hits,
            "timings": timings,
        }


@click.command("quickstart")
@click.option("--index", "index_name", default="colsplade-quickstart", show_default=True)
@model_options(
    pair=False,
    model_help="Joint model directory (default: the quick model, trained once and cached; needs [train]).",
    variant_help="ONNX variant: auto (int8 if exported), fp32, int8.",
)
@click.option("--query", help="Query to answer (default: a SciFact claim from the sample).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@connection_options(local_engine="elasticsearch")
@pass_state
def quickstart_command(
    state: CliState, index_name: str, model: str | None, variant: str, query: str | None, no_progress: bool
) -> None:
    """Run the main job: engine, model, ingest the SciFact sample, answer a query with its explanation."""
    settings = state.settings()
    report = quickstart(
        settings,
        engine=settings.engine or "elasticsearch",
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
