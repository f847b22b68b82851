"""The index an ingest writes into: made ready for the model, its token codec found or recorded.

:func:`prepare_index` creates the index (or adds colsplade's fields to a team's own) and refuses one
encoded with another model; :func:`resolve_codec` finds the codec the index's token codes were written
with; :class:`Target` is what a run (``ingest``, ``ingest_encoded``, ``reindex``) holds of the index
while it writes: its layout, the model and codec it records in the index's ``_meta``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from colsplade.engines import EngineClient
from colsplade.exceptions import (
    DocCapMismatchError,
    EngineRefusedError,
    InvalidInputError,
    ModelVersionMismatchError,
)
from colsplade.mappings import (
    FieldSpec,
    codec_from_meta,
    index_meta,
    merge_meta,
    model_from_meta,
    spec_from_meta,
)
from colsplade.scoring import ResidualCodec

if TYPE_CHECKING:
    from colsplade.encoders import EncoderSource, TextEncoder
    from colsplade.ingest._summary import IngestSummary

logger = logging.getLogger(__name__)

__all__ = ["Layout", "Target", "open_encoder", "prepare_index", "resolve_codec"]


@dataclass(frozen=True)
class Layout:
    """The token store of an index that the run creates (an existing index keeps its own).

    ``nested_vectors``: also write the nested vector field (opt-in: nested-kNN candidates and the
    in-engine rerank), of ``element_type`` float / byte / bit, with an HNSW graph when ``index_vectors``.
    ``codes_storage``: where the compact blob is kept (``source``, ``stored``, ``doc_values``) and
    ``store_compression`` the index codec (``default`` LZ4 or ``best_compression``); see
    :class:`colsplade.mappings.FieldSpec`. ``shards`` / ``replicas``: the new index's primary shards
    and replicas of each (on a cluster: 1 replica keeps every shard searchable when a node dies).
    """

    nested_vectors: bool = False
    element_type: str | None = None
    index_vectors: bool = True
    codes_storage: str = "source"
    store_compression: str = "default"
    shards: int = 1
    replicas: int = 0

    def spec(self, dim: int, sparse_query: str = "encoder", doc_top_k: int | None = None) -> FieldSpec:
        return FieldSpec(
            sparse_query=sparse_query,  # type: ignore[arg-type]
            doc_top_k=doc_top_k,
            colbert_dim=dim,
            element_type=self.element_type or "float",
            index_vectors=self.index_vectors,
            nested_vectors=self.nested_vectors,
            codes_storage=self.codes_storage,  # type: ignore[arg-type]
            store_compression=self.store_compression,  # type: ignore[arg-type]
        )


def open_encoder(encoder: TextEncoder | EncoderSource) -> TextEncoder:
    """The encoder an ingest writes with: a model directory (or a (splade, colbert) pair of them) opened
    with its int8 variant, an encoder object as it is. The one place ingest, ingest_encoded and reindex
    turn what they were given into an encoder."""
    from colsplade.encoders import as_encoder

    return as_encoder(encoder, variant="int8")


def model_of(encoder: TextEncoder) -> tuple[str, str]:
    """(name, version) of the encoder's model: what an index it writes records."""
    config = encoder.config
    return str(config.name), str(config.version)


def doc_cap_of(encoder: TextEncoder) -> tuple[bool, int | None]:
    """(known, cap): the most SPLADE terms the encoder keeps per document (None: no SPLADE side, or no
    cap): the model's ``splade.doc_top_k`` or the override the encoder was opened with; a pair's SPLADE
    model's. ``known`` is False for an encoder of the caller's own that does not say (no ``doc_top_k``):
    its cap is then neither recorded nor checked."""
    if encoder.config.kind == "colbert":
        return True, None
    splade = getattr(encoder, "splade", encoder)  # a (splade, colbert) pair holds its SPLADE encoder
    if not hasattr(splade, "doc_top_k"):
        return False, None
    cap = splade.doc_top_k
    return True, (int(cap) if cap is not None else None)


def colbert_dim(encoder: TextEncoder) -> int | None:
    """The dimension of the encoder's ColBERT vectors (None: a SPLADE-only model writes none)."""
    colbert = getattr(encoder.config, "colbert", None)
    return colbert.dim if colbert is not None and encoder.config.kind != "splade" else None


