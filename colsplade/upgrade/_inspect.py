"""What an upgrade starts from: the index behind the name, its text fields and size, the refusals that
come before any model loads, and a privilege check that names the missing action before any work."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colsplade.engines import EngineClient, resolve_alias
from colsplade.exceptions import InvalidInputError
from colsplade.mappings import model_from_meta, spec_from_meta

__all__ = ["MIN_DOCUMENTS", "IndexFacts", "inspect_index", "text_fields_of"]

logger = logging.getLogger(__name__)

#: Fewer documents cannot hold out a gate and still train: the upgrade refuses such an index.
MIN_DOCUMENTS = 200
#: Field names taken for the title when the mapping has one of them as a text field (first match).
TITLE_NAMES = ("title", "name", "headline", "subject", "heading")


@dataclass
class IndexFacts:
    """The index an upgrade reads: ``alias`` is what the search reads, ``concrete`` the index behind it."""

    name: str
    alias: str
    concrete: str
    documents: int
    title_field: str | None
    text_fields: list[str]
    analyzers: dict[str, str] = field(default_factory=dict)
    colsplade: dict[str, Any] | None = None

    @property
    def all_text_fields(self) -> list[str]:
        return [f for f in (self.title_field, *self.text_fields) if f]


def text_fields_of(
    properties: Mapping[str, Any], skip: Sequence[str] = (), prefix: str = ""
) -> dict[str, str]:
    """``{dotted field: analyzer}`` of the searchable ``text`` fields of a mapping's ``properties``.

    >>> text_fields_of({"title": {"type": "text", "analyzer": "english"}, "n": {"type": "long"},
    ...                 "meta": {"properties": {"abstract": {"type": "text"}}}, "raw": {"type": "text", "index": False}})
    {'title': 'english', 'meta.abstract': 'standard'}
    """
    out: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if name in skip or not isinstance(spec, Mapping):
            continue
        if spec.get("type") in ("text", "match_only_text") and spec.get("index", True) is not False:
            out[path] = str(spec.get("analyzer", "standard"))
        elif "properties" in spec and spec.get("type", "object") == "object":
            out.update(text_fields_of(spec["properties"], (), f"{path}."))
    return out


def _model_identity(base: str | None) -> tuple[str, str] | None:
    """(name, version) of a colsplade model directory's ``colsplade.json``, read without loading the model;
    None for the packaged base or another checkpoint (its identity comes with training)."""
    from colsplade.encoders import read_model_config

    if not base or not (Path(base) / "colsplade.json").is_file():
        return None
    config = read_model_config(base)
    return str(config.name), str(config.version)


def inspect_index(
    client: EngineClient,
    name: str,
    *,
    alias: str | None = None,
    text_fields: Sequence[str] | None = None,
    title_field: str | None = None,
    min_documents: int = MIN_DOCUMENTS,
    base: str | None = None,
) -> IndexFacts:
    """Read the mapping and size of ``name`` (an alias or an index) and refuse what cannot be upgraded.

    Refused with :class:`InvalidInputError`, before any model loads: no such index; an alias on several
    indices; a concrete index without ``alias`` (the search must read an alias for the switch); fewer
    than ``min_documents`` documents; no searchable text field; an index already in colsplade's layout
    for the model ``base`` (a model directory) would train.
    """
    alias, concrete = resolve_alias(client, name, alias)
    mapping = client.get_mapping(concrete)
    meta = (mapping.get("_meta") or {}).get("colsplade")
    spec = spec_from_meta(mapping.get("_meta"))
    ours = [*spec.heavy_fields, spec.meta_field] if spec is not None else []
    found = text_fields_of(mapping.get("properties") or {}, skip=ours)
    if text_fields:
        missing = [f for f in text_fields if f not in found]
        if missing:
            raise InvalidInputError(
                f"{concrete!r} has no searchable text field {missing[0]!r}; its text fields: {sorted(found) or 'none'}"
            )
        chosen = [f for f in text_fields if f != title_field]
    else:
        chosen = list(found)
    if title_field is None:
        title_field = next((f for f in TITLE_NAMES if f in chosen), None)
    elif title_field not in found:
        raise InvalidInputError(f"{concrete!r} has no searchable text field {title_field!r} (--title-field)")
    chosen = [f for f in chosen if f != title_field]
    if not chosen and not title_field:
        raise InvalidInputError(
            f"{concrete!r} has no searchable text field (type text) to train on or search with BM25; "
            "name one with --text-field if it is mapped under another type"
        )
    documents = client.count(concrete)
    if documents < min_documents:
        raise InvalidInputError(
            f"{concrete!r} holds {documents} documents; an upgrade needs at least {min_documents} "
            "(some are held out to measure the gate, the rest train the model)"
        )
    identity = _model_identity(base)
    if identity and model_from_meta(mapping.get("_meta")) == identity:
        raise InvalidInputError(
            f"{concrete!r} is already in colsplade's layout for {identity[0]} v{identity[1]}: nothing to "
            "upgrade (give another --base, or --rollback to go back to the index before it)"
        )
    return IndexFacts(
        name=name,
        alias=alias,
        concrete=concrete,
        documents=documents,
        title_field=title_field,
        text_fields=chosen or [],
        analyzers={f: found[f] for f in ([title_field] if title_field else []) + chosen},
        colsplade=meta,
    )
