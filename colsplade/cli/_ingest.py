"""``colsplade ingest``: a thin shell over :func:`colsplade.ingest.ingest` and :func:`colsplade.ingest.reindex`.

A new ingest option is one ``click.option`` below, one parameter of :func:`ingest_command` and, when both
functions take it, one keyword of ``_ingest_options`` (the keyword arguments of ``ingest`` and ``reindex``).
"""

from __future__ import annotations

import json
import sys

import click

from colsplade.cli._options import CliState, connection_options, layout_options, model_options, pass_state

__all__ = ["ingest_command"]


def _kafka_options(f):
    """The options of a ``kafka://`` SOURCE."""
    for option in reversed(
        [
            click.option("--group", help="kafka:// SOURCE: the consumer group (or ?group=NAME in the URL)."),
            click.option(
                "--until-caught-up",
                is_flag=True,
                help="kafka:// SOURCE: stop once the group has read every partition to its end (default: run until SIGTERM).",
            ),
            click.option(
                "--dlq-topic", help="kafka:// SOURCE: also send dead letters to this topic (transactionally)."
            ),
            click.option(
                "--value-format",
                type=click.Choice(["json", "jsonl"]),
                default="json",
                show_default=True,
                help="kafka:// SOURCE: one JSON object per message, or one per line of a message.",
            ),
            click.option(
                "-X",
                "--kafka-config",
                "kafka_config",
                multiple=True,
                metavar="KEY=VALUE",
                help="kafka:// SOURCE: a librdkafka property (security.protocol, sasl.*, session.timeout.ms ...).",
            ),
        ]
    ):
        f = option(f)
    return f


def _kafka_source(
    source: str, id_field: str | None, group, until_caught_up, dlq_topic, value_format, kafka_config
):
    from colsplade.exceptions import InvalidInputError
    from colsplade.ingest import KafkaSource

    config = {}
    for item in kafka_config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"-X takes KEY=VALUE, not {item!r}")
        config[key.strip()] = value.strip()
    return KafkaSource.from_url(
        source,
        group=group,
        until_caught_up=until_caught_up,
        dlq_topic=dlq_topic,
        value_format=value_format,
        config=config,
        key_as_id=id_field is None,
    )


@click.command("ingest")
@click.argument("source")
@click.option(
    "--index", "index_name", help="Target index [env COLSPLADE_INDEX]; the alias with --from-index."
)
@model_options(variant="int8")
@click.option("--id-field", help="Field holding the id (default: _id or id, else a content hash).")
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    help="Text field(s) to encode, in order (default: title, text).",
)
@click.option(
    "--copy-field", "copy_fields", multiple=True, help="Field(s) to store as they are (default: all)."
)
@click.option("--no-copy", is_flag=True, help="Store no source field besides colsplade's.")
@click.option(
    "--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint file: resume where a run stopped."
)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False),
    help="JSONL file for rejected documents [default: <index>.dead-letter.jsonl].",
)
@click.option("--reencode", is_flag=True, help="Allow an index encoded with another model version.")
@click.option(
    "--long-docs",
    type=click.Choice(["truncate", "chunk"]),
    default="truncate",
    show_default=True,
    help="Long documents: truncate to the model's length, or split into passages with a parent id.",
)
@layout_options(prefix="new index: ")
@click.option("--shards", type=int, default=1, show_default=True, help="new index: primary shards.")
@click.option("--replicas", type=int, default=0, show_default=True, help="new index: replicas of each shard.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Texts per encoder batch.")
@click.option(
    "--bulk-docs", type=int, default=200, show_default=True, help="Documents per bulk request at most."
)
@click.option(
    "--bulk-mb", type=float, default=16.0, show_default=True, help="Megabytes per bulk request at most."
)
@click.option("--max-retries", type=int, default=10, show_default=True, help="Retries of transient failures.")
@click.option(
    "--from-index",
    is_flag=True,
    help="SOURCE is an index or alias of the cluster: re-encode it into a new version behind the alias.",
)
@click.option("--alias", help="With --from-index: the alias the search reads (default: SOURCE if an alias).")
@click.option(
    "--target",
    help="With --from-index: the new index (default <alias>-v<n>); name a partial one to resume it.",
)
@click.option(
    "--in-place", is_flag=True, help="With --from-index: add colsplade's fields to SOURCE's documents."
)
@_kafka_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@connection_options()
@pass_state
def ingest_command(
    state: CliState,
    source,
    index_name,
    model,
    splade_model,
    colbert_model,
    variant,
    id_field,
    text_fields,
    copy_fields,
    no_copy,
    checkpoint,
    dead_letter,
    reencode,
    long_docs,
    layout,
    shards,
    replicas,
    batch_size,
    bulk_docs,
    bulk_mb,
    max_retries,
    from_index,
    alias,
    target,
    in_place,
    group,
    until_caught_up,
    dlq_topic,
    value_format,
    kafka_config,
    no_progress,
    as_json,
):
    """Encode the documents of SOURCE and write them into an index.

    SOURCE: JSONL / JSON file(s) or a glob (quote it), '-' for stdin, with --from-index an index or alias,
    or kafka://HOST:PORT/TOPIC with --group NAME (offsets committed once the engine acknowledged; SIGTERM
    commits and exits). Exit status 0 when every document was indexed, 3 when some were dead-lettered; `colsplade --help`
    lists the others.
    """
    from colsplade.engines import connect_default

    settings = state.settings()
    encoder = _encoder(settings, model, splade_model, colbert_model, variant, batch_size)
    options = _ingest_options(
        id_field=id_field,
        text_fields=text_fields,
        copy_fields=copy_fields,
        no_copy=no_copy,
        checkpoint=checkpoint,
        reencode=reencode,
        long_docs=long_docs,
        layout=layout,
        shards=shards,
        replicas=replicas,
        batch_size=batch_size,
        bulk_docs=bulk_docs,
        bulk_mb=bulk_mb,
        max_retries=max_retries,
        no_progress=no_progress,
    )
    with connect_default(settings, autostart=False) as client:
        if from_index:
            summary = _reindex(
                client, source, encoder, options, dead_letter, index_name, alias, target, in_place
            )
        else:
            index_name = index_name or settings.index
            options["dead_letter"] = dead_letter or f"{index_name}.dead-letter.jsonl"
            if source.startswith("kafka://"):
                stream = _kafka_source(
                    source, id_field, group, until_caught_up, dlq_topic, value_format, kafka_config
                )
                summary = _run_stream(stream, client, index_name, encoder, options)
            else:
                from colsplade.ingest import ingest

                summary = ingest(source, client, index_name, encoder, **options)
    _echo_summary(summary, as_json)
    sys.exit(summary.exit_code)


