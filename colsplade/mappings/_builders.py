"""Pure builders of the colsplade index fields for Elasticsearch and OpenSearch (plain dicts, no I/O).

The three fields sit next to whatever the index already holds:

``splade``
    ``rank_features`` (``{escaped token: impact}``); on Elasticsearch builds without the mapper-extras
    module, ``sparse_vector`` (8.11+), which stores the same Lucene feature encoding.
``colbert``
    ``nested`` objects ``{"v": vector}``, one per document token: ``dense_vector`` (Elasticsearch) or
    ``knn_vector`` (OpenSearch), element type float, byte or bit, with an HNSW graph for nested kNN or
    stored only (rerank reads them, no graph to build).
``colsplade``
    object with ``model_name``, ``model_version``, ``encoded_at``.

The index's ``_meta.colsplade`` records the :class:`FieldSpec` and the model, so readers and writers can
check they agree with the index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from colsplade.exceptions import InvalidInputError

__all__ = [
    "ENGINES",
    "FieldSpec",
    "MappingConflictError",
    "colsplade_properties",
    "fields_to_add",
    "index_body",
    "index_meta",
    "index_settings",
    "spec_from_meta",
]

ENGINES = ("elasticsearch", "opensearch")
ElementType = Literal["float", "byte", "bit"]
SCHEMA_VERSION = 1


class MappingConflictError(InvalidInputError):
    """An existing index already maps one of colsplade's fields differently."""


@dataclass(frozen=True)
class FieldSpec:
    """How the colsplade fields are mapped.

    Attributes:
        colbert_dim: ColBERT vector dimension (bits for ``bit``; must then be a multiple of 8).
        element_type: ``float`` (4 bytes/dim), ``byte`` (int8, 1 byte/dim) or ``bit`` (1 bit/dim).
        index_vectors: build an HNSW graph on the token vectors (needed for nested kNN candidates);
            ``False`` stores them for rerank only, which is smaller and faster to ingest.
        splade_type: ``rank_features`` or ``sparse_vector`` (Elasticsearch 8.11+ only).
        hnsw_m, hnsw_ef_construction: graph parameters when ``index_vectors``.
        quantization: Elasticsearch graph quantisation (``int8_hnsw``, ``int4_hnsw``, ``bbq_hnsw``) for
            float vectors; floats stay on disk for rerank. ``None`` keeps a plain ``hnsw`` graph.
        knn_engine: OpenSearch k-NN engine (``lucene`` needs no native library; ``faiss`` does).
        splade_field, colbert_field, vector_field, meta_field: field names.
        packed_field: a ``binary`` copy of the token vectors (see :mod:`colsplade.mappings._packing`) that
            the client-side rerank reads instead of the nested JSON numbers; ``None`` to leave it out.
    """

    colbert_dim: int = 128
    element_type: ElementType = "float"
    index_vectors: bool = True
    splade_type: Literal["rank_features", "sparse_vector"] = "rank_features"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    quantization: str | None = None
    knn_engine: str = "lucene"
    splade_field: str = "splade"
    colbert_field: str = "colbert"
    vector_field: str = "v"
    meta_field: str = "colsplade"
    packed_field: str | None = "colbert_packed"

    def __post_init__(self) -> None:
        if not isinstance(self.colbert_dim, int) or not 1 <= self.colbert_dim <= 4096:
            raise InvalidInputError(f"colbert_dim must be an integer in 1..4096, got {self.colbert_dim!r}")
        if self.element_type not in ("float", "byte", "bit"):
            raise InvalidInputError(f"element_type must be float, byte or bit, got {self.element_type!r}")
        if self.element_type == "bit" and self.colbert_dim % 8:
            raise InvalidInputError(
                f"bit vectors need a dimension that is a multiple of 8, got {self.colbert_dim}"
            )
        if self.splade_type not in ("rank_features", "sparse_vector"):
            raise InvalidInputError(
                f"splade_type must be rank_features or sparse_vector, got {self.splade_type!r}"
            )
        if self.quantization not in (None, "int8_hnsw", "int4_hnsw", "bbq_hnsw"):
            raise InvalidInputError(
                f"quantization must be one of int8_hnsw, int4_hnsw, bbq_hnsw, got {self.quantization!r}"
            )
        if self.quantization and self.element_type != "float":
            raise InvalidInputError("graph quantization applies to float vectors only")
        if self.knn_engine not in ("lucene", "faiss"):
            raise InvalidInputError(f"knn_engine must be lucene or faiss, got {self.knn_engine!r}")
        names = [self.splade_field, self.colbert_field, self.meta_field]
        if self.packed_field is not None:
            names.append(self.packed_field)
        if len(set(names)) != len(names) or any(not n or "." in n for n in [*names, self.vector_field]):
            raise InvalidInputError(f"field names must be distinct, non-empty and without dots: {names}")

    @property
    def vector_path(self) -> str:
        """Full path of the token vector field, e.g. ``colbert.v``."""
        return f"{self.colbert_field}.{self.vector_field}"


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")


