"""Pure builders of the colsplade index fields for Elasticsearch and OpenSearch (plain dicts, no I/O).

The three fields sit next to whatever the index already holds:

``splade``
    ``rank_features`` (``{escaped token: impact}``); on Elasticsearch builds without the mapper-extras
    module, ``sparse_vector`` (8.11+), which stores the same Lucene feature encoding.
``colbert_codes`` (the default token store)
    ``binary``: one compact blob per document, the ColBERT token vectors as centroid ids plus 1-bit
    residuals (:class:`colsplade.scoring.ResidualCodec`, ~18 bytes a token at dim 128). The client
    rerank reads it back; the codec's hash is recorded in ``_meta.colsplade.codec``.
``colbert`` (opt-in: ``FieldSpec(nested_vectors=True)``)
    ``nested`` objects ``{"v": vector}``, one per document token: ``dense_vector`` (Elasticsearch) or
    ``knn_vector`` (OpenSearch), element type float, byte or bit, with an HNSW graph for nested kNN or
    stored only, for token-ANN candidates and the in-engine rerank. They are decoded from the codes (so
    the engine and the client score the same vectors) and kept out of ``_source``.
``colsplade``
    object with ``model_name``, ``model_version``, ``encoded_at``.

The index's ``_meta.colsplade`` records the :class:`FieldSpec` and the model, so readers and writers can
check they agree with the index. Indices written before the compact store (schema 1: nested vectors
plus a ``colbert_packed`` copy in ``_source``) are still read; ``colsplade ingest --from-index`` moves
them to the compact layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from colsplade._types import ENGINE_NAMES, EngineName
from colsplade.exceptions import InvalidInputError, MappingConflictError

__all__ = [
    "ENGINES",
    "FieldSpec",
    "MappingConflictError",
    "codec_from_meta",
    "colsplade_properties",
    "fields_to_add",
    "index_body",
    "index_meta",
    "index_settings",
    "model_from_meta",
    "spec_from_meta",
]

ENGINES: tuple[EngineName, ...] = ENGINE_NAMES
ElementType = Literal["float", "byte", "bit"]
CodesStorage = Literal["source", "stored", "doc_values"]
SCHEMA_VERSION = 2


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
        codes_field: the compact token store, a ``binary`` field holding one blob per document; ``None``
            only on indices written before it existed.
        codes_storage: where the engine keeps the blob for the rerank's fetch: ``source`` (in
            ``_source``, the default: smallest on disk and kept by partial updates and reindex),
            ``stored`` (a stored field, fetched by ``stored_fields``) or ``doc_values`` (fetched by
            ``docvalue_fields``); both of the latter keep it out of ``_source``.
        nested_vectors: also write the nested ``colbert`` vector field (opt-in), for nested-kNN
            candidates and the in-engine rerank; left out of ``_source``.
        store_compression: the ``index.codec`` of a new index: ``default`` (LZ4) or ``best_compression``
            (DEFLATE: the base64 blobs, text and impacts ~25 % smaller on disk, but every hit the engine
            returns, even an ``_id``, decompresses a larger block: measured +30 ms for a window of 100 on
            Elasticsearch). Applies to indices colsplade creates only (an existing index keeps its codec).
        packed_field: the schema-1 ``binary`` copy of the exact token vectors in ``_source``; read on old
            indices, never written by default.
        sparse_query: how the queries of the model that filled the index make their sparse side:
            ``encoder`` (the SPLADE head) or ``inference-free`` (a per-term weight table); a query of the
            other mode is refused (indices written before it was recorded read as ``encoder``).
        doc_top_k: the most SPLADE terms a document of the index keeps (the model's ``splade.doc_top_k``,
            or the cap it was opened with); a run with another cap is refused: documents capped
            differently are not scored alike (a lower cap drops terms a query may match). None: not
            recorded (an index written before it was, a ColBERT-only model, a model without a cap, or
            an encoder of the caller's own that does not say).
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
    codes_field: str | None = "colbert_codes"
    codes_storage: CodesStorage = "source"
    nested_vectors: bool = False
    store_compression: Literal["default", "best_compression"] = "default"
    packed_field: str | None = None
    sparse_query: Literal["encoder", "inference-free"] = "encoder"
    doc_top_k: int | None = None

    def __post_init__(self) -> None:
        if self.doc_top_k is not None and (
            isinstance(self.doc_top_k, bool) or not isinstance(self.doc_top_k, int) or self.doc_top_k < 1
        ):
            raise InvalidInputError(f"doc_top_k must be a positive integer or None, got {self.doc_top_k!r}")
        if self.sparse_query not in ("encoder", "inference-free"):
            raise InvalidInputError(
                f"sparse_query must be 'encoder' or 'inference-free', got {self.sparse_query!r}"
            )
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
        if self.codes_storage not in ("source", "stored", "doc_values"):
            raise InvalidInputError(
                f"codes_storage must be source, stored or doc_values, got {self.codes_storage!r}"
            )
        if self.store_compression not in ("default", "best_compression"):
            raise InvalidInputError(
                f"store_compression must be default or best_compression, got {self.store_compression!r}"
            )
        if self.codes_field is None and not self.nested_vectors:
            raise InvalidInputError("a layout needs a token store: codes_field, nested_vectors, or both")
        names = [self.splade_field, self.colbert_field, self.meta_field]
        names += [n for n in (self.codes_field, self.packed_field) if n is not None]
        if len(set(names)) != len(names) or any(not n or "." in n for n in [*names, self.vector_field]):
            raise InvalidInputError(f"field names must be distinct, non-empty and without dots: {names}")

    @property
    def vector_path(self) -> str:
        """Full path of the token vector field, e.g. ``colbert.v``."""
        return f"{self.colbert_field}.{self.vector_field}"

    @property
    def heavy_fields(self) -> tuple[str, ...]:
        """colsplade's fields that no caller wants back in ``_source`` (impacts, vectors, codes)."""
        names = (self.splade_field, self.colbert_field, self.codes_field, self.packed_field)
        return tuple(n for n in names if n)

    @property
    def source_excludes(self) -> tuple[str, ...]:
        """Fields the mapping keeps out of ``_source``: never a second copy of the token vectors there."""
        excluded = [self.colbert_field] if self.nested_vectors else []
        if self.codes_field and self.codes_storage != "source":
            excluded.append(self.codes_field)
        return tuple(excluded)


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

    >>> props = colsplade_properties("elasticsearch", FieldSpec(colbert_dim=4))
    >>> props["splade"], props["colbert_codes"], "colbert" in props
    ({'type': 'rank_features'}, {'type': 'binary'}, False)
    >>> nested = FieldSpec(colbert_dim=4, nested_vectors=True, index_vectors=False)
    >>> colsplade_properties("elasticsearch", nested)["colbert"]["properties"]["v"]
    {'type': 'dense_vector', 'dims': 4, 'element_type': 'float', 'index': False}
    >>> nested = FieldSpec(colbert_dim=4, nested_vectors=True)
    >>> colsplade_properties("opensearch", nested)["colbert"]["properties"]["v"]["method"]["space_type"]
    'innerproduct'
    """
    _check_engine(engine)
    spec = spec or FieldSpec()
    if spec.splade_type == "sparse_vector" and engine != "elasticsearch":
        raise InvalidInputError(
            "sparse_vector is an Elasticsearch field type; use rank_features on OpenSearch"
        )
    properties: dict[str, Any] = {spec.splade_field: {"type": spec.splade_type}}
    if spec.nested_vectors:
        vector = _es_vector(spec) if engine == "elasticsearch" else _os_vector(spec)
        properties[spec.colbert_field] = {"type": "nested", "properties": {spec.vector_field: vector}}
    if spec.codes_field is not None:
        codes: dict[str, Any] = {"type": "binary"}
        if spec.codes_storage == "stored":
            codes["store"] = True
        elif spec.codes_storage == "doc_values":
            codes["doc_values"] = True
        properties[spec.codes_field] = codes
    properties.update(
        {
            spec.meta_field: {
                "properties": {
                    "model_name": {"type": "keyword"},
                    "model_version": {"type": "keyword"},
                    "encoded_at": {"type": "date"},
                }
            },
        }
    )
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

    >>> index_settings("opensearch", FieldSpec(nested_vectors=True))
    {'index': {'number_of_shards': 1, 'number_of_replicas': 0, 'knn': True}}
    >>> index_settings("elasticsearch", FieldSpec(store_compression="best_compression"))
    {'index': {'number_of_shards': 1, 'number_of_replicas': 0, 'codec': 'best_compression'}}
    """
    _check_engine(engine)
    spec = spec or FieldSpec()
    if shards < 1 or replicas < 0:
        raise InvalidInputError(f"shards must be >= 1 and replicas >= 0, got {shards} and {replicas}")
    index: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if engine == "opensearch":
        index["knn"] = bool(spec.nested_vectors and spec.index_vectors)
    if spec.store_compression != "default":
        index["codec"] = spec.store_compression
    if nested_objects_limit is not None:
        index["mapping.nested_objects.limit"] = int(nested_objects_limit)
    return {"index": index}


