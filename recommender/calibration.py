"""Calibration at fit time: how far to trust the collaborative factors, decided from the
install's own likes.

Why it is needed: a liked paper's *learned* factors say who reads it, but only as well as the
libraries they were learned from. From thousands of full libraries they are the best signal
there is; from three-paper libraries (every young install) the SVD has almost nothing to find
(a flat spectrum) and the learned factors of a liked paper are mostly noise, while the factors
*predicted* from its text by the map are not: they are the map's best guess, in the same
space as the candidates' (which are always predicted — every new paper is). A person with
three likes in a mature install is the same case in small: the mean of three learned factor
rows is a noisy profile, the mean of many is not.

So a profile mixes the two, per person: with n likes,

    profile = n/(n + m) · unit(mean learned factors) + m/(n + m) · unit(mean predicted factors)

(m = `profile_prior_likes`, pseudo-likes on the text's side: m = 0 is the learned factors
alone, m = ∞ the predicted ones alone), and the score blends in the TF-IDF centroid cosine
with `text_weight` w: (1 − w) · factor cosine + w · text cosine.

How m and w are chosen: a seeded share (`calibration_holdout`) of the liked papers is held
out as if they were the new papers of a digest — nobody's likes on them are seen — a second
map is learned from the other likes, and every library with likes on both sides ranks all
held-out papers under variants (m, w) of the grid, as `rank` would. The objective is the
person's nDCG@10 + recall@50 on their held-out likes, averaged over the libraries. A
coordinate search: the best m at w = 0; then w for that m — whose text product costs ranking
time, so the smallest w within one standard error (of the paired per-library difference) of
the best w (the "one-standard-error rule"); then the best m again for that w. With too few
libraries to measure, the fallback values are used.

Deterministic: the held-out papers and the measured libraries are drawn by a seeded generator
over id-ordered papers, and the products run on the exact grids of `recommender.exact`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.cfmap import _learn_map, _Map, _sample
from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, RIGHT_BITS, on_grid
from recommender.profiles import _profile_alpha
from recommender.selection import _top_rows
from recommender.state import _Fitted
from recommender.types import Calibration

PRIOR_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, math.inf)  # profile_prior_likes m
TEXT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)  # text_weight w (1: the map is off)
# when the held-out likes cannot be measured (calibration off, too few libraries): values within
# 0.004 nDCG@10 of the best variant at every library size on CiteULike (docs/recommender.md)
FALLBACK_PRIOR_LIKES = 10.0
FALLBACK_TEXT_WEIGHT = 0.2
MAX_LIBRARIES = 5000  # the second map learns from at most this many libraries (a seeded sample)
MIN_USERS = 20  # libraries with likes on both sides needed to measure anything
# the second map's ridge solve stops after this many conjugate-gradient steps: within ~2e-4
# (relative) of the converged map on CiteULike, enough to compare variants, at a third of the time
CG_STEPS = 10
MAX_USERS = 1000  # at most this many libraries are measured (a seeded sample): bounds the time
NDCG_AT = 10  # the objective: nDCG@NDCG_AT + recall@RECALL_AT on the held-out likes
RECALL_AT = 50


def _fallback(cfg: RecommenderConfig) -> Calibration:
    prior = FALLBACK_PRIOR_LIKES if cfg.profile_prior_likes is None else cfg.profile_prior_likes
    text = FALLBACK_TEXT_WEIGHT if cfg.text_weight is None else cfg.text_weight
    return Calibration(prior, text, 0, math.nan, ())


def _calibrate(f: _Fitted, libraries: Sequence[np.ndarray], cfg: RecommenderConfig) -> Calibration:
    """The profile prior m and text weight w for this install (`libraries`: each library's
    liked corpus rows, as `recommender.cfmap._library_rows` gives them). Settings the config
    fixes are kept; the others are measured on held-out likes (module docstring)."""
    priors = PRIOR_GRID if cfg.profile_prior_likes is None else (cfg.profile_prior_likes,)
    texts = TEXT_GRID if cfg.text_weight is None else (cfg.text_weight,)
    if len(priors) == 1 and len(texts) == 1:
        return Calibration(priors[0], texts[0], 0, math.nan, ())
    if cfg.calibration_holdout <= 0:
        return _fallback(cfg)
    libraries = _sample(list(libraries), MAX_LIBRARIES)
    rng = np.random.default_rng(cfg.calibration_seed)
    train, held = _hold_out(f, libraries, cfg.calibration_holdout, rng)
    users = [i for i in range(len(libraries)) if len(train[i]) and len(held[i])]
    if len(users) < MIN_USERS:
        return _fallback(cfg)
    learned = _learn_map(f.matrix, train, cfg, iterations=CG_STEPS)
    if learned is None:
        return _fallback(cfg)
    if len(users) > MAX_USERS:
        users = sorted(rng.choice(users, MAX_USERS, replace=False).tolist())
    train_u, held_u = [train[i] for i in users], [held[i] for i in users]
    return _measure(f, learned, train_u, held_u, priors, texts, cfg.cf_singular_power)


def _hold_out(
    f: _Fitted, libraries: Sequence[np.ndarray], share: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A seeded `share` of the liked papers (drawn in id order) is held out: each library split
    into (the likes the second map learns from, the likes on held-out papers)."""
    liked = np.unique(np.concatenate(libraries)) if libraries else np.zeros(0, np.int64)
    by_id = sorted(liked.tolist(), key=f.ids.__getitem__)
    n_out = min(len(by_id), round(share * len(by_id)))
    out = np.zeros(len(f.ids), dtype=bool)
    out[[by_id[i] for i in rng.permutation(len(by_id))[:n_out]]] = True
    return [lib[~out[lib]] for lib in libraries], [lib[out[lib]] for lib in libraries]