def _es_vector(spec: FieldSpec) -> dict[str, Any]:
    field: dict[str, Any] = {
        "type": "dense_vector",
        "dims": spec.colbert_dim,
        "element_type": spec.element_type,
    }
    if not spec.index_vectors:
        field["index"] = False
        return field
    field["index"] = True
    # Token vectors are unit length, so dot product is cosine; bit vectors are compared by hamming
    # distance, which Elasticsearch exposes as l2_norm for element_type bit.
    field["similarity"] = "l2_norm" if spec.element_type == "bit" else "dot_product"
    index_type = spec.quantization or "hnsw"
    field["index_options"] = {
        "type": index_type,
        "m": spec.hnsw_m,
        "ef_construction": spec.hnsw_ef_construction,
    }
    return field


def _os_vector(spec: FieldSpec) -> dict[str, Any]:
    data_type = {"float": "float", "byte": "byte", "bit": "binary"}[spec.element_type]
    field: dict[str, Any] = {"type": "knn_vector", "dimension": spec.colbert_dim}
    if data_type != "float":
        field["data_type"] = data_type
    if not spec.index_vectors:
        return field
    # binary vectors exist only on the faiss engine, with hamming distance.
    engine = "faiss" if data_type == "binary" else spec.knn_engine
    field["method"] = {
        "name": "hnsw",
        "engine": engine,
        "space_type": "hamming" if data_type == "binary" else "innerproduct",
        "parameters": {"m": spec.hnsw_m, "ef_construction": spec.hnsw_ef_construction},
    }
    return field


def colsplade_properties(engine: str, spec: FieldSpec | None = None) -> dict[str, Any]:
    """The ``properties`` that colsplade adds to an index.

    >>> props = colsplade_properties("elasticsearch", FieldSpec(colbert_dim=4, index_vectors=False))
    >>> props["splade"], props["colbert"]["properties"]["v"]
    ({'type': 'rank_features'}, {'type': 'dense_vector', 'dims': 4, 'element_type': 'float', 'index': False})
    >>> colsplade_properties("opensearch", FieldSpec(colbert_dim=4))["colbert"]["properties"]["v"]["method"]["space_type"]
    'innerproduct'
    """
    _check_engine(engine)
    spec = spec or FieldSpec()
    if spec.splade_type == "sparse_vector" and engine != "elasticsearch":
        raise InvalidInputError(
            "sparse_vector is an Elasticsearch field type; use rank_features on OpenSearch"
        )
    vector = _es_vector(spec) if engine == "elasticsearch" else _os_vector(spec)
    properties: dict[str, Any] = {
        spec.splade_field: {"type": spec.splade_type},
        spec.colbert_field: {"type": "nested", "properties": {spec.vector_field: vector}},
        spec.meta_field: {
            "properties": {
                "model_name": {"type": "keyword"},
                "model_version": {"type": "keyword"},
                "encoded_at": {"type": "date"},
            }
        },
    }
    if spec.packed_field is not None:
        # Read from _source only: no doc values, not searchable.
        properties[spec.packed_field] = {"type": "binary"}
    return properties


def index_settings(
    engine: str,
    spec: FieldSpec | None = None,
    *,
    shards: int = 1,
    replicas: int = 0,
    nested_objects_limit: int | None = None,
) -> dict[str, Any]:
    """Index settings for a new colsplade index.

    ``nested_objects_limit`` raises ``index.mapping.nested_objects.limit`` (10,000 by default), which caps
    the tokens of one document.

    >>> index_settings("opensearch", FieldSpec())
    {'index': {'number_of_shards': 1, 'number_of_replicas': 0, 'knn': True}}
    """
    _check_engine(engine)
    spec = spec or FieldSpec()
    if shards < 1 or replicas < 0:
        raise InvalidInputError(f"shards must be >= 1 and replicas >= 0, got {shards} and {replicas}")
    index: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if engine == "opensearch":
        index["knn"] = bool(spec.index_vectors)
    if nested_objects_limit is not None:
        index["mapping.nested_objects.limit"] = int(nested_objects_limit)
    return {"index": index}