def prepare_index(
    client: EngineClient,
    index: str,
    encoder: TextEncoder | EncoderSource,
    *,
    reencode: bool = False,
    layout: Layout | None = None,
    chunked: bool = False,
) -> tuple[FieldSpec, bool]:
    """Make ``index`` ready for documents of ``encoder``'s model; returns its spec and whether the index's
    recorded model must be switched to this one once the run is done (re-encode).

    Creates the index (with ``layout``) when missing; adds colsplade's fields to an index without them;
    refuses (:class:`ModelVersionMismatchError`) an index encoded with another model unless ``reencode``.
    """

    encoder = open_encoder(encoder)
    layout = layout or Layout()
    name, version = model_of(encoder)
    dim = colbert_dim(encoder) or 128
    mode = sparse_query_of(encoder)
    cap_known, cap = doc_cap_of(encoder)
    switch_model = False
    wanted = layout.spec(dim, mode, cap)  # the layout of an index this run creates or completes
    spec = _create_if_missing(client, index, layout, wanted, name, version)
    if spec is None:
        mapping = client.get_mapping(index)
        spec = spec_from_meta(mapping.get("_meta"))
        recorded = model_from_meta(mapping.get("_meta"))
        if spec is None:
            spec = _add_fields(client, index, wanted, name, version)
        elif recorded is None:
            # An index made by `colsplade index create` records no model yet: this run's model becomes it.
            spec = dataclasses.replace(spec, sparse_query=mode)  # type: ignore[arg-type]
            spec = dataclasses.replace(spec, doc_top_k=cap) if cap_known else spec
            _record_meta(client, index, spec, name, version, codec_from_meta(mapping.get("_meta")))
        elif recorded != (name, version):
            current = "@".join(recorded)
            if not reencode:
                raise ModelVersionMismatchError(index, current, f"{name}@{version}")
            logger.warning(
                "re-encoding %s: its documents were encoded with %s, now %s@%s", index, current, name, version
            )
            switch_model = True
        if spec.sparse_query != mode:
            if not reencode:
                raise ModelVersionMismatchError(
                    index,
                    f"{'@'.join(recorded or ('?', '?'))} ({spec.sparse_query} sparse queries)",
                    f"{name}@{version} ({mode} sparse queries)",
                )
            spec = dataclasses.replace(spec, sparse_query=mode)  # type: ignore[arg-type]
            switch_model = True
        if cap_known and spec.doc_top_k != cap:
            if spec.doc_top_k is None:
                # written before the cap was recorded: this run's cap is recorded from now on
                spec = dataclasses.replace(spec, doc_top_k=cap)
                if not switch_model:
                    _record_meta(client, index, spec, name, version, codec_from_meta(mapping.get("_meta")))
            elif not reencode:
                raise DocCapMismatchError(index, f"{name}@{version}", spec.doc_top_k, cap)
            else:
                logger.warning("re-encoding %s: doc_top_k %s -> %s", index, spec.doc_top_k, cap)
                spec = dataclasses.replace(spec, doc_top_k=cap)
                switch_model = True
        if layout.element_type is not None and spec.element_type != layout.element_type:
            raise InvalidInputError(
                f"index {index!r} stores {spec.element_type} ColBERT vectors, not {layout.element_type}; "
                "use a new index to change the element type"
            )
    if colbert_dim(encoder) is not None and spec.colbert_dim != dim:
        raise InvalidInputError(
            f"index {index!r} holds {spec.colbert_dim}-dimensional ColBERT vectors but the model makes {dim}"
        )
    if chunked:
        _add_passage_fields(client, index)
    return spec, switch_model


def sparse_query_of(encoder: TextEncoder) -> str:
    """The sparse query mode the encoder's documents are for (``encoder`` for a ColBERT-only model)."""
    from colsplade.encoders import sparse_query_mode

    return sparse_query_mode(encoder.config) or "encoder"


def _create_if_missing(
    client: EngineClient, index: str, layout: Layout, wanted: FieldSpec, name: str, version: str
) -> FieldSpec | None:
    """Create the index; None when it exists (made by the team, a former run, or a worker starting at
    the same moment: stream workers of one consumer group often do)."""
    from colsplade.engines import create_index

    if client.index_exists(index):
        return None
    try:
        return create_index(
            client,
            index,
            wanted,
            model_name=name,
            model_version=version,
            shards=layout.shards,
            replicas=layout.replicas,
        )["spec"]
    except EngineRefusedError as exc:
        if exc.error_type != "resource_already_exists_exception":
            raise
        logger.info("index %s was created meanwhile by another run", index)
        return None