def _measure(
    f: _Fitted,
    learned: _Map,
    train: list[np.ndarray],
    held: list[np.ndarray],
    priors: Sequence[float],
    texts: Sequence[float],
    power: float,
) -> Calibration:
    """Rank the held-out papers for every measured library under the variants, and choose
    (module docstring). `train` / `held`: per library, its corpus rows on each side.

    A coordinate search over the grid, not all of it: the best prior at the smallest text
    weight; the text weight for that prior (the smallest within one standard error of the
    best); then the best prior again for that weight, if it changed."""
    var = _Variants(f, learned, train, held, priors, texts, power)
    p = var.best_prior(0)
    t = var.text_weight(p)
    if t > 0:
        p = var.best_prior(t)
    measured = sorted(var.objective)  # (text index, prior index), the grid's order
    table = tuple(
        (float(priors[pi]), float(texts[ti]), float(var.objective[ti, pi].mean()))
        for ti, pi in measured
    )
    return Calibration(
        float(priors[p]), float(texts[t]), len(held), float(var.objective[t, p].mean()), table
    )


class _Variants:
    """Every measured library's objective under each (prior, text weight) asked for (cached)."""

    def __init__(
        self,
        f: _Fitted,
        learned: _Map,
        train: list[np.ndarray],
        held: list[np.ndarray],
        priors: Sequence[float],
        texts: Sequence[float],
        power: float,
    ) -> None:
        self.priors, self.texts = priors, texts
        cands = np.unique(np.concatenate(held))
        self.n_likes = np.array([len(t) for t in train], dtype=np.float64)
        need_predicted = any(p > 0 for p in priors)
        self.fac = _FactorScores(
            f, learned, train, cands, power=power, need_predicted=need_predicted
        )
        self.text = _text_scores(f, train, cands) if any(w > 0 for w in texts) else None
        self.rel = np.zeros((len(held), len(cands)), dtype=bool)
        for i, h in enumerate(held):
            self.rel[i, np.searchsorted(cands, h)] = True
        self.objective: dict[tuple[int, int], np.ndarray] = {}  # (text, prior) → per library
        self._mixed: dict[int, np.ndarray] = {}

    def get(self, t: int, p: int) -> np.ndarray:
        if (t, p) not in self.objective:
            if p not in self._mixed:
                self._mixed[p] = self.fac.mixed(_profile_alpha(self.n_likes, self.priors[p]))
            fac, w = self._mixed[p], self.texts[t]
            total = fac if w == 0 or self.text is None else (1.0 - w) * fac + w * self.text
            self.objective[t, p] = _objective(total, self.rel)
        return self.objective[t, p]

    def best_prior(self, t: int) -> int:
        """The prior with the best mean objective at text weight `t` (the first of equals)."""
        return int(np.argmax([self.get(t, p).mean() for p in range(len(self.priors))]))

    def text_weight(self, p: int) -> int:
        """At prior `p`: the smallest text weight whose objective is within one standard error
        (of the per-library difference) of the best one's."""
        means = [self.get(t, p).mean() for t in range(len(self.texts))]
        best = int(np.argmax(means))
        for t in range(best):
            d = self.get(t, p) - self.get(best, p)
            if d.mean() + d.std(ddof=1) / math.sqrt(len(d)) >= 0.0:
                return t
        return best