def index_meta(
    spec: FieldSpec, model_name: str | None = None, model_version: str | None = None
) -> dict[str, Any]:
    """The ``_meta.colsplade`` block recording the field layout and the model of an index.

    >>> index_meta(FieldSpec(colbert_dim=96), "minilm-splade", "3")["colsplade"]["colbert_dim"]
    96
    """
    block = {"schema": SCHEMA_VERSION, **dataclasses.asdict(spec)}
    if model_name is not None:
        block["model_name"] = model_name
    if model_version is not None:
        block["model_version"] = model_version
    return {"colsplade": block}


def spec_from_meta(meta: Mapping[str, Any] | None) -> FieldSpec | None:
    """Read back the :class:`FieldSpec` of an index from its ``_meta`` (None when it has none).

    >>> spec_from_meta(index_meta(FieldSpec(element_type="byte")))
    FieldSpec(colbert_dim=128, element_type='byte', index_vectors=True, splade_type='rank_features', hnsw_m=16, hnsw_ef_construction=100, quantization=None, knn_engine='lucene', splade_field='splade', colbert_field='colbert', vector_field='v', meta_field='colsplade', packed_field='colbert_packed')
    """
    block = (meta or {}).get("colsplade")
    if not isinstance(block, Mapping):
        return None
    known = {f.name for f in dataclasses.fields(FieldSpec)}
    return FieldSpec(**{k: v for k, v in block.items() if k in known})


def index_body(
    engine: str,
    spec: FieldSpec | None = None,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    shards: int = 1,
    replicas: int = 0,
    extra_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole create-index body: settings, and mappings with our fields (plus ``extra_properties``)."""
    spec = spec or FieldSpec()
    properties = dict(extra_properties or {})
    ours = colsplade_properties(engine, spec)
    clash = sorted(set(properties) & set(ours))
    if clash:
        raise MappingConflictError(f"extra_properties may not redefine colsplade's fields: {clash}")
    properties.update(ours)
    return {
        "settings": index_settings(engine, spec, shards=shards, replicas=replicas),
        "mappings": {"_meta": index_meta(spec, model_name, model_version), "properties": properties},
    }


def fields_to_add(
    engine: str, existing_properties: Mapping[str, Any] | None, spec: FieldSpec | None = None
) -> dict[str, Any]:
    """Which of colsplade's properties an existing index still needs; refuses conflicting ones.

    A field that exists with the same type and vector settings is left alone (adding fields is then a
    no-op, so it can be rerun); one that exists differently raises :class:`MappingConflictError`, because
    engines cannot change a field's type in place.

    >>> fields_to_add("elasticsearch", {"title": {"type": "text"}}, FieldSpec(colbert_dim=4)).keys()
    dict_keys(['splade', 'colbert', 'colsplade', 'colbert_packed'])
    >>> fields_to_add("elasticsearch", {"splade": {"type": "keyword"}})
    Traceback (most recent call last):
    ...
    colsplade.mappings._builders.MappingConflictError: field 'splade' already exists as {'type': 'keyword'}, colsplade needs {'type': 'rank_features'}; choose other field names (FieldSpec(splade_field=...)) or a new index
    """
    spec = spec or FieldSpec()
    existing = dict(existing_properties or {})
    wanted = colsplade_properties(engine, spec)
    to_add: dict[str, Any] = {}
    for name, definition in wanted.items():
        if name not in existing:
            to_add[name] = definition
            continue
        current = existing[name]
        if not _compatible(current, definition):
            raise MappingConflictError(
                f"field {name!r} already exists as {_brief(current)}, colsplade needs {_brief(definition)}; "
                f"choose other field names (FieldSpec({_spec_attr(spec, name)}=...)) or a new index"
            )
    return to_add


def _spec_attr(spec: FieldSpec, name: str) -> str:
    for attr in ("splade_field", "colbert_field", "meta_field", "packed_field"):
        if getattr(spec, attr) == name:
            return attr
    return "field"


def _brief(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": definition.get("type", "object")}


def _compatible(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if current.get("type", "object") != wanted.get("type", "object"):
        return False
    if "properties" in wanted:
        current_props = current.get("properties", {})
        for sub, sub_def in wanted["properties"].items():
            if sub not in current_props:
                # A missing sub-field can be added alongside; only nested vectors must match exactly.
                if wanted.get("type") == "nested":
                    return False
                continue
            if not _compatible(current_props[sub], sub_def):
                return False
    for key in ("dims", "dimension", "element_type", "data_type"):
        if key in wanted and key in current and current[key] != wanted[key]:
            return False
        if key in ("dims", "dimension") and key in wanted and key not in current:
            return False
    return True