def index_meta(
    spec: FieldSpec,
    model_name: str | None = None,
    model_version: str | None = None,
    codec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``_meta.colsplade`` block recording the field layout, the model and the token codec of an index.

    ``codec`` is :meth:`colsplade.scoring.ResidualCodec.describe` (hash, dim, nbits, centroids).

    >>> index_meta(FieldSpec(colbert_dim=96), "minilm-splade", "3")["colsplade"]["colbert_dim"]
    96
    """
    block: dict[str, Any] = {"schema": SCHEMA_VERSION, **dataclasses.asdict(spec)}
    if model_name is not None:
        block["model_name"] = model_name
    if model_version is not None:
        block["model_version"] = model_version
    if codec is not None:
        block["codec"] = dict(codec)
    return {"colsplade": block}


def merge_meta(current: Mapping[str, Any] | None, update: Mapping[str, Any]) -> dict[str, Any]:
    """An index's ``_meta`` with ``update`` written into it: each block of ``update`` (``colsplade``, ...)
    merged key by key into the block already there, so what another step recorded in it stays (the
    default plan and the rollback target that ``colsplade upgrade`` writes survive a later ingest that
    records its layout and model); other top-level keys (a team's own) are kept as they are.

    >>> current = {"team": {"owner": "search"}, "colsplade": {"schema": 2, "search": {"plan": "bm25"}}}
    >>> merged = merge_meta(current, index_meta(FieldSpec(), "m", "2"))
    >>> merged["team"], merged["colsplade"]["search"], merged["colsplade"]["model_version"]
    ({'owner': 'search'}, {'plan': 'bm25'}, '2')
    """
    merged = dict(current or {})
    for key, block in update.items():
        before = merged.get(key)
        if isinstance(before, Mapping) and isinstance(block, Mapping):
            merged[key] = {**before, **block}
        else:
            merged[key] = block
    return merged


def codec_from_meta(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The codec an index's token codes were written with (``describe()`` form), or None.

    >>> codec_from_meta(index_meta(FieldSpec(), codec={"hash": "ab12", "nbits": 1}))["hash"]
    'ab12'
    """
    block = (meta or {}).get("colsplade")
    codec = block.get("codec") if isinstance(block, Mapping) else None
    return dict(codec) if isinstance(codec, Mapping) else None


def model_from_meta(meta: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The (name, version) of the model an index's documents were encoded with, or None when it records
    none (a new index, or one made by ``colsplade index create``). Both as text: a version recorded as a
    number reads the same as its string.

    >>> model_from_meta(index_meta(FieldSpec(), "minilm-splade", 3)), model_from_meta(index_meta(FieldSpec()))
    (('minilm-splade', '3'), None)
    """
    block = (meta or {}).get("colsplade")
    if not isinstance(block, Mapping) or block.get("model_name") is None:
        return None
    return str(block["model_name"]), str(block.get("model_version"))


def spec_from_meta(meta: Mapping[str, Any] | None) -> FieldSpec | None:
    """Read back the :class:`FieldSpec` of an index from its ``_meta`` (None when it has none).

    >>> spec_from_meta(index_meta(FieldSpec(element_type="byte"))).element_type
    'byte'
    >>> old = spec_from_meta({"colsplade": {"schema": 1, "colbert_dim": 8, "packed_field": "colbert_packed"}})
    >>> old.nested_vectors, old.codes_field, old.packed_field
    (True, None, 'colbert_packed')
    """
    block = (meta or {}).get("colsplade")
    if not isinstance(block, Mapping):
        return None
    known = {f.name for f in dataclasses.fields(FieldSpec)}
    values = {k: v for k, v in block.items() if k in known}
    if int(block.get("schema", 1)) < 2:
        # schema 1: nested vectors (+ the packed copy), no compact store
        values = {"packed_field": "colbert_packed", **values, "nested_vectors": True, "codes_field": None}
    return FieldSpec(**values)


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
    mappings: dict[str, Any] = {
        "_meta": index_meta(spec, model_name, model_version),
        "properties": properties,
    }
    if spec.source_excludes:
        mappings["_source"] = {"excludes": list(spec.source_excludes)}
    return {"settings": index_settings(engine, spec, shards=shards, replicas=replicas), "mappings": mappings}


_VECTOR_TYPES = frozenset({"dense_vector", "sparse_vector", "knn_vector", "rank_vectors"})


def without_vector_source_excludes(body: Mapping[str, Any]) -> dict[str, Any]:
    """A create-index body for an engine that leaves vector fields out of ``_source`` itself
    (Elasticsearch 9.2+): the mapping's ``_source.excludes`` entries that name vector fields (or nested
    objects of vectors only) are dropped, since the engine keeps them out anyway and can then hand them
    back when asked (Elasticsearch 9.2.8 fails a request for vectors on an index that also excludes its
    nested vectors by mapping, with a null pointer). Other exclusions stay.

    >>> body = {"mappings": {"_source": {"excludes": ["colbert", "secret"]}, "properties": {
    ...     "colbert": {"type": "nested", "properties": {"v": {"type": "dense_vector", "dims": 2}}},
    ...     "secret": {"type": "keyword"}}}}
    >>> without_vector_source_excludes(body)["mappings"]["_source"]
    {'excludes': ['secret']}
    """
    mappings = dict(body.get("mappings") or {})
    excludes = list((mappings.get("_source") or {}).get("excludes") or [])
    properties = mappings.get("properties") or {}

    def is_vector(definition: Mapping[str, Any]) -> bool:
        if definition.get("type") in _VECTOR_TYPES:
            return True
        inner = definition.get("properties") or {}
        return bool(inner) and all(is_vector(d) for d in inner.values())

    kept = [f for f in excludes if not is_vector(properties.get(f) or {})]
    if kept == excludes:
        return dict(body)
    source = {k: v for k, v in (mappings.get("_source") or {}).items() if k != "excludes"}
    if kept:
        source["excludes"] = kept
    if source:
        mappings["_source"] = source
    else:
        mappings.pop("_source", None)
    return {**body, "mappings": mappings}


def fields_to_add(
    engine: str, existing_properties: Mapping[str, Any] | None, spec: FieldSpec | None = None
) -> dict[str, Any]:
    """Which of colsplade's properties an existing index still needs; refuses conflicting ones.

    A field that exists with the same type and vector settings is left alone (adding fields is then a
    no-op, so it can be rerun); one that exists differently raises :class:`MappingConflictError`, because
    engines cannot change a field's type in place.

    >>> fields_to_add("elasticsearch", {"title": {"type": "text"}}, FieldSpec(colbert_dim=4)).keys()
    dict_keys(['splade', 'colbert_codes', 'colsplade'])
    >>> fields_to_add("elasticsearch", {"splade": {"type": "keyword"}})
    Traceback (most recent call last):
    ...
    colsplade.exceptions.MappingConflictError: field 'splade' already exists as {'type': 'keyword'}, colsplade needs {'type': 'rank_features'}; choose other field names (FieldSpec(splade_field=...)) or a new index
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
    for attr in ("splade_field", "colbert_field", "codes_field", "meta_field", "packed_field"):
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


def text_properties(fields: Sequence[str], analyzer: str = "standard") -> dict[str, Any]:
    """Mapping properties of BM25 text fields, each analysed by ``analyzer`` (``english`` stems and drops
    English stopwords, as a team's English index normally does).

    >>> text_properties(["title", "text"], "english")["title"]
    {'type': 'text', 'analyzer': 'english'}
    """
    return {field: {"type": "text", "analyzer": analyzer} for field in fields}


def text_analyzers(properties: Mapping[str, Any], fields: Sequence[str]) -> dict[str, str]:
    """The analyser of each of ``fields`` that is a text field of ``properties`` (``standard`` when unset).

    >>> text_analyzers({"title": {"type": "text", "analyzer": "english"}, "text": {"type": "text"}}, ["title", "text"])
    {'title': 'english', 'text': 'standard'}
    """
    return {
        f: str((properties.get(f) or {}).get("analyzer", "standard"))
        for f in fields
        if (properties.get(f) or {}).get("type") in ("text", "match_only_text")
    }
