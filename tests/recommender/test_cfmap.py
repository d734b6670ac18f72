"""The collaborative map's numerics: the randomized SVD computes what scikit-learn's does, and
the threaded sparse products give the bits of one plain product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from recommender.cfmap import _randomized_svd, _spmm


def _likes(users: int, papers: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(users, papers, density=0.05, random_state=rng, format="csr")
    m.data[:] = 1.0
    return m


@pytest.mark.parametrize(
    ("users", "papers", "rank"),
    [(120, 400, 30), (400, 120, 30), (60, 80, 59), (40, 300, 39)],  # wide, tall, square-ish
)
def test_randomized_svd_is_scikit_learns(users: int, papers: int, rank: int) -> None:
    r = _likes(users, papers, seed=users)
    s, v = _randomized_svd(r, rank)
    _, s_ref, vt_ref = randomized_svd(r, rank, n_iter=5, random_state=0)
    assert s.shape == (rank,) and v.shape == (papers, rank)
    np.testing.assert_allclose(s, s_ref, rtol=1e-9, atol=1e-12)
    kept = s_ref > 1e-8 * s_ref[0]  # a null space has no vectors of its own to compare
    assert kept.sum() >= rank - 3
    np.testing.assert_allclose(v[:, kept], vt_ref.T[:, kept], atol=1e-8)  # the same signs too


def test_randomized_svd_of_a_rank_deficient_matrix_is_orthonormal() -> None:
    # a tiny install where many libraries are the same: fewer distinct rows than factors
    base = _likes(5, 60, seed=3).toarray()
    r = sp.csr_matrix(np.vstack([base] * 6))
    s, v = _randomized_svd(r, 20)
    np.testing.assert_allclose(v.T @ v, np.eye(20), atol=1e-8)
    _, s_ref, _ = randomized_svd(r, 20, n_iter=5, random_state=0)
    np.testing.assert_allclose(s[:5], s_ref[:5], rtol=1e-9)
    assert np.all(s[5:] < 1e-8 * s[0])


@pytest.mark.parametrize("columns", [1, 63, 64, 65, 512])
def test_threaded_products_have_the_bits_of_one_product(columns: int) -> None:
    rng = np.random.default_rng(columns)
    a = sp.random(300, 200, density=0.05, random_state=rng, format="csr", dtype=np.float32)
    b = rng.standard_normal((200, columns)).astype(np.float32)
    assert np.array_equal(_spmm(a, b), a @ b)
    at = a.T.tocsr()
    assert np.array_equal(_spmm(at, b, first=a), at @ (a @ b))
