"""Stage 4, interests: the liked papers of all libraries are clustered into global topics at
fit time (seeded spherical k-means with restarts, on exact grid rows); a person's interests are
the topics holding enough of their likes, found for a whole batch at once. The text method
(fallback / "tfidf-centroid") clusters each person's likes instead. `_share_order` gives each
interest its share of a digest.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, RIGHT_BITS, on_grid, one_blas_thread
from recommender.state import _Fitted

if TYPE_CHECKING:
    from recommender.context import _Items
    from recommender.profiles import _Plan

# interest topics: at most one per this many liked papers (a topic is a field, not a paper)
TOPIC_MIN_PAPERS = 50
KMEANS_RESTARTS = 8  # interest topics: best of this many seeded k-means runs
TOPIC_MAX_PAPERS = 20_000  # interest topics: k-means on at most this many liked papers (seeded)
TOPIC_KMEANS_ITERATIONS = 20  # interest topics: at most this many steps per k-means run
TEXT_KMEANS_ITERATIONS = 10  # text method: at most this many steps of a person's k-means


def _learn_topics(
    factors: np.ndarray, singular: np.ndarray, cfg: RecommenderConfig
) -> np.ndarray | None:
    """The interest topics of a fit (None: too few liked papers, or switched off)."""
    n_topics = min(cfg.interest_topics, factors.shape[0] // TOPIC_MIN_PAPERS)
    if n_topics <= 1:
        return None
    if factors.shape[0] > TOPIC_MAX_PAPERS:  # the topics of a big install, at a bounded cost
        rows = np.random.default_rng(0).choice(factors.shape[0], TOPIC_MAX_PAPERS, replace=False)
        factors = factors[np.sort(rows)]
    return _spherical_kmeans_dense(factors.astype(np.float64) * singular, n_topics)


def _topic_sims(fac: np.ndarray, f: _Fitted) -> np.ndarray:
    """Cosine of factor rows (unscaled, as in `f.factors`) to every interest topic: rows ×
    topics, an exact product (`recommender.exact`)."""
    assert f.singular is not None and f.topics is not None
    sims: np.ndarray = on_grid(fac * f.singular, LEFT_BITS) @ f.topics.T
    return sims


def _nearest_topics(
    f: _Fitted, rows: list[int], factors: np.ndarray, predicted: np.ndarray, power: float
) -> list[int]:
    """The interest topic (0 … topics − 1) of each doc (`rows`: its corpus row, −1 outside
    the corpus): its nearest topic, from its factors learned at fit time (`factors`:
    `f.factors`), else the ones predicted from its text (`predicted`: one row per doc,
    in the scale of the targets, i.e. × singular^power)."""
    assert f.factor_row is not None and f.singular is not None
    frow = [int(f.factor_row[r]) if r >= 0 else -1 for r in rows]
    fac = predicted / f.singular**power
    true = [i for i, r in enumerate(frow) if r >= 0]
    fac[true] = factors[[frow[i] for i in true]]
    return [int(t) for t in _topic_sims(fac, f).argmax(axis=1)]


def _several_interests(
    plans: list[_Plan], items: _Items, cfg: RecommenderConfig
) -> np.ndarray | None:
    """Which users may have several interests (≥ 2 topics hold enough of their likes),
    for the whole batch at once (None: no topics)."""
    if items.topic_sim is None:
        return None
    n_topics = items.topic_sim.shape[1]
    lens = np.fromiter((len(p.liked) for p in plans), np.int64, len(plans))
    slots = np.fromiter((s for p in plans for _, s, _ in p.liked), np.int64, int(lens.sum()))
    user = np.repeat(np.arange(len(plans)), lens)
    counts = np.bincount(
        user * n_topics + items.topic_sim[slots].argmax(axis=1),
        minlength=len(plans) * n_topics,
    ).reshape(len(plans), n_topics)
    need = np.maximum(cfg.interest_min_likes, cfg.interest_min_share * lens)
    return np.asarray((counts >= need[:, None]).sum(axis=1) >= 2)


def _interests(p: _Plan, items: _Items, cfg: RecommenderConfig) -> list[list[int]]:
    """The person's interests as groups of positions in `p.liked` (one group: a single
    interest, the profile of all likes).

    cf-map: each liked paper's topic is the nearest of the global topics learned at fit
    time; a topic with ≥ `interest_min_likes` likes and ≥ `interest_min_share` of them is
    an interest, and every other like joins the interest whose topic is closest to it."""
    n = len(p.liked)
    if items.topic_sim is not None:
        if n < 2 * max(1, cfg.interest_min_likes):
            return [list(range(n))]
        sims = items.topic_sim[[s for _, s, _ in p.liked]]
        counts = np.bincount(sims.argmax(axis=1), minlength=sims.shape[1])
        need = max(cfg.interest_min_likes, cfg.interest_min_share * n)
        topics = np.flatnonzero(counts >= need)
        if len(topics) < 2:
            return [list(range(n))]
        labels = sims[:, topics].argmax(axis=1)
        return [np.flatnonzero(labels == g).tolist() for g in range(len(topics))]
    m = min(cfg.max_interests, n // max(1, cfg.likes_per_interest))
    if m <= 1:
        return [list(range(n))]
    labels = _spherical_kmeans(items.text[[s for _, s, _ in p.liked]], m)
    groups = [[int(i) for i in np.flatnonzero(labels == c)] for c in range(m)]
    return [g for g in groups if g]


def _spherical_kmeans(x: sp.csr_matrix, m: int, iters: int = TEXT_KMEANS_ITERATIONS) -> np.ndarray:
    """Tiny deterministic spherical k-means (density-weighted farthest-first init)."""
    n = x.shape[0]
    sims = np.asarray((x @ x.T).todense())
    density = sims.sum(axis=1)  # short texts: plain farthest-first would pick outliers
    centers = [int(np.argmax(density))]
    while len(centers) < m:
        closest = np.clip(sims[:, centers].max(axis=1), 0.0, 1.0)
        centers.append(int(np.argmax(density * (1.0 - closest))))
    labels = np.asarray(sims[:, centers].argmax(axis=1)).ravel()
    for _ in range(iters):
        onehot = sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(m, n))
        cent = normalize(onehot @ x)
        new = np.asarray((x @ cent.T).todense()).argmax(axis=1).ravel()
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _spherical_kmeans_dense(x: np.ndarray, m: int, restarts: int = KMEANS_RESTARTS) -> np.ndarray:
    """Unit centres of `m` clusters of the rows of `x`: spherical k-means from `restarts`
    k-means++ seedings (fixed seeds), the best by total cosine. One seeding alone often lands in
    a poor local optimum on a small install; the best of a few is stable. Every product runs on
    grid rows (`recommender.exact`), so the assignments are the same on every machine.
    Returns m × dim float32 on the RIGHT_BITS grid."""
    x = on_grid(x, LEFT_BITS)

    def run(seed: int) -> tuple[np.ndarray, float]:
        return _kmeans_once(x, m, np.random.default_rng(seed))

    # the runs are independent: side by side on the cores, BLAS on one thread in each (exact
    # products: the threads change no bit), chosen in the order of their seeds
    seeds = range(max(1, restarts))
    with (
        one_blas_thread(),
        ThreadPoolExecutor(min(os.cpu_count() or 1, len(seeds))) as pool,
    ):
        runs = list(pool.map(run, seeds))
    best, best_fit = x[:m], -np.inf
    for cent, fit in runs:
        if fit > best_fit:  # the first of equals: deterministic
            best, best_fit = cent, fit
    return best


def _kmeans_once(
    x: np.ndarray, m: int, rng: np.random.Generator, iters: int = TOPIC_KMEANS_ITERATIONS
) -> tuple[np.ndarray, float]:
    """One run of spherical k-means on grid rows: (centres, total cosine of the rows)."""
    n = x.shape[0]
    centers = [int(rng.integers(n))]
    closest = x @ x[centers[0]]
    for _ in range(1, m):  # next seed: far from the chosen ones (probability ∝ distance²)
        d2 = np.clip(1.0 - closest.astype(np.float64), 0.0, None) ** 2
        c = int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0 else int(rng.integers(n))
        centers.append(c)
        closest = np.maximum(closest, x @ x[c])
    cent = on_grid(x[centers], RIGHT_BITS)
    labels = np.full(n, -1)
    for _ in range(iters):
        new = (x @ cent.T).argmax(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        onehot = sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(m, n))
        sums = np.asarray(onehot @ x)  # sequential sums (scipy): the same on every machine
        empty = ~sums.any(axis=1)
        sums[empty] = cent[empty]  # an emptied cluster keeps its centre
        cent = on_grid(sums, RIGHT_BITS)
    return cent, float((x @ cent.T).max(axis=1).astype(np.float64).sum())


def _share_order(groups: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Order of a pool for several interests (`groups`: interests × pool scores, `sizes`: the
    interests' like counts): every candidate belongs to the interest that scores it highest,
    and interest g's r-th best candidate is placed at (r + ½) / share_g — the Sainte-Laguë
    sequence, so each interest holds its share of every prefix (2:1 → A B A A B A …) and a
    thin interest's place goes to the others once its candidates run out. Vectorised."""
    g, n = groups.shape
    own = groups.argmax(axis=0)
    best = groups[own, np.arange(n)]
    by_group = np.lexsort((-best, own))  # owner, then best first
    first = np.searchsorted(own[by_group], np.arange(g))
    place = np.empty(n, dtype=np.float64)
    place[by_group] = np.arange(n) - first[own[by_group]]
    share = sizes / sizes.sum()
    place = (place + 0.5) / share[own]
    return np.lexsort((-best, place))
