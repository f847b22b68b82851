"""The stored form of the ColBERT tokens: the writer and the reader of every layout, side by side.

One :class:`FieldSpec` says where an index keeps its tokens; :class:`TokenWriter` turns a document's
token vectors into those fields, :class:`TokenReader` reads them back from search hits. Keeping both
here is what keeps them in step (pure: arrays and plain dicts in, arrays and plain dicts out).

The compact store (schema 2): one base64 blob a document, decoded for the whole window at once by the
index's :class:`~colsplade.scoring.ResidualCodec`. Indices written before it (schema 1): the packed
exact copy, or the nested JSON numbers, one document at a time. The nested vectors can also be written
beside the blob (opt-in), decoded from it so the engine and the client score the same vectors.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from colsplade.exceptions import InvalidInputError
from colsplade.mappings._builders import FieldSpec
from colsplade.mappings._packing import pack_token_vectors, unpack_token_vectors
from colsplade.scoring import (
    DecodedWindow,
    ResidualCodec,
    bit_similarities,
    dequantize_int8,
    hamming_maxsim,
    maxsim_codes,
    quantize_bits,
    quantize_int8,
    token_similarities,
)

logger = logging.getLogger(__name__)

__all__ = ["TokenReader", "TokenWriter", "stored_vectors"]


def stored_vectors(doc_token_vectors: np.ndarray, spec: FieldSpec) -> np.ndarray:
    """(n, dim) float token vectors in the element type ``spec`` stores: float32, int8 (``byte``), or
    packed bits as signed bytes (``bit``: (n, dim / 8) int8, the form both engines take).

    >>> v = np.array([[0.5, -0.5, 0.0, 1.0, -1.0, 0.25, -0.25, 0.1]], dtype=np.float32)
    >>> stored_vectors(v, FieldSpec(colbert_dim=8, element_type="bit")).tolist()
    [[-107]]
    """
    if spec.element_type == "byte":
        return quantize_int8(doc_token_vectors)
    if spec.element_type == "bit":
        return quantize_bits(doc_token_vectors).view(np.int8)
    return np.ascontiguousarray(doc_token_vectors, dtype=np.float32)


class TokenWriter:
    """The token fields of one document, in the layout of ``spec``.

    ``codec`` compresses the vectors into the blob of the compact store (None: the index has no compact
    store, or the run has not fitted its codec yet and the caller holds the document back).

    >>> w = TokenWriter(FieldSpec(colbert_dim=2, codes_field=None, nested_vectors=True), None)
    >>> w.fields(np.array([[1.0, 0.0]], dtype=np.float32))["colbert"][0]["v"].tolist()
    [1.0, 0.0]
    """

    def __init__(self, spec: FieldSpec, codec: ResidualCodec | None) -> None:
        self.spec = spec
        self.codec = codec

    def fields(self, doc_token_vectors: np.ndarray) -> dict[str, Any]:
        """The fields that store ``doc_token_vectors`` (n, dim) float32: the blob, nested, packed."""
        if self.spec.codes_field is not None and self.codec is not None:
            return self.blob_fields(self.codec.encode(doc_token_vectors))
        return self._vector_fields(doc_token_vectors)

    def blob_fields(self, blob: bytes) -> dict[str, Any]:
        """The token fields of a document whose vectors are already the codec's ``blob``."""
        if self.spec.codes_field is None or self.codec is None:
            raise InvalidInputError("the index has no compact token store (or no codec) for a token blob")
        fields: dict[str, Any] = {self.spec.codes_field: base64.b64encode(blob).decode("ascii")}
        if self.spec.nested_vectors or self.spec.packed_field:
            # The nested vectors are the codes decoded: engine and client rerank score the same vectors.
            fields.update(self._vector_fields(self.codec.decode(blob)))
        return fields

    def _vector_fields(self, doc_token_vectors: np.ndarray) -> dict[str, Any]:
        spec = self.spec
        fields: dict[str, Any] = {}
        if spec.nested_vectors:
            vectors = stored_vectors(doc_token_vectors, spec)
            fields[spec.colbert_field] = [{spec.vector_field: row} for row in vectors]
        if spec.packed_field:
            fields[spec.packed_field] = pack_token_vectors(
                stored_vectors(doc_token_vectors, spec), spec.element_type
            )
        return fields