def _add_fields(client: EngineClient, index: str, wanted: FieldSpec, name: str, version: str) -> FieldSpec:
    """colsplade's fields added to an index of the team's own."""
    from colsplade.engines import create_index

    if (
        wanted.nested_vectors
        and wanted.index_vectors
        and client.engine == "opensearch"
        and client.get_settings(index).get("index.knn") != "true"
    ):
        # OpenSearch cannot switch index.knn on later: the vectors are stored for rerank only.
        logger.warning(
            "%s was created without index.knn; its token vectors are stored for rerank only "
            "(reindex into a new index for nested kNN)",
            index,
        )
        wanted = dataclasses.replace(wanted, index_vectors=False)
    created = create_index(client, index, wanted, model_name=name, model_version=version, existing_ok=True)
    return created["spec"]


def _add_passage_fields(client: EngineClient, index: str) -> None:
    properties = client.get_mapping(index).get("properties", {})
    extra = {
        k: v
        for k, v in {"parent_id": {"type": "keyword"}, "passage": {"type": "integer"}}.items()
        if k not in properties
    }
    if extra:
        client.put_mapping(index, {"properties": extra})


def _record_meta(
    client: EngineClient,
    index: str,
    spec: FieldSpec,
    name: str,
    version: str,
    codec: dict[str, Any] | None,
) -> None:
    # merged into what is there: the plan `colsplade upgrade` recorded, say, stays
    meta = merge_meta(client.get_mapping(index).get("_meta"), index_meta(spec, name, version, codec))
    client.put_mapping(index, {"_meta": meta})


def resolve_codec(
    client: EngineClient,
    index: str,
    encoder: TextEncoder | EncoderSource,
    spec: FieldSpec,
    *,
    reencode: bool = False,
) -> ResidualCodec | None:
    """The codec this run writes codes with: the model directory's, or the one the index was written
    with (found by hash). None: none exists yet, the run fits one. Refuses (:class:`CodecMismatchError`)
    an index whose codes were written with a codec the model does not have, unless ``reencode``."""
    from colsplade.encoders import codec_for_index

    encoder = open_encoder(encoder)
    if spec.codes_field is None or colbert_dim(encoder) is None:
        return None
    recorded = codec_from_meta(client.get_mapping(index).get("_meta"))
    codec = codec_for_index(encoder, index, recorded, allow_other=reencode)
    if codec is not None and codec.dim != spec.colbert_dim:
        raise InvalidInputError(
            f"the model's codec is {codec.dim}-dimensional, index {index!r} holds {spec.colbert_dim}"
        )
    return codec


@dataclass
class Target:
    """The index a run writes into: its layout, the model and codec it records in its ``_meta``."""

    client: EngineClient
    index: str
    spec: FieldSpec
    name: str
    version: str
    switch_model: bool
    codec: ResidualCodec | None
    needs_codec: bool

    @classmethod
    def open(
        cls,
        client: EngineClient,
        index: str,
        encoder: TextEncoder,
        *,
        reencode: bool,
        layout: Layout | None,
        chunked: bool,
        prepare: bool,
    ) -> Target:
        name, version = model_of(encoder)
        if prepare:
            spec, switch_model = prepare_index(
                client, index, encoder, reencode=reencode, layout=layout, chunked=chunked
            )
        else:
            spec = spec_from_meta(client.get_mapping(index).get("_meta")) or FieldSpec()
            switch_model = False
        codec = resolve_codec(client, index, encoder, spec, reencode=reencode)
        needs_codec = spec.codes_field is not None and colbert_dim(encoder) is not None
        target = cls(client, index, spec, name, version, switch_model, codec, needs_codec)
        if codec is not None and codec_from_meta(client.get_mapping(index).get("_meta")) is None:
            target.record()
        return target

    def record(self) -> None:
        """Write the model and codec into the index's ``_meta``."""
        _record_meta(
            self.client,
            self.index,
            self.spec,
            self.name,
            self.version,
            self.codec.describe() if self.codec is not None and self.needs_codec else None,
        )

    def adopt(self, encoder: TextEncoder, fitted: ResidualCodec) -> None:
        """A codec fitted by this run: saved with the model, recorded in the index before its first codes
        are written (a re-encoding run records it with the new model, at the end)."""
        from colsplade.encoders import save_model_codec

        where = save_model_codec(encoder, fitted)
        logger.info("saved the token codec %s as %s", fitted.hash, where)
        self.codec = fitted
        if not self.switch_model:
            self.record()

    def close(self, summary: IngestSummary, *, refresh: bool) -> None:
        summary.codec = self.codec.hash if self.codec is not None else None
        if self.switch_model and summary.dead_lettered == 0:
            self.record()
        if refresh:
            self.client.refresh(self.index)
