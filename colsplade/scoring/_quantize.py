"""Quantisation of ColBERT token vectors for compact storage: int8 ("byte") and 1-bit ("bit")."""

from __future__ import annotations

import numpy as np

__all__ = [
    "bit_similarities",
    "dequantize_bits",
    "dequantize_int8",
    "hamming_maxsim",
    "quantize_bits",
    "quantize_int8",
]

# Unit vectors have components in [-1, 1]; scaling by 127 maps them onto the symmetric int8 range
# that Elasticsearch's / OpenSearch's ``byte`` vectors accept, without a per-vector scale to store.
INT8_SCALE = 127.0


def quantize_int8(vectors: np.ndarray) -> np.ndarray:
    """Quantise unit-norm token vectors (n, dim) float to (n, dim) int8 by ``round(v * 127)``.

    Values outside [-1, 1] are clipped. Dot products of quantised vectors divided by 127**2
    approximate the float dot products.

    >>> quantize_int8(np.array([[1.0, -0.5, 0.0]]))
    array([[127, -64,   0]], dtype=int8)
    """
    v = np.asarray(vectors, dtype=np.float32)
    out: np.ndarray = np.clip(np.rint(v * INT8_SCALE), -127, 127).astype(np.int8)
    return out


def dequantize_int8(quantized: np.ndarray) -> np.ndarray:
    """Back from int8 (n, dim) to float32 (n, dim).

    >>> dequantize_int8(np.array([[127, -64, 0]], dtype=np.int8)).round(3)
    array([[ 1.   , -0.504,  0.   ]], dtype=float32)
    """
    return np.asarray(quantized, dtype=np.float32) / INT8_SCALE


def quantize_bits(vectors: np.ndarray) -> np.ndarray:
    """Binarise token vectors (n, dim) by sign and pack them: (n, ceil(dim / 8)) uint8, big-endian bits.

    Bit 1 means a positive component. For an Elasticsearch ``bit`` / OpenSearch binary field pass
    ``packed.view(np.int8)`` (the engines take signed bytes); the dimension must be a multiple of 8.

    >>> quantize_bits(np.array([[0.5, -0.1, 0.2, -0.3, 0.1, 0.1, -0.2, 0.9]]))
    array([[173]], dtype=uint8)
    """
    v = np.asarray(vectors)
    if v.ndim != 2:
        raise ValueError(f"vectors must be (n_tokens, dim), got shape {v.shape}")
    return np.packbits(v > 0, axis=1)


def dequantize_bits(packed: np.ndarray, dim: int) -> np.ndarray:
    """Unpack (n, ceil(dim / 8)) uint8 into (n, dim) float32 of +-1/sqrt(dim) (unit vectors).

    >>> np.sign(dequantize_bits(np.array([[173]], dtype=np.uint8), 8))
    array([[ 1., -1.,  1., -1.,  1.,  1., -1.,  1.]], dtype=float32)
    """
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=dim)
    out: np.ndarray = ((bits.astype(np.float32) * 2.0 - 1.0) / np.sqrt(dim)).astype(np.float32)
    return out


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def hamming_maxsim(query_bits: np.ndarray, doc_bits: np.ndarray, dim: int) -> float:
    """MaxSim on packed bit vectors: ``sum_i max_j (dim - 2 * hamming(q_i, d_j)) / dim``.

    For +-1 vectors ``q . d = dim - 2 * hamming``, so this equals MaxSim of the unpacked unit vectors.
    ``query_bits`` is (m, ceil(dim / 8)) and ``doc_bits`` is (n, ceil(dim / 8)), both uint8.

    >>> q = quantize_bits(np.array([[1.0] * 8]))
    >>> d = quantize_bits(np.array([[1.0] * 6 + [-1.0] * 2, [-1.0] * 8]))
    >>> hamming_maxsim(q, d, 8)
    0.5
    """
    q = np.asarray(query_bits, dtype=np.uint8)
    d = np.asarray(doc_bits, dtype=np.uint8)
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    xor = np.bitwise_xor(q[:, None, :], d[None, :, :])  # (m, n, bytes)
    hamming = _POPCOUNT[xor].sum(axis=2)  # (m, n)
    sims = (dim - 2 * hamming).max(axis=1)
    return float(sims.sum() / dim)


def bit_similarities(query_vectors: np.ndarray, doc_bits: np.ndarray, dim: int) -> np.ndarray:
    """(m, n) similarities of float query vectors (m, dim) to packed bit document vectors (n, dim / 8):
    the query is binarised too, and ``1 - 2 * hamming / dim`` is the cosine of the two +-1 vectors.

    >>> q = np.array([[1.0] * 8])
    >>> bit_similarities(q, quantize_bits(np.array([[1.0] * 6 + [-1.0] * 2])), 8)
    array([[0.5]])
    """
    q = np.unpackbits(quantize_bits(query_vectors), axis=1)[:, :dim].astype(np.int32)
    d = np.unpackbits(np.asarray(doc_bits, dtype=np.uint8), axis=1)[:, :dim].astype(np.int32)
    agree = q @ d.T + (1 - q) @ (1 - d).T
    return (2.0 * agree - dim) / dim