class TokenReader:
    """Token vectors of search hits, for the client rerank and ``explain``.

    ``spec`` is the index's layout; ``codec`` decodes its blobs (None on schema-1 indices).
    """

    def __init__(self, spec: FieldSpec, codec: ResidualCodec | None) -> None:
        if spec.codes_field is not None and codec is None:
            raise InvalidInputError("an index with the compact token store needs its codec to read tokens")
        self.spec = spec
        self.codec = codec

    # -- compact store ---------------------------------------------------------------------------

    def blob(self, hit: Mapping[str, Any]) -> bytes | None:
        """The hit's raw token blob (None when missing or not base64)."""
        spec = self.spec
        if spec.codes_storage == "source":
            value = (hit.get("_source") or {}).get(spec.codes_field)
        else:
            values = (hit.get("fields") or {}).get(spec.codes_field) or [None]
            value = values[0]
        if not isinstance(value, str):
            return None
        try:
            # OpenSearch's doc values give base64 without its padding. Not validated character by
            # character (b64decode's validate=True runs a regex over every blob: a third of the decode
            # time of a window); a blob altered in any way fails its length or CRC check instead.
            return binascii.a2b_base64(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            return None

    def maxsim(
        self, query_vectors: np.ndarray, hits: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim of the query against every hit: ((n,) float32 scores, (n,) bool readable)."""
        if self.codec is None:
            return self._legacy_maxsim(query_vectors, hits)
        window = self._window(hits)
        for i, reason in window.errors.items():
            logger.warning(
                "token blob of document %r is unreadable (%s); it keeps its first-stage score",
                hits[i].get("_id"),
                reason,
            )
        return maxsim_codes(query_vectors, window), window.ok

    def read(self, hits: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Each readable hit's token vectors by id: (n, dim) float32, or packed bits on bit indices."""
        if self.codec is None:
            return {h["_id"]: self._legacy_vectors(h) for h in hits}
        window = self._window(hits)
        return {h["_id"]: window.document(i) for i, h in enumerate(hits) if window.ok[i]}

    def _window(self, hits: Sequence[Mapping[str, Any]]) -> DecodedWindow:
        assert self.codec is not None
        return self.codec.decode_many([self.blob(h) for h in hits])

    def similarities(self, query_vectors: np.ndarray, doc_vectors: np.ndarray) -> np.ndarray:
        """(m, n) token similarities in the stored precision (bit: ``1 - 2 * hamming / dim``)."""
        if self.codec is None and self.spec.element_type == "bit":
            return bit_similarities(query_vectors, doc_vectors, self.spec.colbert_dim)
        return token_similarities(query_vectors, doc_vectors)

    # -- schema 1 --------------------------------------------------------------------------------

    def _legacy_maxsim(
        self, query_vectors: np.ndarray, hits: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.zeros(len(hits), dtype=np.float32)
        for i, h in enumerate(hits):
            doc_vectors = self._legacy_vectors(h)
            if len(doc_vectors) == 0 or len(query_vectors) == 0:
                continue
            if self.spec.element_type == "bit":
                scores[i] = hamming_maxsim(quantize_bits(query_vectors), doc_vectors, self.spec.colbert_dim)
            else:
                scores[i] = self.similarities(query_vectors, doc_vectors).max(axis=1).sum()
        return scores, np.ones(len(hits), dtype=bool)

    def _legacy_vectors(self, hit: Mapping[str, Any]) -> np.ndarray:
        """The packed copy when there is one, else the nested JSON numbers (byte: dequantised)."""
        spec, src = self.spec, hit.get("_source") or {}
        packed = src.get(spec.packed_field) if spec.packed_field else None
        if isinstance(packed, str):
            width = spec.colbert_dim // 8 if spec.element_type == "bit" else spec.colbert_dim
            stored = unpack_token_vectors(packed, width, spec.element_type)
            return dequantize_int8(stored) if spec.element_type == "byte" else stored
        nested = src.get(spec.colbert_field) or []
        rows = [t[spec.vector_field] for t in nested if isinstance(t, Mapping) and spec.vector_field in t]
        if spec.element_type == "float":
            return np.asarray(rows, dtype=np.float32).reshape(len(rows), spec.colbert_dim)
        if spec.element_type == "byte":
            return dequantize_int8(np.asarray(rows, dtype=np.int8).reshape(len(rows), spec.colbert_dim))
        # bit: packed bytes, stored as signed ints by the engines
        return np.asarray(rows, dtype=np.int16).astype(np.int8).view(np.uint8).reshape(len(rows), -1)