class _FactorScores:
    """Factor cosines of the measured libraries to the held-out papers, for any mix of the
    learned-factor profile (a) and the predicted-factor profile (b): with weight α on a,
    the profile is (α a + (1 − α) b) / ‖α a + (1 − α) b‖, so its scores are the same mix of
    the two products (exact, on the grids), divided by that norm."""

    def __init__(
        self,
        f: _Fitted,
        learned: _Map,
        train: list[np.ndarray],
        cands: np.ndarray,
        *,
        power: float,
        need_predicted: bool,
    ) -> None:
        w = learned.text_map.astype(np.float64)
        qc = on_grid(np.asarray(f.matrix[cands] @ w), RIGHT_BITS)  # as `rank`: predicted
        # every like the second map learned from has learned factors
        lib_learned = _library_matrix(train, f.matrix.shape[0])[:, learned.rows]
        a = on_grid(normalize(lib_learned @ learned.factors.astype(np.float64)), LEFT_BITS)
        self.a_scores: np.ndarray = a @ qc.T
        self.b_scores: np.ndarray | None = None
        self.ab = np.zeros(len(train))
        if need_predicted:
            scale = learned.singular.astype(np.float64) ** power
            predicted = np.asarray(f.matrix[learned.rows] @ w) / scale
            b = on_grid(normalize(lib_learned @ predicted), LEFT_BITS)
            self.b_scores = b @ qc.T
            self.ab = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))

    def mixed(self, alpha: np.ndarray) -> np.ndarray:
        if self.b_scores is None or not (alpha < 1.0).any():
            return self.a_scores
        beta = 1.0 - alpha
        norm = np.sqrt(np.maximum(alpha**2 + beta**2 + 2 * alpha * beta * self.ab, 1e-12))
        out: np.ndarray = (alpha / norm).astype(np.float32)[:, None] * self.a_scores
        out += (beta / norm).astype(np.float32)[:, None] * self.b_scores
        return out


def _library_matrix(libraries: list[np.ndarray], n_docs: int) -> sp.csr_matrix:
    """Libraries × corpus rows, each library's likes weighing 1 / its likes (a mean)."""
    lens = np.array([len(lib) for lib in libraries], dtype=np.int64)
    rows = np.repeat(np.arange(len(libraries)), lens)
    vals = np.repeat(1.0 / np.maximum(lens, 1), lens)
    cols = np.concatenate(libraries) if libraries else np.zeros(0, np.int64)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(libraries), n_docs))


def _text_scores(f: _Fitted, train: list[np.ndarray], cands: np.ndarray) -> np.ndarray:
    """TF-IDF centroid cosine of the measured libraries to the held-out papers (float32)."""
    centroid = normalize(_library_matrix(train, f.matrix.shape[0]) @ f.matrix)
    centroid = sp.csr_matrix(centroid, dtype=np.float32)
    return np.asarray((centroid @ f.matrix[cands].T).todense(), dtype=np.float32)


def _objective(scores: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per library: nDCG@NDCG_AT + recall@RECALL_AT of its held-out likes (`rel`) when the
    held-out papers are ranked by `scores` (ties by column, as `rank` breaks them by id)."""
    top, _ = _top_rows(scores, min(RECALL_AT, scores.shape[1]))
    hits = np.take_along_axis(rel, top, axis=1)
    n_rel = rel.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, NDCG_AT + 2))
    k = min(NDCG_AT, hits.shape[1])
    dcg = (hits[:, :k] * discount[:k]).sum(axis=1)  # a numpy sum, not BLAS: the same bits anywhere
    ideal = np.cumsum(discount)[np.minimum(n_rel, NDCG_AT) - 1]
    result: np.ndarray = dcg / ideal + hits.sum(axis=1) / n_rel
    return result
