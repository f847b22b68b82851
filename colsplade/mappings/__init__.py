"""Index mappings for Elasticsearch and OpenSearch, and colsplade's security roles: pure builders returning
plain dicts.

The default bodies are also shipped as JSON under ``colsplade/mappings/templates/`` for teams that apply
mappings with their own tooling (``load_template("elasticsearch")``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from colsplade.mappings._builders import (
    ENGINES,
    FieldSpec,
    MappingConflictError,
    codec_from_meta,
    colsplade_properties,
    fields_to_add,
    index_body,
    index_meta,
    index_settings,
    merge_meta,
    model_from_meta,
    spec_from_meta,
    text_analyzers,
    text_properties,
    without_vector_source_excludes,
)
from colsplade.mappings._escape import escape_feature, escape_impacts, unescape_feature, unescape_impacts
from colsplade.mappings._packing import pack_token_vectors, unpack_token_vectors
from colsplade.mappings._roles import ROLE_NAMES, ingest_role, role_body, search_role
from colsplade.mappings._tokens import TokenReader, TokenWriter, stored_vectors

__all__ = [
    "ENGINES",
    "ROLE_NAMES",
    "FieldSpec",
    "MappingConflictError",
    "TokenReader",
    "TokenWriter",
    "codec_from_meta",
    "colsplade_properties",
    "escape_feature",
    "escape_impacts",
    "fields_to_add",
    "index_body",
    "index_meta",
    "index_settings",
    "ingest_role",
    "load_template",
    "merge_meta",
    "model_from_meta",
    "pack_token_vectors",
    "role_body",
    "search_role",
    "spec_from_meta",
    "stored_vectors",
    "text_analyzers",
    "text_properties",
    "unescape_feature",
    "unescape_impacts",
    "unpack_token_vectors",
    "without_vector_source_excludes",
]


def load_template(engine: str) -> dict[str, Any]:
    """The packaged default create-index body for ``engine`` (equal to ``index_body(engine)``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    text = resources.files("colsplade.mappings").joinpath("templates", f"{engine}.json").read_text()
    body: dict[str, Any] = json.loads(text)
    return body
