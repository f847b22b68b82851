"""The compact ColBERT token store: centroid ids plus low-bit residuals, ColBERTv2-style (pure numpy).

A :class:`ResidualCodec` holds ``K`` unit-length centroids fitted by spherical k-means on a sample of
token vectors, and per dimension the cut-offs and reconstruction values of the residual buckets. A
token is stored as its nearest centroid's id (``uint16``) and ``nbits`` bits per dimension saying
which bucket its residual falls in; it is decoded as ``normalize(centroid + bucket value)``. At dim
128 and 1 bit that is 2 + 16 = 18 bytes a token (float32: 512).

One document's tokens travel as one blob (see :meth:`ResidualCodec.encode`)::

    offset 0  b"C"        magic
           1  version << 4 | nbits
           2  n_tokens    uint16, little-endian
           4  crc32       of the payload, uint32 little-endian
           8  ids         n_tokens x uint16
              residuals   n_tokens x (dim * nbits / 8) bytes, bits big-endian per dimension

The CRC makes a corrupted or truncated blob an error rather than silently wrong scores.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from colsplade.exceptions import CorruptBlobError, InvalidInputError
from colsplade.scoring._maxsim import token_similarities

logger = logging.getLogger(__name__)

__all__ = [
    "CorruptBlobError",
    "DecodedWindow",
    "ResidualCodec",
    "default_n_centroids",
    "fit_codec",
    "maxsim_codes",
    "pool_tokens",
]

_MAGIC = ord("C")
_VERSION = 1
_HEADER = struct.Struct("<BBHI")
MAX_TOKENS = 0xFFFF


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return out


@dataclass(frozen=True, eq=False)
class ResidualCodec:
    """Centroids (K, dim) float32, residual cut-offs (dim, 2**nbits - 1) and values (dim, 2**nbits).

    ``pool_factor`` > 1: a document's tokens are first pooled into ``ceil(n / pool_factor)`` vectors
    (:func:`pool_tokens`), so the blob holds that many; MaxSim over pooled vectors loses little (measured
    in the README) while the store and the rerank's work shrink by the factor.
    """

    centroids: np.ndarray
    cutoffs: np.ndarray
    values: np.ndarray
    nbits: int = 1
    pool_factor: int = 1

    def __post_init__(self) -> None:
        k, dim = self.centroids.shape
        if not 1 <= k <= 1 << 16:
            raise InvalidInputError(f"a codec holds 1..65536 centroids (uint16 ids), got {k}")
        if self.nbits not in (1, 2, 4):
            raise InvalidInputError(f"nbits must be 1, 2 or 4, got {self.nbits}")
        if not 1 <= self.pool_factor <= 16:
            raise InvalidInputError(f"pool_factor must be 1..16, got {self.pool_factor}")
        if (dim * self.nbits) % 8:
            raise InvalidInputError(f"dim * nbits must be a multiple of 8, got {dim} x {self.nbits}")
        if self.cutoffs.shape != (dim, (1 << self.nbits) - 1) or self.values.shape != (dim, 1 << self.nbits):
            raise InvalidInputError("codec cut-offs / values do not match its dimension and nbits")

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def n_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def row_bytes(self) -> int:
        """Bytes one token takes in a blob (id + residual bits)."""
        return 2 + self.dim * self.nbits // 8

    @property
    def hash(self) -> str:
        """Content hash (16 hex digits): the index records it, and a reader with another codec is refused."""
        digest = hashlib.sha256()
        digest.update(struct.pack("<III", self.nbits, *self.centroids.shape))
        if self.pool_factor != 1:
            digest.update(struct.pack("<I", self.pool_factor))
        for array in (self.centroids, self.cutoffs, self.values):
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        """What the index ``_meta`` records of the codec."""
        return {
            "hash": self.hash,
            "dim": self.dim,
            "nbits": self.nbits,
            "n_centroids": self.n_centroids,
            "pool_factor": self.pool_factor,
        }

    # -- encoding --------------------------------------------------------------------------------

    def assign(self, doc_token_vectors: np.ndarray) -> np.ndarray:
        """Nearest centroid (largest dot product) of each of the (n, dim) vectors: (n,) int64.

        Computed on the calling thread (:func:`~colsplade.scoring.token_similarities`): a document's
        product is small, and a BLAS thread pool woken for it would spin beside the encoder's threads.
        """
        return _assign(np.asarray(doc_token_vectors, dtype=np.float32), self.centroids, calling_thread=True)

    def encode(self, doc_token_vectors: np.ndarray) -> bytes:
        """One document's (n, dim) token vectors as a blob (see the module docstring), pooled first when
        the codec's ``pool_factor`` > 1.

        >>> codec = fit_codec(_demo_vectors(), n_centroids=4, seed=0)
        >>> blob = codec.encode(_demo_vectors()[:3])
        >>> len(blob), codec.decode(blob).shape
        (20, (3, 16))
        """
        v = np.asarray(doc_token_vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise InvalidInputError(f"token vectors must be (n, {self.dim}), got shape {v.shape}")
        if len(v) > MAX_TOKENS:
            raise InvalidInputError(f"a document holds at most {MAX_TOKENS} tokens in a blob, got {len(v)}")
        if not np.isfinite(v).all():
            raise InvalidInputError("token vectors hold NaN or infinite values")
        v = pool_tokens(v, self.pool_factor)
        ids = self.assign(v)
        residuals = v - self.centroids[ids]
        # bucket b of dimension d: how many cut-offs the residual exceeds
        buckets = (residuals[:, :, None] > self.cutoffs[None, :, :]).sum(axis=2).astype(np.uint8)
        payload = ids.astype("<u2").tobytes() + self._pack(buckets).tobytes()
        return _HEADER.pack(_MAGIC, _VERSION << 4 | self.nbits, len(v), zlib.crc32(payload)) + payload

    def _pack(self, buckets: np.ndarray) -> np.ndarray:
        if self.nbits == 1:
            return np.packbits(buckets, axis=1)
        shifts = np.arange(self.nbits - 1, -1, -1, dtype=np.uint8)
        planes = (buckets[:, :, None] >> shifts) & 1  # (n, dim, nbits), most significant bit first
        return np.packbits(planes.reshape(len(buckets), self.dim * self.nbits), axis=1)

    # -- decoding --------------------------------------------------------------------------------

    def split(self, blob: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
        """The (ids, residual bits) bytes of a blob after checking its header, length, CRC and ids."""
        ids, bits = self._split_unchecked_ids(blob)
        if ids and int(np.frombuffer(ids, dtype="<u2").max()) >= self.n_centroids:
            raise CorruptBlobError(f"blob names a centroid id past this codec's {self.n_centroids}")
        return ids, bits

    def _split_unchecked_ids(self, blob: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
        """:meth:`split` but for the centroid-id range, which :meth:`decode_many` checks once per window."""
        if not isinstance(blob, bytes):
            blob = bytes(blob)
        if len(blob) < _HEADER.size:
            raise CorruptBlobError(f"token blob of {len(blob)} bytes is shorter than its header")
        magic, version_bits, n, crc = _HEADER.unpack_from(blob)
        if magic != _MAGIC or version_bits >> 4 != _VERSION:
            raise CorruptBlobError("not a colsplade token blob (bad magic or version)")
        if version_bits & 0x0F != self.nbits:
            raise CorruptBlobError(f"blob has {version_bits & 0x0F}-bit residuals, the codec {self.nbits}")
        payload = blob[_HEADER.size :]
        if len(payload) != n * self.row_bytes:
            raise CorruptBlobError(
                f"token blob holds {len(payload)} payload bytes, {n} tokens need {n * self.row_bytes} "
                "(truncated, or written with another codec dimension)"
            )
        if zlib.crc32(payload) != crc:
            raise CorruptBlobError("token blob fails its checksum (corrupted)")
        return payload[: 2 * n], payload[2 * n :]

    def decode(self, blob: bytes | bytearray | memoryview) -> np.ndarray:
        """Invert :meth:`encode`: (n, dim) float32 unit vectors (the codec's approximation).

        Raises :class:`CorruptBlobError` for a blob that fails its checks."""
        window = self.decode_many([blob])
        if not window.ok[0]:
            raise CorruptBlobError(window.errors[0])
        return window.vectors

    def decode_many(self, blobs: Sequence[bytes | bytearray | memoryview | None]) -> DecodedWindow:
        """Decode a window of blobs in one pass. A blob that is ``None`` or fails its checks is marked
        invalid (``ok[i]`` False, ``errors[i]`` says why) and contributes no tokens."""
        parts: dict[int, tuple[bytes, bytes]] = {}
        errors: dict[int, str] = {}
        for i, blob in enumerate(blobs):
            if blob is None:
                errors[i] = "no token blob"
                continue
            try:
                parts[i] = self._split_unchecked_ids(blob)
            except CorruptBlobError as exc:
                errors[i] = str(exc)
        if parts and int(np.frombuffer(b"".join(ids for ids, _ in parts.values()), "<u2").max(initial=0)) >= (
            self.n_centroids
        ):
            # rare: find the blobs naming an id past the codec (one check for the whole window otherwise)
            for i in [
                i
                for i, (ids, _) in parts.items()
                if ids and np.frombuffer(ids, "<u2").max() >= self.n_centroids
            ]:
                errors[i] = f"blob names a centroid id past this codec's {self.n_centroids}"
                del parts[i]
        ok = np.zeros(len(blobs), dtype=bool)
        lengths = np.zeros(len(blobs), dtype=np.int64)
        for i, (ids, _) in parts.items():
            ok[i] = True
            lengths[i] = len(ids) // 2
        ids_parts = [ids for ids, _ in parts.values()]
        bit_parts = [bits for _, bits in parts.values()]
        offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            empty = np.zeros((0, self.dim), np.float32)
            return DecodedWindow(empty, offsets, ok, errors, np.zeros(0, np.float32))
        centroid_ids = np.frombuffer(b"".join(ids_parts), dtype="<u2")
        packed = np.frombuffer(b"".join(bit_parts), dtype=np.uint8).reshape(total, -1)
        raw = np.take(self.centroids, centroid_ids, axis=0)
        # one table row per (byte position, byte value): the residuals of the dims that byte holds
        rows = packed.astype(np.int32) + self._byte_offsets
        raw += np.take(self._byte_table, rows.ravel(), axis=0).reshape(total, self.dim)
        inv_norms = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", raw, raw)), 1e-12)
        return DecodedWindow(raw, offsets, ok, errors, inv_norms.astype(np.float32))

    @functools.cached_property
    def _byte_offsets(self) -> np.ndarray:
        return (np.arange(self.dim * self.nbits // 8) * 256).astype(np.int32)

    @functools.cached_property
    def _byte_table(self) -> np.ndarray:
        """(dim * nbits / 8 * 256, 8 / nbits) float32: residual values of every byte at every position."""
        per_byte = 8 // self.nbits
        byte_values = np.arange(256, dtype=np.uint8)[:, None]
        shifts = (np.arange(per_byte - 1, -1, -1) * self.nbits).astype(np.uint8)
        buckets = (byte_values >> shifts) & ((1 << self.nbits) - 1)  # (256, per_byte)
        dims = np.arange(self.dim).reshape(-1, per_byte)  # (n_bytes, per_byte)
        table = self.values[dims[:, None, :], buckets[None, :, :]]  # (n_bytes, 256, per_byte)
        return np.ascontiguousarray(table.reshape(-1, per_byte), dtype=np.float32)

    # -- serialisation ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The codec as ``.npz`` bytes (what the model directory's ``colbert_codec.npz`` holds)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            centroids=self.centroids,
            cutoffs=self.cutoffs,
            values=self.values,
            nbits=self.nbits,
            pool_factor=self.pool_factor,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ResidualCodec:
        """Invert :meth:`to_bytes`.

        >>> codec = fit_codec(_demo_vectors(), n_centroids=4)
        >>> ResidualCodec.from_bytes(codec.to_bytes()).hash == codec.hash
        True
        """
        try:
            with np.load(io.BytesIO(data)) as arrays:
                return cls(
                    centroids=arrays["centroids"].astype(np.float32),
                    cutoffs=arrays["cutoffs"].astype(np.float32),
                    values=arrays["values"].astype(np.float32),
                    nbits=int(arrays["nbits"]),
                    pool_factor=int(arrays["pool_factor"]) if "pool_factor" in arrays else 1,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInputError(f"not a colsplade codec: {exc}") from None


@dataclass(frozen=True)
class DecodedWindow:
    """Token vectors of a window of documents, concatenated.

    ``raw``: (total_tokens, dim) float32 centroid + residual, not yet unit length; ``inv_norms``:
    (total_tokens,) their inverse norms (MaxSim scales its similarities instead of the vectors);
    document i owns rows ``offsets[i]:offsets[i + 1]``; ``ok``: (n_docs,) bool, False where the blob
    was missing or corrupt; ``errors``: why, by position.
    """

    raw: np.ndarray
    offsets: np.ndarray
    ok: np.ndarray
    errors: dict[int, str]
    inv_norms: np.ndarray

    @property
    def vectors(self) -> np.ndarray:
        """(total_tokens, dim) float32 unit vectors."""
        out: np.ndarray = self.raw * self.inv_norms[:, None]
        return out

    def document(self, i: int) -> np.ndarray:
        """Document i's (n_i, dim) unit vectors."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        out: np.ndarray = self.raw[lo:hi] * self.inv_norms[lo:hi, None]
        return out


def default_n_centroids(n_tokens: int) -> int:
    """ColBERTv2's rule, a power of two near 16 * sqrt(tokens), kept to <= tokens / 8 and 65,536.

    >>> default_n_centroids(100_000), default_n_centroids(1_000_000), default_n_centroids(50)
    (4096, 8192, 4)
    """
    if n_tokens < 1:
        raise InvalidInputError("cannot fit a codec on zero token vectors")
    k = 2 ** math.floor(math.log2(16 * math.sqrt(n_tokens)))
    while k > 2 and k > n_tokens // 8:
        k //= 2
    return int(max(1, min(k, 1 << 16)))


def fit_codec(
    sample_vectors: np.ndarray | Sequence[np.ndarray],
    *,
    n_centroids: int | None = None,
    nbits: int = 1,
    pool_factor: int = 1,
    iterations: int = 8,
    max_sample: int = 1 << 18,
    seed: int = 0,
) -> ResidualCodec:
    """Fit a codec on token vectors (n, dim): spherical k-means, then per-dimension residual quantiles.

    ``sample_vectors``: an (n, dim) array of vectors as the codec will store them, or a sequence of
    documents' (n_i, dim) token vectors, which are pooled by ``pool_factor`` first (:func:`pool_tokens`).
    ``n_centroids`` defaults to :func:`default_n_centroids` of the sample; at most ``max_sample``
    vectors (drawn at random) are used. Deterministic for a given ``seed``.

    >>> codec = fit_codec(_demo_vectors(), n_centroids=4, seed=0)
    >>> codec.n_centroids, codec.dim, codec.nbits, len(codec.hash)
    (4, 16, 1, 16)
    """
    if isinstance(sample_vectors, np.ndarray):
        x = np.asarray(sample_vectors, dtype=np.float32)
    else:
        docs = [pool_tokens(np.asarray(d, dtype=np.float32), pool_factor) for d in sample_vectors if len(d)]
        x = np.concatenate(docs) if docs else np.zeros((0, 0), np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise InvalidInputError(f"fit_codec needs a non-empty (n, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidInputError("codec sample holds NaN or infinite values")
    rng = np.random.default_rng(seed)
    if len(x) > max_sample:
        x = x[rng.choice(len(x), max_sample, replace=False)]
    x = _normalize(x)
    k = n_centroids or default_n_centroids(len(x))
    k = min(k, len(x))
    centroids = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iterations):
        assign = _assign(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        counts = np.bincount(assign, minlength=k)
        empty = counts == 0
        if empty.any():
            # An empty cluster takes a random sample point, so no id is wasted.
            sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        centroids = _normalize(sums)
    residuals = x - centroids[_assign(x, centroids)]
    levels = 1 << nbits
    cut_q = np.arange(1, levels) / levels
    value_q = (np.arange(levels) + 0.5) / levels
    cutoffs = np.quantile(residuals, cut_q, axis=0).T.astype(np.float32)  # (dim, levels - 1)
    values = np.quantile(residuals, value_q, axis=0).T.astype(np.float32)  # (dim, levels)
    return ResidualCodec(centroids.astype(np.float32), cutoffs, values, nbits, pool_factor)


def pool_tokens(doc_token_vectors: np.ndarray, factor: int = 2, *, iterations: int = 4) -> np.ndarray:
    """Pool one document's (n, dim) unit token vectors into (ceil(n / factor), dim) unit vectors.

    Spherical k-means within the document, seeded with every ``factor``-th token (neighbours in a text are
    often alike; farthest-first seeding measured less stable on SciFact), so each pooled vector
    is the normalised mean of tokens that are alike (ColBERT token pooling: about half the vectors cost
    MaxSim almost nothing, as near-duplicate tokens add little). Deterministic; ``factor`` 1 returns the
    vectors as they are.

    >>> v = _demo_vectors()[:9]
    >>> pool_tokens(v, 2).shape, pool_tokens(v, 1) is v, pool_tokens(v[:1], 2).shape
    ((5, 16), True, (1, 16))
    """
    n = len(doc_token_vectors)
    k = -(-n // factor)
    if factor <= 1 or k >= n:
        return doc_token_vectors
    pooled = doc_token_vectors[::factor][:k].copy()
    for _ in range(iterations):
        # on the calling thread: one document's product, run once per ingested document
        assign = token_similarities(pooled, doc_token_vectors).argmax(axis=0)
        sums = np.zeros_like(pooled)
        np.add.at(sums, assign, doc_token_vectors)
        empty = np.bincount(assign, minlength=k) == 0
        sums[empty] = pooled[empty]  # a seed no token chose keeps its place
        pooled = _normalize(sums)
    return pooled.astype(np.float32, copy=False)


def _assign(
    x: np.ndarray, centroids: np.ndarray, chunk: int = 8192, *, calling_thread: bool = False
) -> np.ndarray:
    """Nearest centroid of each row of ``x``, ``chunk`` rows at a time (bounded memory); the products on
    the calling thread (``calling_thread``) or on BLAS's pool (the codec fit's large products)."""
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        rows = x[start : start + chunk]
        sims = token_similarities(rows, centroids) if calling_thread else rows @ centroids.T
        out[start : start + chunk] = sims.argmax(axis=1)
    return out


def maxsim_codes(query_vectors: np.ndarray, window: DecodedWindow) -> np.ndarray:
    """MaxSim of one query (m, dim) against every document of a decoded window: (n_docs,) float32.

    One matrix product over all the window's tokens, then a segmented max per document
    (``np.maximum.reduceat``); documents without tokens (or invalid) score 0.

    >>> codec = fit_codec(_demo_vectors(), n_centroids=4, seed=0)
    >>> w = codec.decode_many([codec.encode(_demo_vectors()[:3]), None, b"junk"])
    >>> scores = maxsim_codes(_demo_vectors()[:2], w)
    >>> scores.shape, bool(scores[0] > 1.5), scores[1:].tolist(), w.ok.tolist()
    ((3,), True, [0.0, 0.0], [True, False, False])
    """
    q = np.asarray(query_vectors, dtype=np.float32)
    n_docs = len(window.offsets) - 1
    scores = np.zeros(n_docs, dtype=np.float32)
    dim = window.raw.shape[1]
    if q.ndim != 2 or (len(q) and q.shape[1] != dim):
        raise InvalidInputError(f"query vectors must be (m, {dim}), got {q.shape}")
    if len(q) == 0 or len(window.raw) == 0:
        return scores
    sims = token_similarities(q, window.raw)  # (m, total_tokens), on the calling thread
    sims *= window.inv_norms  # cosine = dot of unit vectors
    lengths = np.diff(window.offsets)
    filled = np.flatnonzero(lengths > 0)
    best = np.maximum.reduceat(sims, window.offsets[filled], axis=1)  # (m, n_filled)
    scores[filled] = best.sum(axis=0)
    return scores


def _demo_vectors() -> np.ndarray:
    """40 random unit vectors of dim 16 (for the doctests)."""
    return _normalize(np.random.default_rng(7).standard_normal((40, 16)).astype(np.float32))
