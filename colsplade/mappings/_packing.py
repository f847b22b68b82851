"""Compact transport of a document's ColBERT token vectors: one base64 string in a ``binary`` field.

The nested ``colbert`` objects serve the engine (HNSW graph, painless rescore), but reading them back as
JSON numbers is slow: ~10 characters per dimension to produce, send and parse. The client-side rerank
instead reads ``colbert_packed``: the same matrix as raw little-endian bytes in the index's precision
(float32, int8, or packed bits), so it is exact (same MaxSim as the engine) and decodes with one
``np.frombuffer``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from colsplade.exceptions import InvalidInputError

__all__ = ["pack_token_vectors", "unpack_token_vectors"]

_DTYPES: dict[str, np.dtype[Any]] = {"float": np.dtype("<f4"), "byte": np.dtype("i1"), "bit": np.dtype("u1")}


def pack_token_vectors(doc_token_vectors: np.ndarray, element_type: str = "float") -> str:
    """Base64 of the (n_tokens, width) matrix as stored: float32, int8, or packed-bit uint8 bytes.

    >>> pack_token_vectors(np.array([[1.0, 0.0]], dtype=np.float32))
    'AACAPwAAAAA='
    >>> unpack_token_vectors(pack_token_vectors(np.array([[3, -4]], dtype=np.int8), "byte"), 2, "byte")
    array([[ 3, -4]], dtype=int8)
    """
    dtype = _DTYPES.get(element_type)
    if dtype is None:
        raise InvalidInputError(f"element_type must be float, byte or bit, got {element_type!r}")
    array = np.asarray(doc_token_vectors)
    if array.ndim != 2:
        raise InvalidInputError(f"token vectors must be a 2-d (n_tokens, dim) array, got shape {array.shape}")
    if element_type == "bit" and array.dtype == np.int8:
        array = array.view(np.uint8)  # packed bits travel to the engines as signed bytes
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def unpack_token_vectors(packed: str, width: int, element_type: str = "float") -> np.ndarray:
    """Invert :func:`pack_token_vectors`: (n_tokens, width) float32 / int8 / uint8.

    ``width`` is the dimension (float, byte) or the number of packed bytes per vector (bit: dim / 8).
    """
    dtype = _DTYPES.get(element_type)
    if dtype is None:
        raise InvalidInputError(f"element_type must be float, byte or bit, got {element_type!r}")
    try:
        raw = base64.b64decode(packed, validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"packed token vectors are not valid base64: {exc}") from None
    row_bytes = width * dtype.itemsize
    if width < 1 or len(raw) % row_bytes:
        raise InvalidInputError(f"packed token vectors hold {len(raw)} bytes, not a multiple of {row_bytes}")
    out: np.ndarray = np.frombuffer(raw, dtype=dtype).reshape(-1, width)
    return out
