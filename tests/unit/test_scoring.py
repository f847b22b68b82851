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


# -- fusion of the window's scores -------------------------------------------------------------------


def test_zscore_fusion_arithmetic_and_missing_candidates():
    from colsplade.scoring import fuse_scores, zscores

    maxsim = np.array([10.0, 12.0, 11.0, 9.0])
    bm25 = np.array([3.0, np.nan, 7.0, 5.0])  # candidate 1 came from another source only
    filled = np.array([3.0, 3.0, 7.0, 5.0])  # it takes BM25's lowest score in the window
    expected = (maxsim - maxsim.mean()) / maxsim.std() + 0.5 * (filled - filled.mean()) / filled.std()
    got = fuse_scores({"maxsim": maxsim, "bm25": bm25}, {"maxsim": 1.0, "bm25": 0.5})
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_array_equal(zscores(np.array([4.0])), [0.0])  # one candidate: nothing to standardise
    np.testing.assert_array_equal(zscores(np.array([np.nan, np.nan])), [0.0, 0.0])


def test_zscore_fusion_is_scale_free_and_weight_zero_is_maxsim():
    from colsplade.scoring import fuse_scores

    rng = np.random.default_rng(0)
    maxsim, bm25 = rng.normal(20, 3, 50), rng.gamma(2.0, 5.0, 50)
    base = fuse_scores({"maxsim": maxsim, "bm25": bm25}, {"maxsim": 1.0, "bm25": 0.5})
    # BM25 grows with query length and IDF, MaxSim with the query's tokens: an affine change of either
    # source's scale must not change the fused order
    moved = fuse_scores({"maxsim": 3 * maxsim + 7, "bm25": 0.1 * bm25 - 2}, {"maxsim": 1.0, "bm25": 0.5})
    np.testing.assert_allclose(base, moved, rtol=1e-9, atol=1e-9)
    alone = fuse_scores({"maxsim": maxsim, "bm25": bm25}, {"maxsim": 1.0, "bm25": 0.0})
    assert list(np.argsort(-alone)) == list(np.argsort(-maxsim))


def test_rank_fusion_arithmetic():
    from colsplade.scoring import fuse_scores

    maxsim = np.array([0.9, 0.5, 0.7])
    bm25 = np.array([np.nan, 8.0, 3.0])
    got = fuse_scores({"maxsim": maxsim, "bm25": bm25}, {"maxsim": 1.0, "bm25": 2.0}, "rrf", rrf_k=60)
    # MaxSim ranks 0, 2, 1; BM25 ranks 1, 2 and did not return 0
    expected = [1 / 61, 1 / 63 + 2 / 61, 1 / 62 + 2 / 62]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_fusion_refuses_bad_input():
    from colsplade.scoring import fuse_scores

    a, b = np.ones(3), np.ones(2)
    with pytest.raises(ValueError, match="one entry per candidate"):
        fuse_scores({"maxsim": a, "bm25": b}, {"maxsim": 1.0, "bm25": 1.0})
    with pytest.raises(ValueError, match="no fusion weight"):
        fuse_scores({"maxsim": a, "bm25": a}, {"maxsim": 1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        fuse_scores({"maxsim": a}, {"maxsim": -1.0})
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse_scores({"maxsim": a}, {"maxsim": 1.0}, "max")
    with pytest.raises(ValueError, match="at least one"):
        fuse_scores({}, {})


@pytest.mark.parametrize("n_docs_tokens", [0, 1, 63, 64, 65, 1000, 7088])
def test_token_similarities_match_one_product_across_blocks(n_docs_tokens: int) -> None:
    """Blocked so BLAS keeps each product on the calling thread; the values are the one product's."""
    from colsplade.scoring import SINGLE_THREAD_PRODUCT, token_similarities

    rng = np.random.default_rng(n_docs_tokens)
    q = rng.standard_normal((32, 128)).astype(np.float32)
    d = rng.standard_normal((n_docs_tokens, 128)).astype(np.float32)
    got = token_similarities(q, d)
    assert got.shape == (32, n_docs_tokens) and got.dtype == np.float32
    np.testing.assert_allclose(got, q @ d.T, rtol=1e-5, atol=1e-4)
    assert SINGLE_THREAD_PRODUCT // (32 * 128) == 64  # the block the window's product is cut into


def test_codec_assign_on_the_calling_thread_picks_the_nearest_centroid() -> None:
    """The per-document assignment (blocked products) gives the one product's argmax."""
    from colsplade.scoring import fit_codec

    rng = np.random.default_rng(3)
    sample = rng.standard_normal((4000, 32)).astype(np.float32)
    codec = fit_codec(sample, n_centroids=256, nbits=2, seed=0)
    doc = rng.standard_normal((300, 32)).astype(np.float32)
    np.testing.assert_array_equal(codec.assign(doc), (doc @ codec.centroids.T).argmax(axis=1))


def test_token_similarities_blocks_rows_past_the_limit_too() -> None:
    from colsplade.scoring import token_similarities

    rng = np.random.default_rng(5)
    q = rng.standard_normal((2100, 128)).astype(np.float32)  # 2100 x 128 > the product limit alone
    d = rng.standard_normal((300, 128)).astype(np.float32)
    np.testing.assert_allclose(token_similarities(q, d), q @ d.T, rtol=1e-5, atol=1e-4)
