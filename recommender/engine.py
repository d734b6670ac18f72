"""The daemon-facing recommender: fit on the stored corpus (+ every subscriber's likes), rank.

Method in short (defaults in `RecommenderConfig`; details and figures in docs/recommender.md):

1. Text features: TF-IDF over title + abstract (uni+bigrams, sublinear tf) hstacked with a
   smaller-weight author block; rows L2-normalised.
2. Collaborative item factors from all subscribers' libraries: truncated SVD of the
   user × paper like matrix (columns scaled by popularity^-β, rows normalised) → a factor
   vector for every paper somebody liked.
3. Content → collaborative map: ridge regression (block conjugate gradient) from a paper's
   TF-IDF row to its factor vector, so a paper nobody has liked yet (every new paper) gets
   predicted factors from its text alone.
4. Interests: the liked papers' factors are clustered into `interest_topics` global topics at
   fit time (spherical k-means). A person's interests are the topics holding enough of their
   likes (a histogram, found for a whole batch at once); with one interest nothing changes.
5. Profile: mean of the *true* factors of the person's liked papers (predicted ones for papers
   liked after the fit) minus a share of the disliked ones — one profile per interest.
6. Scores for a batch of users at once = profiles @ normalised candidate factors (BLAS);
   top of the list via argpartition; per-user Python only over a short list (follows, mutes,
   near-duplicates, each interest's share, MMR) and explanations only for the picks.
Fewer than `cf_min_users` libraries (a new install, a demo) → TF-IDF centroid cosine.

`Recommender` here is the front door; the stages live in their own modules: `config`
(`RecommenderConfig`), `state` (what `fit` learns and `dumps` stores), `features` (1), `cfmap`
(2–3), `interests` (4), `profiles` (5 and the scores of 6), `selection` (the rest of 6 and the
cold start), `explain` (the reasons), `terms` (the words worth naming in them, with the
academic stop list as data, and interest labels), `context` (what one `rank` call shares
between its users) and `exact` (products with the same bits on every machine).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from recommender.calibration import _calibrate
from recommender.cfmap import _fit_map, _library_rows, _sample
from recommender.config import ASL_TOKEN_PATTERN, RecommenderConfig
from recommender.context import Candidates, _Context, _Items
from recommender.explain import _explain
from recommender.features import _fit_features, _vectorize
from recommender.interests import _learn_topics, _nearest_topics, _topic_sims
from recommender.profiles import _Plan, _profile_plan, _profiles
from recommender.selection import (
    _NO_CANDIDATE,
    KEYWORD_SHARE,
    _batch_scores,
    _boost_and_block,
    _cold,
    _Follows,
    _follows,
    _near_known,
    _recommend,
    _select,
)
from recommender.state import FORMAT_VERSION, _Fitted
from recommender.terms import _topic_labels
from recommender.types import Calibration, Doc, Feedback, Recommendation

# States pickled before the split name `recommender.engine._Fitted` and `._identity` (the
# author analyzer): both must stay importable from here for those states to load.
from recommender.features import _identity  # noqa: F401  # isort: skip

__all__ = ["ASL_TOKEN_PATTERN", "FORMAT_VERSION", "Recommender", "RecommenderConfig"]


class _Dense(NamedTuple):
    """float64 arrays for scoring, made once per model (the state keeps the learned ones as
    float16). The learned factors have no float64 copy: a rank call converts the rows it needs
    (`_Context.build_items`), equal to those of a copy."""

    text_map: np.ndarray  # features × rank
    topic_sims: np.ndarray | None  # liked-at-fit papers × topics (None: no topics)
    # liked-at-fit papers × rank: their factors predicted from their text, unscaled like
    # `factors` (None: the profiles use the learned factors only, `profile_prior_likes` = 0)
    predicted: np.ndarray | None


# `batch_size` users per product for up to this many candidates (a day's papers); above, fewer
# in proportion, so that a product's tables stay a day's size: 1,000 users against a weekly
# digest's 21,000 candidates peaked at 194 MB of numpy tables in batches of 512, 66 MB in
# batches of 73, and ranked no slower (1.6 against 1.7 s)
BATCH_CANDIDATES = 3000
# rows of the float16 factors converted at once for the topic similarities (bounds the memory)
TOPIC_SIMS_ROWS = 8192


class Recommender:
    """Fit once on the stored corpus, persist with `dumps`, rank every day."""

    def __init__(self, config: RecommenderConfig | None = None) -> None:
        self.config = config or RecommenderConfig()
        self._fitted: _Fitted | None = None
        self._dense: _Dense | None = None
        self._labels: list[str] | None = None  # interest topics' names, made on first use

    # ------------------------------------------------------------------ fitting / state
    @property
    def fitted_size(self) -> int:
        """Number of corpus docs the model was fitted on (0 = not fitted)."""
        return 0 if self._fitted is None else len(self._fitted.ids)

    @property
    def learned(self) -> bool:
        """True when the content → collaborative map was learned (else: text similarity)."""
        return self._fitted is not None and self._fitted.text_map is not None

    def knows(self, doc_id: str) -> bool:
        """True when the doc was in the fitted corpus (else `rank` needs it in `known`)."""
        return self._fitted is not None and doc_id in self._fitted.index

    @property
    def calibration(self) -> Calibration | None:
        """How far the fitted model trusts each signal, and what the held-out likes measured
        (None: not fitted, or text similarity only)."""
        return None if self._fitted is None else self._fitted.calibration

    def fit(self, corpus: Sequence[Doc], libraries: Sequence[Feedback] = ()) -> None:
        """Fit TF-IDF on `corpus`; learn the content → collaborative map from `libraries`
        (every subscriber's feedback; may be empty — the method then falls back to text)."""
        cfg = self.config
        docs = list({d.id: d for d in corpus}.values())
        if not docs:
            raise ValueError("cannot fit on an empty corpus")
        fitted = _fit_features(docs, cfg)
        if cfg.method == "cf-map":
            liked = _sample(_library_rows(fitted, libraries), cfg.cf_max_libraries)
            _fit_map(fitted, liked, cfg)
            if fitted.factors is not None and fitted.singular is not None:
                fitted.topics = _learn_topics(fitted.factors, fitted.singular, cfg)
                calibration = _calibrate(fitted, liked, cfg)
                fitted.profile_prior_likes = calibration.profile_prior_likes
                fitted.text_weight = calibration.text_weight
                fitted.calibration = calibration
        elif cfg.method != "tfidf-centroid":
            raise ValueError(f"unknown recommender method: {cfg.method!r}")
        self._fitted = fitted
        self._dense = None
        self._labels = None

    def dumps(self) -> bytes:
        return pickle.dumps(
            {"version": FORMAT_VERSION, "config": self.config, "fitted": self._fitted},
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def loads(cls, data: bytes) -> Recommender:
        state = pickle.loads(data)
        if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
            raise ValueError("incompatible recommender state; refit")
        rec = cls(state["config"])
        rec._fitted = state["fitted"]
        return rec

    # ------------------------------------------------------------------ vectors
    def _require(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("Recommender.fit() must be called before rank()")
        return self._fitted

    def _arrays(self) -> _Dense:
        """float64 text map (and predicted factors of the liked papers), the liked papers'
        interest topics; the state keeps the learned arrays as float16."""
        f = self._require()
        if self._dense is None:
            assert f.text_map is not None and f.factors is not None
            text_map = f.text_map.astype(np.float64)
            sims = None
            if f.topics is not None:  # row by row: blocks of rows give the same bits
                step = TOPIC_SIMS_ROWS
                sims = np.concatenate(
                    [
                        _topic_sims(f.factors[a : a + step].astype(np.float64), f)
                        for a in range(0, max(len(f.factors), 1), step)
                    ]
                )
            predicted = None
            if f.profile_prior_likes > 0:  # rows of `factors` ↔ corpus rows, both ascending
                assert f.factor_row is not None and f.singular is not None
                rows = np.flatnonzero(f.factor_row >= 0)
                scale = f.singular.astype(np.float64) ** self.config.cf_singular_power
                predicted = np.asarray(f.matrix[rows] @ text_map, dtype=np.float64) / scale
            self._dense = _Dense(text_map, sims, predicted)
        return self._dense

    def _topic_labels(self) -> list[str]:
        """The name of every interest topic ("gene expression"), from the terms of its liked
        papers; made once per model, when an explanation first needs one."""
        if self._labels is None:
            f = self._require()
            sims = self._arrays().topic_sims
            assert sims is not None
            self._labels = _topic_labels(f, sims.argmax(axis=1), sims.shape[1])
        return self._labels

    def vectorize(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        """Feature rows (L2-normalised) for docs; fitted-corpus docs reuse their stored row."""
        return _vectorize(self._require(), docs, self.config)

    def topic_of(self, docs: Sequence[Doc]) -> list[int]:
        """The interest topic (0 … topics − 1) each doc belongs to: its nearest topic, from its
        factors learned at fit time, else the ones predicted from its text; −1 without topics."""
        f = self._require()
        if f.topics is None or not docs:
            return [-1] * len(docs)
        assert f.factors is not None
        predicted = self.predicted_factors(self.vectorize(docs))
        rows = [f.index.get(d.id, -1) for d in docs]
        return _nearest_topics(f, rows, f.factors, predicted, self.config.cf_singular_power)

    def predicted_factors(self, x: sp.csr_matrix) -> np.ndarray:
        """Predicted collaborative factors of feature rows (in the scale of the targets),
        float64."""
        w = self._arrays().text_map
        return np.asarray(x @ w, dtype=np.float64)

    # ------------------------------------------------------------------ ranking
    def candidates(self, docs: Sequence[Doc]) -> Candidates:
        """The papers to rank, prepared once (feature rows, predicted factors, near-duplicates
        …) for every `rank` call against them."""
        return Candidates(self, self._require(), docs)

    def rank(
        self,
        candidates: Sequence[Doc] | Candidates,
        users: Sequence[Feedback],
        *,
        k: int,
        now: datetime,
        known: Mapping[str, Doc] | None = None,
        explain: bool = True,
        keyword_share: float = KEYWORD_SHARE,
    ) -> dict[str, list[Recommendation]]:
        """Top `k` of `candidates` for every user (user_id → recommendations, best first).
        `candidates`: docs, or `candidates(docs)` prepared once for several calls.
        `keyword_share`: papers matching a followed keyword (by no followed author) hold at
        most this share of every prefix of a list while other papers remain (1: no limit; a
        reader without likes gets them all)."""
        if not 0.0 <= keyword_share <= 1.0:
            raise ValueError(f"keyword_share must be within [0, 1], not {keyword_share!r}")
        f = self._require()
        cfg = self.config
        if not isinstance(candidates, Candidates) or candidates.fitted is not f:
            docs = candidates.cands if isinstance(candidates, Candidates) else candidates
            candidates = Candidates(self, f, docs)
        out: dict[str, list[Recommendation]] = {u.user_id: [] for u in users}
        if not len(candidates) or k <= 0 or not users:
            return out
        ctx = _Context(self, f, candidates, known or {})
        plans = [_profile_plan(fb, ctx, now, cfg) for fb in users]
        items = ctx.build_items()
        step = max(1, cfg.batch_size * BATCH_CANDIDATES // max(BATCH_CANDIDATES, len(candidates)))
        for start in range(0, len(users), step):
            batch, batch_plans = users[start : start + step], plans[start : start + step]
            out.update(self._rank_batch(batch, batch_plans, items, ctx, k, explain, keyword_share))
        return out

    def _rank_batch(
        self,
        batch: Sequence[Feedback],
        plans: list[_Plan],
        items: _Items,
        ctx: _Context,
        k: int,
        explain: bool,
        keyword_share: float = KEYWORD_SHARE,
    ) -> dict[str, list[Recommendation]]:
        """Top `k` for one batch of users (user_id → recommendations): their profiles are
        scored in one product; users without usable likes get the cold start."""
        cfg = self.config
        f = self._require()
        profiles = _profiles(
            plans, items, cfg, prior_likes=f.profile_prior_likes, text_weight=f.text_weight
        )
        sc = _batch_scores(profiles, ctx, cfg)
        out: dict[str, list[Recommendation]] = {}
        follows: dict[int, _Follows] = {}  # batch position → its follows and mutes
        # near-duplicates of the liked and disliked papers: the arXiv and the journal version
        known = [[lk.slot for lk in p.liked] + p.disliked for p in plans]
        slots = sorted(set().union(*known))
        near = _near_known(items.text, slots, items.ids, ctx, cfg.duplicate_threshold)
        for b, fb in enumerate(batch):
            fol = _follows(fb, ctx, cfg)
            if fol is not None:
                follows[b] = fol
            i = sc.row_of.get(b)
            mine = [near[s] for s in known[b] if s in near] if near else []
            blocked = _boost_and_block(
                fb,
                fol,
                None if i is None else sc.total[i],
                ctx,
                cfg,
                np.concatenate(mine) if mine else _NO_CANDIDATE,
            )
            if i is None:  # no usable likes: follows, then trending (away from dislikes)
                disliked = items.text[plans[b].disliked] if plans[b].disliked else None
                out[fb.user_id] = _cold(ctx, k, blocked, fol, cfg, disliked)
        if not sc.users:
            return out
        picked = _select(sc, profiles.group_sizes, follows, ctx, k, cfg, keyword_share)
        if explain:
            recs = _explain(picked, plans, follows, items, ctx, cfg)
        else:
            recs = [_recommend(pl, follows.get(pl.user), ctx) for pl in picked]
        for pl, user_recs in zip(picked, recs, strict=True):
            out[batch[pl.user].user_id] = user_recs
        return out
