"""``colsplade search``: the query client on the command line (a thin shell over
:meth:`colsplade.query.SearchClient.search`)."""

from __future__ import annotations

import json

import click

from colsplade._types import HYBRID_MODES, RERANK_MODES
from colsplade.cli._options import (
    CliState,
    connection_options,
    model_options,
    model_or_default,
    pass_state,
)

__all__ = ["search_command"]


@click.command("search")
@click.argument("query")
@click.option("--index", "index_name", envvar="COLSPLADE_INDEX", default="colsplade", show_default=True)
@model_options(variant="auto")
@click.option("-k", "--k", "k", type=int, default=10, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--window", type=int, default=100, show_default=True, help="Candidates reranked by MaxSim.")
@click.option(
    "--plan",
    "plan_name",
    default=None,
    help="Named query plan (default: the client's default plan, bm25+colbert(fused); "
    "see the README's query plans). Flags given below win over the plan's.",
)
@click.option(
    "--rerank",
    type=click.Choice(RERANK_MODES),
    default=None,
    help="Rerank path (default: the plan's, auto).",
)
@click.option(
    "--max-query-length",
    type=int,
    default=None,
    help="Read queries up to this many tokens (default: the model's max_query_length; at most the "
    "backbone's position limit).",
)
@click.option(
    "--first-stage-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="w in score = MaxSim + w * first-stage score (0: MaxSim alone).",
)
@click.option(
    "--fusion",
    type=click.Choice(["zscore", "rrf", "none"]),
    default=None,
    help="Fuse MaxSim with the first stage's scores (default: the plan's; the default plan: zscore).",
)
@click.option(
    "--fusion-weight",
    type=float,
    default=None,
    help="Each first-stage source's weight against MaxSim's 1 (default 0.5 for zscore, 1 for rrf).",
)
@click.option("--filter", "filters", multiple=True, help="Query-DSL filter clause as JSON (repeatable).")
@click.option("--knn-k", type=int, help="Add nested-kNN token candidates (k per query token).")
@click.option(
    "--bm25-field", "bm25_fields", multiple=True, help="Fuse BM25 candidates from this field (repeatable)."
)
@click.option(
    "--hybrid",
    type=click.Choice(HYBRID_MODES),
    default=None,
    help="BM25 fusion (default: the plan's, rrf).",
)
@click.option("--source", "source_fields", multiple=True, help="Source field to show (repeatable).")
@click.option("--explain", is_flag=True, help="Show SPLADE term shares and ColBERT token matches.")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail when a shard did not answer (default: show the hits, flagged partial).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@connection_options()
@pass_state
def search_command(
    state: CliState,
    query: str,
    index_name: str,
    model: str | None,
    splade_model: str | None,
    colbert_model: str | None,
    variant: str,
    k: int,
    offset: int,
    window: int,
    plan_name: str | None,
    rerank: str | None,
    max_query_length: int | None,
    first_stage_weight: float,
    fusion: str | None,
    fusion_weight: float | None,
    filters: tuple[str, ...],
    knn_k: int | None,
    bm25_fields: tuple[str, ...],
    hybrid: str | None,
    source_fields: tuple[str, ...],
    explain: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """Search INDEX for QUERY: SPLADE retrieval, ColBERT MaxSim rerank."""
    import dataclasses

    from colsplade.engines import connect_default
    from colsplade.exceptions import InvalidInputError
    from colsplade.query import SearchClient

    try:
        parsed_filters = [json.loads(f) for f in filters]
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--filter must be a JSON query clause: {exc}") from None
    settings = state.settings()
    with connect_default(settings) as client:
        search = SearchClient(
            index_name,
            model_or_default(settings, model, splade_model, colbert_model),
            splade_model=splade_model,
            colbert_model=colbert_model,
            client=client,
            window=window,
            first_stage_weight=first_stage_weight,
            encoder_options={"variant": variant},
            max_query_length=max_query_length,
        )
        result = search.search(
            query,
            k=k,
            offset=offset,
            rerank=rerank,
            filters=parsed_filters,
            knn_k=knn_k,
            bm25_fields=list(bm25_fields) or None,
            hybrid=hybrid,
            source=list(source_fields) or None,
            explain=explain,
            strict=strict,
            plan=plan_name,
            fusion=fusion,
            fusion_weight=fusion_weight,
        )
    if as_json:
        click.echo(
            json.dumps({**dataclasses.asdict(result), "partial": result.partial}, indent=2, default=str)
        )
        return
    timings = ", ".join(f"{name} {ms:.1f} ms" for name, ms in result.timings_ms.items())
    click.echo(
        f"{len(result.hits)} hits, plan={result.plan or 'custom'}, rerank={result.rerank}, "
        f"window={result.window}, {result.round_trips} round trip{'s' if result.round_trips != 1 else ''} "
        f"({timings})"
    )
    if result.reason:
        click.echo(f"  ({result.reason})")
    if result.partial and result.shards is not None:
        why = "; ".join(result.shards.failures[:3]) or "no reason given"
        click.echo(
            f"  PARTIAL: answered by {result.shards.successful} of {result.shards.total} shards ({why}); "
            "hits may be missing"
        )
    for rank, hit in enumerate(result.hits, start=offset + 1):
        stages = " ".join(f"{name}={score:.3f}" for name, score in hit.stage_scores.items())
        click.echo(f"{rank:>3}. {hit.id}  {hit.score:.4f}  [{stages}]")
        if hit.source:
            click.echo(f"     {json.dumps(hit.source, ensure_ascii=False)[:200]}")
        if hit.explanation:
            ex = hit.explanation
            terms = ", ".join(f"{t.term} {t.query_weight:.2f}x{t.doc_weight:.2f}" for t in ex.terms[:8])
            click.echo(f"     SPLADE {ex.sparse_score:.3f}: {terms}")
            pairs = ", ".join(
                f"{t.query_token}->{t.doc_token or t.doc_position} {t.contribution:.2f}"
                for t in ex.tokens[:10]
            )
            click.echo(f"     MaxSim {ex.maxsim_score or 0:.3f}: {pairs}")
