"""colsplade.scoring: MaxSim against a brute-force reference, sparse dot, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from colsplade.scoring import (
    dequantize_bits,
    dequantize_int8,
    hamming_maxsim,
    maxsim,
    maxsim_batch,
    maxsim_matrix,
    quantize_bits,
    quantize_int8,
    sparse_dot,
)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_force(q: np.ndarray, d: np.ndarray) -> float:
    total = 0.0
    for qi in q:
        best = -np.inf
        for dj in d:
            best = max(best, float(sum(float(a) * float(b) for a, b in zip(qi, dj, strict=True))))
        total += best if d.shape[0] else 0.0
    return total


def test_maxsim_hand_example() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.6, 0.8], [1.0, 0.0], [-1.0, 0.0]])
    # query token 1 best matches d1 (1.0), token 2 best matches d0 (0.8)
    assert maxsim(q, d) == pytest.approx(1.8)


@pytest.mark.parametrize("seed", range(5))
def test_maxsim_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = _unit(rng, 7, 16)
    docs = [_unit(rng, int(n), 16) for n in rng.integers(1, 30, size=9)]
    expected = [_brute_force(q, d) for d in docs]
    assert [maxsim(q, d) for d in docs] == pytest.approx(expected, abs=1e-5)
    assert maxsim_batch(q, docs) == pytest.approx(expected, abs=1e-5)
    # chunking must not change anything
    assert maxsim_batch(q, docs, chunk_tokens=10) == pytest.approx(expected, abs=1e-5)


def test_maxsim_batch_empty_docs_and_query() -> None:
    q = np.ones((2, 4), dtype=np.float32)
    docs = [np.zeros((0, 4), dtype=np.float32), np.ones((1, 4), dtype=np.float32)]
    assert maxsim_batch(q, docs).tolist() == [0.0, 8.0]
    assert maxsim_batch(np.zeros((0, 4)), docs).tolist() == [0.0, 0.0]
    assert maxsim_batch(q, []).shape == (0,)


def test_maxsim_matrix_shape() -> None:
    rng = np.random.default_rng(0)
    qs = [_unit(rng, 3, 8), _unit(rng, 5, 8)]
    ds = [_unit(rng, 4, 8), _unit(rng, 2, 8), _unit(rng, 6, 8)]
    m = maxsim_matrix(qs, ds)
    assert m.shape == (2, 3)
    assert m[1, 2] == pytest.approx(maxsim(qs[1], ds[2]), abs=1e-6)


def test_maxsim_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="dimension mismatch"):
        maxsim(np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="2-D"):
        maxsim(np.ones(4), np.ones((3, 4)))
    with pytest.raises(ValueError, match="dim"):
        maxsim_batch(np.ones((2, 4)), [np.ones((3, 5))])


def test_sparse_dot() -> None:
    a = {"cat": 1.5, "dog": 0.5, "fish": 2.0}
    b = {"cat": 2.0, "fish": 1.0, "bird": 3.0}
    assert sparse_dot(a, b) == pytest.approx(5.0)
    assert sparse_dot(b, a) == pytest.approx(5.0)
    assert sparse_dot({}, {}) == 0.0


def test_int8_round_trip_and_scores() -> None:
    rng = np.random.default_rng(1)
    q, d = _unit(rng, 8, 128), _unit(rng, 40, 128)
    qq, dq = quantize_int8(q), quantize_int8(d)
    assert qq.dtype == np.int8 and dq.shape == d.shape
    assert np.abs(dequantize_int8(dq) - d).max() <= 0.5 / 127 + 1e-6
    assert maxsim(dequantize_int8(qq), dequantize_int8(dq)) == pytest.approx(maxsim(q, d), abs=0.02)
    assert quantize_int8(np.array([[2.0, -3.0]])).tolist() == [[127, -127]]


def test_bits_pack_and_hamming_maxsim() -> None:
    rng = np.random.default_rng(2)
    q, d = _unit(rng, 6, 64), _unit(rng, 25, 64)
    qb, db = quantize_bits(q), quantize_bits(d)
    assert qb.shape == (6, 8) and qb.dtype == np.uint8
    signs = np.sign(dequantize_bits(db, 64))
    assert np.array_equal(signs > 0, d > 0)
    # Hamming MaxSim equals MaxSim of the +-1/sqrt(dim) unpacked vectors
    expected = maxsim(dequantize_bits(qb, 64), dequantize_bits(db, 64))
    assert hamming_maxsim(qb, db, 64) == pytest.approx(expected, abs=1e-5)
    assert hamming_maxsim(qb, db[:0], 64) == 0.0
    with pytest.raises(ValueError):
        quantize_bits(np.ones(8))
