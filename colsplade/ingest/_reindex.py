"""Re-encode an existing index: into a new versioned index behind an alias, or in place.

The alias path is the zero-downtime upgrade: the search keeps reading the alias, which points to the old
index until the new one (same fields and analysis, plus colsplade's) holds every document; then one atomic
``_aliases`` request moves it. In place, only colsplade's fields are written into each document (partial
updates), so the application's fields are never rewritten and concurrent changes to them are kept.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from colsplade.engines import EngineClient, next_version, resolve_alias, seq_no_mark, spec_for, switch_alias
from colsplade.exceptions import EngineAuthorizationError, InvalidInputError
from colsplade.ingest._documents import FieldMapping
from colsplade.ingest._pipeline import ingest
from colsplade.ingest._summary import IngestSummary
from colsplade.ingest._target import (
    Layout,
    colbert_dim,
    doc_cap_of,
    open_encoder,
    prepare_index,
    sparse_query_of,
)
from colsplade.ingest.sources import IndexSource
from colsplade.mappings import FieldSpec, colsplade_properties, index_body, spec_from_meta

if TYPE_CHECKING:
    from colsplade.encoders import EncoderSource, TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["create_like", "reindex"]


def _heavy_fields(spec: FieldSpec) -> tuple[str, ...]:
    """Fields not worth reading back: they are rewritten anyway."""
    return spec.heavy_fields


def create_like(
    client: EngineClient,
    source_index: str,
    target: str,
    encoder: TextEncoder | EncoderSource,
    layout: Layout | None = None,
) -> FieldSpec:
    """Create ``target`` with the source's mappings and analysis, and colsplade's fields in ``layout``
    (default: the compact token store, whatever layout the source had: this is how indices written
    before it migrate)."""
    encoder = open_encoder(encoder)
    mapping = client.get_mapping(source_index)
    old_spec = spec_from_meta(mapping.get("_meta"))
    dim = colbert_dim(encoder) or 128
    spec = spec_for(client, (layout or Layout()).spec(dim, sparse_query_of(encoder), doc_cap_of(encoder)[1]))
    if old_spec is not None:
        # keep the team's field names; everything else comes from the new layout
        names = ("splade_field", "colbert_field", "vector_field", "meta_field", "splade_type")
        spec = FieldSpec(**{**spec.__dict__, **{n: getattr(old_spec, n) for n in names}})
        spec = spec_for(client, spec)
    ours = set(colsplade_properties(client.engine, spec)) | set(old_spec.heavy_fields if old_spec else ())
    properties = {k: v for k, v in (mapping.get("properties") or {}).items() if k not in ours}
    body = index_body(
        client.engine,
        spec,
        model_name=str(encoder.config.name),
        model_version=str(encoder.config.version),
        extra_properties=properties,
    )
    settings = client.get_settings(source_index)
    analysis = {
        k[len("index.analysis.") :]: v for k, v in settings.items() if k.startswith("index.analysis.")
    }
    if analysis:
        # Flat keys are accepted next to the nested ones; the source's analyzers must exist before its
        # text fields that name them.
        body["settings"]["index"].update({f"analysis.{k}": v for k, v in analysis.items()})
    for key in ("dynamic", "dynamic_templates"):
        if key in mapping:
            body["mappings"][key] = mapping[key]
    user_excludes = [
        f for f in (mapping.get("_source") or {}).get("excludes", []) if f not in ours
    ]  # the team's own exclusions stay; the old layout's vector copies go
    if user_excludes:
        excludes = body["mappings"].setdefault("_source", {}).setdefault("excludes", [])
        excludes.extend(user_excludes)
    client.create_index(target, body)
    client.health(wait_for_status="yellow")
    return spec


def reindex(
    client: EngineClient,
    source_index: str,
    encoder: TextEncoder | EncoderSource,
    *,
    alias: str | None = None,
    in_place: bool = False,
    target: str | None = None,
    fields: FieldMapping | None = None,
    reencode: bool = False,
    layout: Layout | None = None,
    allow_rejects: bool = False,
    switch: bool = True,
    catch_up: bool = True,
    **options: Any,
) -> IngestSummary:
    """Encode the documents of ``source_index`` (an index or an alias).

    Alias mode (default): the documents, with all their fields, are written into ``target`` (default
    ``<alias>-v<n>``, the next free version) created with the source's mappings and analysis plus
    colsplade's fields; when every document is in, ``alias`` is switched to it atomically (only when
    nothing was dead-lettered, unless ``allow_rejects``). ``alias`` defaults to ``source_index`` when that
    is an alias; a concrete index needs an explicit alias name.

    ``layout`` is the token store of the new index (default: the compact store, so an index written
    with the old nested layout migrates by re-encoding behind its alias).

    In place (``in_place=True``): colsplade's fields are added to each document by partial update;
    documents already encoded by this model are skipped, so a rerun resumes where it stopped. The
    index keeps its layout; opt-in nested vectors are rebuilt from the same encoding as the codes.

    Writes that reach the source while it is re-encoded (alias mode): the first pass reads one point in
    time; with ``catch_up`` (default), passes over the documents whose ``_seq_no`` passed the marks taken
    before the previous pass follow, until one finds nothing new (at most :data:`CATCH_UP_PASSES`), and
    only then is the alias switched. ``summary.caught_up`` counts the documents those passes re-encoded.
    Deletions made during the re-encode are not carried over (a deleted document has no ``_seq_no`` left
    to find); writes after the switch go wherever the team writes (through the alias: the new index,
    without colsplade's fields until ``colsplade ingest`` or an in-place reindex encodes them).
    ``switch=False`` fills the target and leaves the alias alone (``colsplade upgrade`` switches after its
    gate).

    ``options`` go to :func:`colsplade.ingest.ingest` (``checkpoint``, ``dead_letter``, ``progress``, ...).
    """
    encoder = open_encoder(encoder)
    fields = fields or FieldMapping()
    if in_place:
        spec, _ = prepare_index(client, source_index, encoder, reencode=reencode, layout=layout)
        name, version = str(encoder.config.name), str(encoder.config.version)
        done = {
            "bool": {
                "filter": [
                    {"term": {f"{spec.meta_field}.model_name": name}},
                    {"term": {f"{spec.meta_field}.model_version": version}},
                ]
            }
        }
        source = IndexSource(
            client,
            source_index,
            query={"bool": {"must_not": [done]}},
            source_excludes=_heavy_fields(spec),
        )
        summary = ingest(
            source, client, source_index, encoder, fields=fields, op="update", reencode=True, **options
        )
        return summary  # ingest refreshed: searches (and a rerun's model filter) see the new fields

    alias, concrete = resolve_alias(client, source_index, alias)
    target = target or next_version(client, alias)
    if target == concrete:
        raise InvalidInputError("the target index must differ from the source index")
    if not client.index_exists(target):
        create_like(client, concrete, target, encoder, layout)
        logger.info("created %s from the mappings of %s", target, concrete)
    prepare_index(client, target, encoder, reencode=reencode, layout=layout)
    spec = spec_from_meta(client.get_mapping(target).get("_meta")) or FieldSpec()
    old_spec = spec_from_meta(client.get_mapping(concrete).get("_meta"))
    # neither layout's vectors, codes or impacts are read back: they are rewritten
    excludes = tuple(dict.fromkeys([*_heavy_fields(spec), *(old_spec.heavy_fields if old_spec else ())]))
    marks = seq_no_mark(client, concrete) if catch_up else None
    source = IndexSource(client, concrete, source_excludes=excludes)
    summary = ingest(source, client, target, encoder, fields=fields, prepare=False, **options)
    if marks is not None:
        _catch_up(client, concrete, target, encoder, fields, excludes, marks, summary, options)
    summary.alias = alias
    if summary.dead_lettered and not allow_rejects:
        logger.warning(
            "%d document(s) were dead-lettered; alias %s still points to %s (pass allow_rejects to switch)",
            summary.dead_lettered,
            alias,
            concrete,
        )
        return summary
    if not switch:
        return summary
    switch_alias(client, alias, target)  # ingest refreshed the target
    summary.alias_switched = True
    return summary


#: Seconds a catch-up pass waits for the source's own refresh when it may not refresh it (the engines'
#: default refresh interval is 1 s).
_REFRESH_WAIT_S = 1.5
#: The most catch-up passes over documents written during a re-encode before the alias moves anyway.
CATCH_UP_PASSES = 5


def _catch_up(
    client: EngineClient,
    concrete: str,
    target: str,
    encoder: TextEncoder,
    fields: FieldMapping,
    excludes: tuple[str, ...],
    mark: int,
    summary: IngestSummary,
    options: dict[str, Any],
) -> None:
    """Re-encode what was written to ``concrete`` since ``mark``, pass after pass, until a pass finds none."""
    options = {k: v for k, v in options.items() if k != "checkpoint"}  # each pass reads a fresh query
    options.setdefault("progress", False)
    may_refresh = True
    for n in range(1, CATCH_UP_PASSES + 1):
        if may_refresh:
            try:
                client.refresh(concrete)  # makes the latest writes searchable now
            except EngineAuthorizationError:
                # read-only on the source (an ingest role's source pattern): wait out a default refresh
                may_refresh = False
        if not may_refresh:
            time.sleep(_REFRESH_WAIT_S)
        next_mark = seq_no_mark(client, concrete)
        query = {"range": {"_seq_no": {"gt": mark}}}
        if next_mark <= mark and not client.count(concrete, query):
            return
        source = IndexSource(client, concrete, query=query, source_excludes=excludes)
        extra = ingest(source, client, target, encoder, fields=fields, prepare=False, **options)
        summary.caught_up += extra.indexed
        summary.read += extra.read
        summary.indexed += extra.indexed
        summary.dead_lettered += extra.dead_lettered
        logger.info("catch-up pass %d: %d document(s) written during the re-encode", n, extra.indexed)
        mark = next_mark
        if not extra.read:
            return
    logger.warning("documents kept arriving through %d catch-up passes; switching anyway", CATCH_UP_PASSES)