def _encoder(settings, model, splade_model, colbert_model, variant, batch_size):
    """The encoder of ``--model`` (or COLSPLADE_MODEL), or of a ``--splade-model`` / ``--colbert-model``
    pair (one joint encoder); a single model of any kind may be ingested."""
    from colsplade.encoders import as_encoder
    from colsplade.exceptions import InvalidInputError

    pair = splade_model or colbert_model
    model_dir = model or (None if pair else settings.model)
    if not model_dir and not pair:
        raise InvalidInputError(
            "no model: pass --model DIR (or --splade-model + --colbert-model) or set COLSPLADE_MODEL"
        )
    return as_encoder(
        model_dir,
        splade_model=splade_model,
        colbert_model=colbert_model,
        variant=variant,
        batch_size=batch_size,
    )


def _ingest_options(
    *,
    id_field,
    text_fields,
    copy_fields,
    no_copy,
    checkpoint,
    reencode,
    long_docs,
    layout,
    shards,
    replicas,
    batch_size,
    bulk_docs,
    bulk_mb,
    max_retries,
    no_progress,
) -> dict:
    """The keyword arguments that :func:`colsplade.ingest.ingest` and :func:`colsplade.ingest.reindex`
    both take, from the command's options (``dead_letter`` is added per target)."""
    from colsplade.ingest import Batching, FieldMapping, Layout, Passages, RetryPolicy

    fields = FieldMapping(
        id_field=id_field,
        text_fields=tuple(text_fields) or ("title", "text"),
        copy_fields=() if no_copy else (tuple(copy_fields) or None),
    )
    return dict(
        fields=fields,
        checkpoint=checkpoint,
        reencode=reencode,
        passages=Passages(long_docs=long_docs),
        batching=Batching(
            encode_batch_size=batch_size, bulk_docs=bulk_docs, bulk_bytes=int(bulk_mb * 1024 * 1024)
        ),
        layout=Layout(**layout, shards=shards, replicas=replicas),
        retry=RetryPolicy(max_retries=max_retries),
        progress=False if no_progress else None,
    )


def _reindex(client, source, encoder, options, dead_letter, index_name, alias, target, in_place):
    """``--from-index``: re-encode the index or alias SOURCE into a new version behind the alias."""
    from colsplade.ingest import reindex

    target_name = alias or index_name or source
    options["dead_letter"] = dead_letter or f"{target_name}.dead-letter.jsonl"
    return reindex(
        client,
        source,
        encoder,
        alias=alias or index_name,
        in_place=in_place,
        target=target,
        **options,
    )


def _run_stream(stream, client, index_name, encoder, options):
    """Ingest a stream; SIGTERM stops reading, and the run drains, commits and returns."""
    import signal

    from colsplade.ingest import ingest

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stream.stop())
    try:
        return ingest(stream, client, index_name, encoder, **options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _echo_summary(summary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        click.echo(str(summary))
        for reason, count in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>8}  {reason}")
