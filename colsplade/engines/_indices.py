"""Index management on a live cluster: create a colsplade index, or add our fields to an existing one."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from colsplade.engines._client import EngineClient
from colsplade.exceptions import EngineRefusedError, InvalidInputError
from colsplade.mappings import (
    FieldSpec,
    MappingConflictError,
    fields_to_add,
    index_body,
    index_meta,
    merge_meta,
    model_from_meta,
    spec_from_meta,
)

logger = logging.getLogger(__name__)

__all__ = ["create_index", "delete_index", "index_info", "spec_for"]


def spec_for(client: EngineClient, spec: FieldSpec | None = None) -> FieldSpec:
    """Adapt ``spec`` to what the node supports (``sparse_vector`` where ``rank_features`` is missing)."""
    spec = spec or FieldSpec()
    caps = client.capabilities()
    if spec.splade_type == "rank_features" and not caps.rank_features:
        splade_type = caps.splade_type
        logger.info(
            "%s %s has no rank_features (mapper-extras module); SPLADE impacts go to %s",
            caps.engine,
            caps.version,
            splade_type,
        )
        spec = dataclasses.replace(spec, splade_type=splade_type)
    if client.engine == "opensearch" and spec.nested_vectors and spec.index_vectors:
        if not caps.knn:
            raise InvalidInputError(
                "this OpenSearch node has no k-NN plugin, so token vectors cannot be indexed for kNN; "
                "install opensearch-knn or use FieldSpec(index_vectors=False)"
            )
        needs_native = spec.knn_engine == "faiss" or spec.element_type == "bit"
        if needs_native and not caps.knn_native:
            raise InvalidInputError(
                "this OpenSearch node's k-NN plugin (from Maven Central) has no native libraries, and the "
                f"{'binary (bit) vectors' if spec.element_type == 'bit' else 'faiss engine'} would need them "
                "(the node would crash); use the lucene engine with float or byte vectors, or "
                "FieldSpec(index_vectors=False) to store bit vectors for rerank only"
            )
    return spec


def create_index(
    client: EngineClient,
    index: str,
    spec: FieldSpec | None = None,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    shards: int = 1,
    replicas: int = 0,
    existing_ok: bool = False,
) -> dict[str, Any]:
    """Create ``index`` with the colsplade fields, or add them to it when it exists and ``existing_ok``.

    Adding keeps every existing document and field; it refuses (``MappingConflictError``) when one of our
    field names is taken by another type. Returns ``{"index", "created", "added_fields", "spec"}``.
    """
    spec = spec_for(client, spec)
    if not client.index_exists(index):
        body = index_body(
            client.engine,
            spec,
            model_name=model_name,
            model_version=model_version,
            shards=shards,
            replicas=replicas,
        )
        client.create_index(index, body)
        client.health(wait_for_status="yellow")
        return {
            "index": index,
            "created": True,
            "added_fields": sorted(body["mappings"]["properties"]),
            "spec": spec,
        }
    if not existing_ok:
        raise InvalidInputError(
            f"index {index!r} already exists; pass existing_ok=True (CLI: --existing-ok) to add colsplade's "
            "fields to it, keeping its documents and fields"
        )
    mapping = client.get_mapping(index)
    existing_spec = spec_from_meta(mapping.get("_meta"))
    if existing_spec is not None and existing_spec != spec:
        raise MappingConflictError(
            f"index {index!r} already holds colsplade fields with another layout ({existing_spec}); "
            "use a new index to change it"
        )
    to_add = fields_to_add(client.engine, mapping.get("properties"), spec)
    if to_add:
        if client.engine == "opensearch" and spec.nested_vectors and spec.index_vectors:
            settings = client.get_settings(index)
            if settings.get("index.knn") != "true":
                raise MappingConflictError(
                    f"index {index!r} was created without index.knn=true, which OpenSearch cannot switch on later; "
                    "add the fields with FieldSpec(index_vectors=False) (rerank only) or reindex into a new index"
                )
        meta = merge_meta(mapping.get("_meta"), index_meta(spec, model_name, model_version))
        try:
            client.put_mapping(index, {"_meta": meta, "properties": to_add})
        except EngineRefusedError as exc:
            raise MappingConflictError(
                f"the engine refused to add colsplade's fields to {index!r}: {exc.reason}"
            ) from exc
    return {"index": index, "created": False, "added_fields": sorted(to_add), "spec": spec}


def index_info(client: EngineClient, index: str) -> dict[str, Any]:
    """What an index holds: document count, store size, colsplade fields present, layout and model."""
    if not client.index_exists(index):
        return {"index": index, "exists": False}
    mapping = client.get_mapping(index)
    properties = mapping.get("properties", {})
    spec = spec_from_meta(mapping.get("_meta"))
    meta = (mapping.get("_meta") or {}).get("colsplade", {})
    model = model_from_meta(mapping.get("_meta"))
    stats = client.stats(index).get("_all", {}).get("primaries", {})
    names = spec or FieldSpec()
    present = {
        "splade": names.splade_field in properties,
        "colbert_codes": bool(names.codes_field) and names.codes_field in properties,
        "colbert": names.colbert_field in properties,
        "colsplade": names.meta_field in properties,
    }
    return {
        "index": index,
        "exists": True,
        "engine": client.engine,
        "documents": client.count(index),
        # Every nested token vector is a Lucene document of its own; this is the count shards are limited by.
        "lucene_documents": stats.get("docs", {}).get("count"),
        "store_bytes": stats.get("store", {}).get("size_in_bytes"),
        "colsplade_fields": present,
        "spec": dataclasses.asdict(spec) if spec else None,
        "model_name": model[0] if model else None,
        "model_version": model[1] if model else None,
        "codec": meta.get("codec"),
        "other_fields": sorted(set(properties) - {*names.heavy_fields, names.meta_field}),
    }


def delete_index(client: EngineClient, index: str, missing_ok: bool = False) -> bool:
    """Delete ``index``; returns False when it did not exist and ``missing_ok``."""
    try:
        client.delete_index(index)
    except EngineRefusedError as exc:
        if exc.status == 404 and missing_ok:
            return False
        raise
    return True
