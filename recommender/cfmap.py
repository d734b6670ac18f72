"""Stages 2–3, the collaborative map: item factors from who liked what (truncated SVD of the
like matrix), and a ridge map from a paper's text features to its factors, so that a paper
nobody has liked yet (every new paper) gets predicted factors from its text alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from sklearn.preprocessing import normalize

from recommender.config import RecommenderConfig
from recommender.exact import one_blas_thread
from recommender.state import STORE_DTYPE, _Fitted
from recommender.types import Feedback

SVD_POWER_ITERATIONS = 5  # randomized SVD: power iterations (scikit-learn's n_iter)
SVD_OVERSAMPLES = 10  # randomized SVD: extra random vectors (scikit-learn's n_oversamples)
CG_TINY = 1e-30  # ridge CG: keeps the step sizes finite when a column has converged to zero
SAMPLE_SEED = 0  # the libraries the map learns from, when there are more than cf_max_libraries
MAP_MAX_PAPERS = 30_000  # the text → factors map is fitted on at most this many liked papers
MAX_THREADS = 4  # sparse × dense products: at most this many threads (`_spmm`)
SPMM_BLOCK = 64  # sparse × dense products: columns per block (`_spmm`)
CG_TOLERANCE = 1e-12  # ridge CG: stop when every residual² ≤ this × the largest ‖XᵀY column‖²


class _Map(NamedTuple):
    """What `_learn_map` learns from a set of libraries."""

    text_map: np.ndarray  # features × rank (float32): text → factors in the target scale
    factors: np.ndarray  # liked papers × rank (float32): rows of V
    rows: np.ndarray  # corpus row of each liked paper (ascending)
    singular: np.ndarray  # rank singular values (float32)
    popularity: np.ndarray  # likes of each liked paper


def _library_rows(f: _Fitted, libraries: Sequence[Feedback]) -> list[np.ndarray]:
    """The corpus rows each library liked (sorted, distinct; libraries without a like in the
    corpus are left out), in the order of `libraries`."""
    out = []
    for fb in libraries:
        liked = {f.index[lk.doc_id] for lk in fb.likes if lk.doc_id in f.index}
        if liked:
            out.append(np.array(sorted(liked), dtype=np.int64))
    return out


def _sample(libraries: list[np.ndarray], cap: int) -> list[np.ndarray]:
    """At most `cap` of `libraries` (0: all): a seeded sample, in their order, so the same
    libraries give the same sample on every machine."""
    if cap <= 0 or len(libraries) <= cap:
        return libraries
    return [libraries[i] for i in _seeded_subset(len(libraries), cap)]


def _seeded_subset(n: int, cap: int) -> np.ndarray:
    """`cap` of range(n), ascending, drawn by a fixed seed."""
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(n, cap, replace=False))


def _fit_map(f: _Fitted, libraries: Sequence[np.ndarray], cfg: RecommenderConfig) -> None:
    """Learn item factors from who liked what (`libraries`: each one's liked corpus rows), and
    a ridge map text → factors (sets the map fields of `f`; leaves them None with fewer than
    `cf_min_users` libraries)."""
    learned = _learn_map(f.matrix, libraries, cfg)
    if learned is None:
        return
    v, s = learned.factors, learned.singular
    if cfg.cf_prior_likes > 0:  # shrink rarely-liked papers' factors toward their text's
        predicted = np.asarray(f.matrix[learned.rows] @ learned.text_map) / (
            s**cfg.cf_singular_power
        )
        n_likes = learned.popularity[:, None].astype(np.float32)
        v = (n_likes * v + cfg.cf_prior_likes * predicted) / (n_likes + cfg.cf_prior_likes)
    factor_row = np.full(len(f.ids), -1, dtype=np.int32)
    factor_row[learned.rows] = np.arange(len(learned.rows), dtype=np.int32)
    f.text_map = learned.text_map.astype(STORE_DTYPE)
    f.factors = v.astype(STORE_DTYPE)
    f.factor_row = factor_row
    f.singular = s


def _learn_map(
    matrix: sp.csr_matrix,
    libraries: Sequence[np.ndarray],
    cfg: RecommenderConfig,
    iterations: int | None = None,
) -> _Map | None:
    """Item factors and the text → factors map from libraries given as corpus rows of
    `matrix` (None: fewer than `cf_min_users` libraries, or too few liked papers);
    `iterations`: conjugate-gradient steps, if fewer than `cf_iterations`.

    R = libraries × papers (binary), columns scaled by popularity^-β, rows L2-normalised;
    R ≈ U S Vᵀ (randomized truncated SVD). Each liked paper's factor is its row of V; the
    map W minimises ‖X W − V S^α‖² + λ‖W‖² over the liked papers' TF-IDF rows X, solved by
    block conjugate gradient. A paper nobody liked gets predicted factors x W."""
    libraries = [lib for lib in libraries if len(lib)]
    n_users = len(libraries)
    if n_users < max(2, cfg.cf_min_users):
        return None
    cols = np.concatenate(libraries)
    rows = np.repeat(np.arange(n_users), [len(lib) for lib in libraries])
    likes = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(n_users, matrix.shape[0])
    )
    pop = np.asarray(likes.sum(axis=0)).ravel()
    liked_items = np.flatnonzero(pop > 0)
    rank = min(cfg.cf_rank, n_users - 1, len(liked_items) - 1)
    if rank < 1:
        return None
    r = likes[:, liked_items] @ sp.diags(pop[liked_items] ** -cfg.cf_popularity_exponent)
    r = normalize(r.tocsr())
    s64, v64 = _randomized_svd(r, rank)
    v = np.ascontiguousarray(v64, dtype=np.float32)  # liked papers × rank
    target = (v64 * (s64**cfg.cf_singular_power)).astype(np.float32)
    del v64  # float64, papers × rank: not held through the CG
    steps = cfg.cf_iterations if iterations is None else min(iterations, cfg.cf_iterations)
    fit_rows = np.arange(len(liked_items))
    if len(fit_rows) > MAP_MAX_PAPERS:  # a regression of 512 targets: a seeded sample will do
        fit_rows = _seeded_subset(len(fit_rows), MAP_MAX_PAPERS)
    w = _ridge_cg(matrix[liked_items[fit_rows]], target[fit_rows], cfg.cf_lambda, steps)
    return _Map(w, v, liked_items, s64.astype(np.float32), pop[liked_items])


def _randomized_svd(r: sp.csr_matrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """The `rank` largest singular values of `r` (libraries × papers) and their right singular
    vectors (papers × rank), float64: what scikit-learn's `randomized_svd(r, rank, n_iter=5,
    random_state=0)` computes — the same random start, the same subspace (Halko et al.), the same
    signs; equal up to rounding, not bit for bit — in a fraction of its time.

    With `a` the matrix on its short side (libraries × papers when there are fewer libraries):
    scikit-learn normalises after every product by `a` and by `aᵀ`, on the long side too (5 ×
    taller at 100,000 subscribers), then orthonormalises y = aᵀ (a aᵀ)^q Ω, a tall QR. Here
    the power steps normalise on the short side only (which keeps the same span), and the tall
    QR is never formed: with z orthonormal, y = aᵀ z is well conditioned, so yᵀy = zᵀ a aᵀ z
    = L Lᵀ (Cholesky) gives the basis y L⁻ᵀ, and everything else follows on the short side.

    LAPACK on one thread: its results depend on the thread count, and the factors decide every
    ranking; the sparse products run on every core (`_spmm`: the same bits)."""
    wide = r.shape[0] <= r.shape[1]
    a = r if wide else r.T.tocsr()  # short side × long side
    at = a.T.tocsr()
    size = min(rank + SVD_OVERSAMPLES, a.shape[0])
    with one_blas_thread():
        z = np.random.RandomState(0).normal(size=(a.shape[0], size))
        for _ in range(SVD_POWER_ITERATIONS):  # z spans (a aᵀ)^i Ω
            z, _ = linalg.lu(_spmm(a, b=z, first=at), permute_l=True, check_finite=False)
        z, _ = linalg.qr(z, mode="economic", check_finite=False)
        w = _spmm(a, b=z, first=at)  # a y
        chol = _cholesky(z.T @ w)  # of yᵀ y
        if chol is None:  # y (nearly) rank-deficient, a tiny install: the tall QR
            q, _ = linalg.qr(_spmm(at, z), mode="economic", check_finite=False)
            uhat, s, short_t = linalg.svd(_spmm(a, q).T, full_matrices=False)
            long = q @ uhat
        else:  # q = y L⁻ᵀ: qᵀ aᵀ = L⁻¹ (a y)ᵀ, and q uhat = aᵀ z L⁻ᵀ uhat
            b = linalg.solve_triangular(chol, w.T, lower=True, check_finite=False)
            uhat, s, short_t = linalg.svd(b, full_matrices=False)
            coef = linalg.solve_triangular(chol.T, uhat, lower=False, check_finite=False)
            long = _spmm(at, z @ coef)
        # aᵀ ≈ long · diag(s) · short_t: long side × size, size × short side
    # scikit-learn's signs: each component's largest entry on the libraries' side is positive
    libs = short_t.T if wide else long
    signs = np.sign(libs[np.abs(libs).argmax(axis=0), np.arange(libs.shape[1])])
    papers = long if wide else short_t.T
    papers *= signs  # in place: no second papers × rank array
    return s[:rank], papers[:, :rank]


def _cholesky(gram: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of a symmetric positive definite matrix (None: not safely one,
    a condition number above ~1e12)."""
    try:
        chol = linalg.cholesky((gram + gram.T) / 2, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    d = np.diag(chol)
    return chol if d.min() > 1e-6 * d.max() else None


def _spmm(a: sp.csr_matrix, b: np.ndarray, first: sp.csr_matrix | None = None) -> np.ndarray:
    """a @ b for a sparse `a` and a dense `b` with many columns (a @ (first @ b) with `first`),
    by blocks of columns, on up to MAX_THREADS threads (scipy releases the GIL): every column
    is summed in the same order as by one call, so the result has the same bits on any number
    of cores; with `first`, the tall intermediate is never held whole."""
    n = b.shape[1]
    out = np.empty((a.shape[0], n), dtype=np.result_type(a.dtype, b.dtype))

    def block(lo: int) -> None:
        part = np.ascontiguousarray(b[:, lo : lo + SPMM_BLOCK])
        out[:, lo : lo + SPMM_BLOCK] = a @ (part if first is None else first @ part)

    starts = range(0, n, SPMM_BLOCK)
    workers = min(os.cpu_count() or 1, MAX_THREADS, len(starts))
    if workers == 1:
        for lo in starts:
            block(lo)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    return out


def _ridge_cg(x: sp.csr_matrix, y: np.ndarray, lam: float, iters: int) -> np.ndarray:
    """Solve (XᵀX + λI) W = XᵀY for all columns of Y at once (conjugate gradient per column,
    vectorised; XᵀX is never formed)."""
    xt = x.T.tocsr()
    b = np.asarray(_spmm(xt, y), dtype=np.float32)
    w = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = (r * r).sum(axis=0)
    tiny = np.float32(CG_TINY)
    stop = CG_TOLERANCE * max(1.0, float((b * b).sum(axis=0).max()))
    tmp = np.empty_like(b)  # every elementwise product goes here: no new 50 MB array per step
    for _ in range(max(1, iters)):
        ap = np.asarray(_spmm(xt, p, first=x), dtype=np.float32)
        ap += np.multiply(p, lam, out=tmp)
        alpha = rs / (np.multiply(p, ap, out=tmp).sum(axis=0) + tiny)
        w += np.multiply(p, alpha, out=tmp)
        r -= np.multiply(ap, alpha, out=tmp)
        rs_new = np.multiply(r, r, out=tmp).sum(axis=0)
        if float(rs_new.max()) <= stop:
            break
        p *= rs_new / (rs + tiny)  # p ← r + β p
        p += r
        rs = rs_new
    return w
