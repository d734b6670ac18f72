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
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.cfmap import _fit_map
from recommender.config import ASL_TOKEN_PATTERN, RecommenderConfig
from recommender.exact import LEFT_BITS, RIGHT_BITS, on_grid

# States pickled before the split name `recommender.engine._Fitted` and `._identity` (the
# author analyzer): both must stay importable from here for those states to load.
from recommender.features import (
    _author_matches,
    _doc_text,
    _fit_features,
    _fold,
    _identity,  # noqa: F401
    _vectorize,
)
from recommender.state import FORMAT_VERSION, _Fitted
from recommender.types import Doc, Feedback, Kind, Recommendation

__all__ = ["ASL_TOKEN_PATTERN", "FORMAT_VERSION", "Recommender", "RecommenderConfig"]
# interest topics: at most one per this many liked papers (a topic is a field, not a paper)
TOPIC_MIN_PAPERS = 50
KMEANS_RESTARTS = 8  # interest topics: best of this many seeded k-means runs


@dataclass
class _Plan:
    """One user's resolved feedback for a rank call (slots index the call's item table)."""

    liked: list[tuple[str, int, float]]  # (doc id, slot, weight)
    disliked: list[int]  # slots
    group_sizes: list[int] = field(default_factory=list)


@dataclass
class _Items:
    """Liked/disliked docs referenced in one rank call: text rows and factor rows."""

    ids: list[str]
    text: sp.csr_matrix
    fac: np.ndarray | None
    topic_sim: np.ndarray | None = None  # slots × interest topics: cosine to each topic


def _shorten(title: str, limit: int) -> str:
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


class Recommender:
    """Fit once on the stored corpus, persist with `dumps`, rank every day."""

    def __init__(self, config: RecommenderConfig | None = None) -> None:
        self.config = config or RecommenderConfig()
        self._fitted: _Fitted | None = None
        self._dense: tuple[np.ndarray, np.ndarray] | None = None  # float64 copies for scoring

    # ------------------------------------------------------------------ fitting / state
    @property
    def fitted_size(self) -> int:
        """Number of corpus docs the model was fitted on (0 = not fitted)."""
        return 0 if self._fitted is None else len(self._fitted.ids)

    @property
    def learned(self) -> bool:
        """True when the content → collaborative map was learned (else: text similarity)."""
        return self._fitted is not None and self._fitted.text_map is not None

    def fit(self, corpus: Sequence[Doc], libraries: Sequence[Feedback] = ()) -> None:
        """Fit TF-IDF on `corpus`; learn the content → collaborative map from `libraries`
        (every subscriber's feedback; may be empty — the method then falls back to text)."""
        cfg = self.config
        docs = list({d.id: d for d in corpus}.values())
        if not docs:
            raise ValueError("cannot fit on an empty corpus")
        fitted = _fit_features(docs, cfg)
        if cfg.method == "cf-map":
            _fit_map(fitted, libraries, cfg)
            if fitted.factors is not None and fitted.singular is not None:
                fitted.topics = _learn_topics(fitted.factors, fitted.singular, cfg)
        elif cfg.method != "tfidf-centroid":
            raise ValueError(f"unknown recommender method: {cfg.method!r}")
        self._fitted = fitted
        self._dense = None

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

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """float64 (text map, factors); the state keeps them as float16."""
        f = self._require()
        if self._dense is None:
            assert f.text_map is not None and f.factors is not None
            self._dense = (f.text_map.astype(np.float64), f.factors.astype(np.float64))
        return self._dense

    def vectorize(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        """Feature rows (L2-normalised) for docs; fitted-corpus docs reuse their stored row."""
        return _vectorize(self._require(), docs, self.config)

    def topic_of(self, docs: Sequence[Doc]) -> list[int]:
        """The interest topic (0 … topics − 1) each doc belongs to: its nearest topic, from its
        factors learned at fit time, else the ones predicted from its text; −1 without topics."""
        f = self._require()
        if f.topics is None or not docs:
            return [-1] * len(docs)
        assert f.factor_row is not None and f.singular is not None
        _, factors = self._arrays()
        rows = [f.index.get(d.id, -1) for d in docs]
        frow = [int(f.factor_row[r]) if r >= 0 else -1 for r in rows]
        fac = (
            self.predicted_factors(self.vectorize(docs)) / f.singular**self.config.cf_singular_power
        )
        true = [i for i, r in enumerate(frow) if r >= 0]
        fac[true] = factors[[frow[i] for i in true]]
        return [int(t) for t in (on_grid(fac * f.singular, LEFT_BITS) @ f.topics.T).argmax(axis=1)]

    def predicted_factors(self, x: sp.csr_matrix) -> np.ndarray:
        """Predicted collaborative factors of feature rows (in the scale of the targets),
        float64."""
        w, _ = self._arrays()
        return np.asarray(x @ w, dtype=np.float64)

    # ------------------------------------------------------------------ ranking
    def rank(
        self,
        candidates: Sequence[Doc],
        users: Sequence[Feedback],
        *,
        k: int,
        now: datetime,
        known: Mapping[str, Doc] | None = None,
        explain: bool = True,
    ) -> dict[str, list[Recommendation]]:
        """Top `k` of `candidates` for every user (user_id → recommendations, best first)."""
        f = self._require()
        cfg = self.config
        # candidates in id order: equal scores break by id, whatever order they came in
        cands = sorted({d.id: d for d in candidates}.values(), key=lambda d: d.id)
        out: dict[str, list[Recommendation]] = {u.user_id: [] for u in users}
        if not cands or k <= 0 or not users:
            return out
        ctx = _Context(self, f, cands, known or {})
        plans = [self._profile_plan(fb, ctx, now) for fb in users]
        items = ctx.build_items()
        step = max(1, cfg.batch_size)
        for start in range(0, len(users), step):
            batch, batch_plans = users[start : start + step], plans[start : start + step]
            self._rank_batch(batch, batch_plans, items, ctx, k, explain, out)
        return out

    def _rank_batch(
        self,
        batch: Sequence[Feedback],
        plans: list[_Plan],
        items: _Items,
        ctx: _Context,
        k: int,
        explain: bool,
        out: dict[str, list[Recommendation]],
    ) -> None:
        cfg = self.config
        n = len(ctx.cands)
        profiles, owner = self._profiles(plans, items)
        user_rows: dict[int, list[int]] = {}
        for r, b in enumerate(owner):
            user_rows.setdefault(b, []).append(r)
        has = list(user_rows)  # batch positions with a profile, in row order
        row_of = {b: i for i, b in enumerate(has)}
        scores = np.zeros((0, n), dtype=np.float32)
        total = scores
        if has:
            scores = self._score(profiles, ctx)  # rows: (user, interest)
            starts = [user_rows[b][0] for b in has]
            total = scores[starts]  # a copy; with several interests: the best of the rows
            if len(owner) > len(has):
                for i, b in enumerate(has):
                    rows = user_rows[b]
                    if len(rows) > 1:
                        np.max(scores[rows[0] : rows[-1] + 1], axis=0, out=total[i])
        bonus: dict[int, np.ndarray] = {}
        reasons: dict[int, dict[int, str]] = {}
        for b, fb in enumerate(batch):
            blocked = ctx.blocked(fb)
            if fb.keywords or fb.authors or fb.muted_keywords or fb.muted_authors:
                fbonus, freason, muted = ctx.follows(fb)
                bonus[b], reasons[b] = fbonus, freason
                if b in row_of and cfg.mute_penalty is not None:
                    total[row_of[b]] += fbonus - cfg.mute_penalty * muted
                else:
                    if b in row_of:
                        total[row_of[b]] += fbonus
                    blocked = np.concatenate([blocked, np.flatnonzero(muted)])
            if b in row_of:
                total[row_of[b], blocked] = -np.inf
            else:  # no usable likes: follows, then trending
                out[fb.user_id] = self._cold(fb, ctx, k, blocked, bonus.get(b), reasons.get(b))
        if not has:
            return
        m = min(n, max(1, cfg.shortlist_factor) * k + 20)
        short, vals = _top_rows(total, m)
        todo: list[tuple[int, list[int], list[float]]] = []  # (user, picks, scores) to explain
        for i, b in enumerate(has):
            fb, p = batch[b], plans[b]
            pool = short[i][np.isfinite(vals[i])]
            rows = user_rows[b] if len(user_rows[b]) > 1 else []
            ubonus = bonus.get(b)
            picks = self._pick(pool, total[i], scores, rows, p, ubonus, ctx, k)
            if len(picks) < k and m < n:  # short list exhausted by duplicates: full order
                pool = np.argsort(-total[i], kind="stable")
                pool = pool[np.isfinite(total[i][pool])]
                picks = self._pick(pool, total[i], scores, rows, p, ubonus, ctx, k)
            if explain:
                todo.append((b, picks, np.clip(total[i][picks], 0.0, 1.0).tolist()))
            else:
                out[fb.user_id] = self._recommend(picks, total[i], ubonus, ctx)
        if todo:
            explained = self._explain(todo, plans, bonus, reasons, items, ctx)
            for t, user_recs in zip(todo, explained, strict=True):
                out[batch[t[0]].user_id] = user_recs

    def _pick(
        self,
        pool: np.ndarray,
        total: np.ndarray,
        scores: np.ndarray,
        rows: list[int],
        p: _Plan,
        fbonus: np.ndarray | None,
        ctx: _Context,
        k: int,
    ) -> list[int]:
        if len(rows) > 1:  # several interests: each gets its share (MMR off)
            groups = scores[rows][:, pool]
            if fbonus is not None:
                groups = groups + fbonus[pool]
            order = pool[_share_order(groups, np.asarray(p.group_sizes, dtype=np.float64))]
            if fbonus is not None:  # a followed match still comes first
                order = order[np.argsort(fbonus[order] <= 0, kind="stable")]
            return self._greedy(order.tolist(), ctx, k, None)
        return self._greedy(pool.tolist(), ctx, k, total)

    def _score(
        self, profiles: tuple[np.ndarray | None, sp.csr_matrix | None], ctx: _Context
    ) -> np.ndarray:
        """Profiles × candidates → cosine-like score in [0, 1] per (user, interest) row."""
        cfg = self.config
        fac, text = profiles
        parts: list[tuple[float, np.ndarray]] = []
        if fac is not None:
            parts.append((1.0 - cfg.text_weight, fac @ ctx.cand_factors().T))
        if text is not None:
            w = cfg.text_weight if fac is not None else 1.0
            parts.append((w, np.asarray((text @ ctx.xc_t).todense(), dtype=np.float32)))
        total = parts[0][0] * parts[0][1]
        for w, s in parts[1:]:
            total += w * s
        return np.clip(total, 0.0, 1.0, out=total).astype(np.float32, copy=False)

    # -------------------------------------------------------------- profile building
    def _profile_plan(self, fb: Feedback, ctx: _Context, now: datetime) -> _Plan:
        cfg = self.config
        n = len(fb.likes)
        dated = n > 0 and all(lk.at is not None for lk in fb.likes)
        slot = ctx.slot
        known_slot = ctx.slots.get
        disliked = [s for s in map(slot, fb.dislikes) if s is not None]
        weighted = (dated and cfg.recency_half_life_days) or (
            cfg.recency_half_life_likes and not dated
        )
        if not weighted:  # the common case: every like weighs the same
            w = cfg.like_weight
            liked = [
                (lk.doc_id, s, w)
                for lk in fb.likes
                if (s := known_slot(lk.doc_id)) is not None or (s := slot(lk.doc_id)) is not None
            ]
            return _Plan(liked=liked, disliked=disliked)
        liked = []
        for pos, lk in enumerate(fb.likes):
            s = slot(lk.doc_id)
            if s is None:
                continue
            w = cfg.like_weight
            if dated and cfg.recency_half_life_days and lk.at is not None:
                age = (_aware(now) - _aware(lk.at)).total_seconds() / 86400.0
                w *= 0.5 ** (max(age, 0.0) / cfg.recency_half_life_days)
            elif cfg.recency_half_life_likes and not dated:
                w *= 0.5 ** ((n - 1 - pos) / cfg.recency_half_life_likes)
            liked.append((lk.doc_id, s, w))
        return _Plan(liked=liked, disliked=disliked)

    def _profiles(
        self, plans: list[_Plan], items: _Items
    ) -> tuple[tuple[np.ndarray | None, sp.csr_matrix | None], list[int]]:
        """One row per (user, interest) in factor space and/or text space;
        `owner[row]` is the user's position in the batch."""
        cfg = self.config
        n_slots = len(items.ids)
        lr: list[int] = []
        lc: list[int] = []
        lv: list[float] = []
        dr: list[int] = []
        dc: list[int] = []
        dv: list[float] = []
        owner: list[int] = []
        row = 0
        several = self._several_interests(plans, items)
        for b, p in enumerate(plans):
            if not p.liked:
                continue
            groups: Sequence[Sequence[int]]
            if several is not None and not several[b]:  # the common case: one interest
                p.group_sizes = [len(p.liked)]
                groups = [range(len(p.liked))]
            else:
                groups = self._interests(p, items)
            for g in groups:
                liked_g = p.liked if len(groups) == 1 else [p.liked[i] for i in g]
                tot = sum(w for _, _, w in liked_g) or 1.0
                lr.extend([row] * len(liked_g))
                lc.extend([s for _, s, _ in liked_g])
                lv.extend([w / tot for _, _, w in liked_g])
                if p.disliked:
                    dr.extend([row] * len(p.disliked))
                    dc.extend(p.disliked)
                    dv.extend([1.0 / len(p.disliked)] * len(p.disliked))
                owner.append(b)
                row += 1
        if row == 0:
            return (None, None), owner
        shape = (row, n_slots)
        liked = sp.csr_matrix((lv, (lr, lc)), shape=shape, dtype=np.float64)
        disliked = sp.csr_matrix((dv, (dr, dc)), shape=shape, dtype=np.float64) if dr else None
        gamma = cfg.dislike_weight

        def build(table: Any) -> Any:
            prof = normalize(sp.csr_matrix(liked @ table) if sp.issparse(table) else liked @ table)
            if disliked is not None and gamma > 0:
                neg = disliked @ table
                prof = prof - gamma * normalize(sp.csr_matrix(neg) if sp.issparse(neg) else neg)
            return prof

        fac = None
        text = None
        if items.fac is not None:
            fac = on_grid(build(items.fac), LEFT_BITS)  # exact products (recommender.exact)
        if items.fac is None or cfg.text_weight > 0:
            text = sp.csr_matrix(build(items.text), dtype=np.float32)
        return (fac, text), owner

    def _several_interests(self, plans: list[_Plan], items: _Items) -> np.ndarray | None:
        """Which users may have several interests (≥ 2 topics hold enough of their likes),
        for the whole batch at once (None: no topics)."""
        if items.topic_sim is None:
            return None
        cfg = self.config
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

    def _interests(self, p: _Plan, items: _Items) -> list[list[int]]:
        """The person's interests as groups of positions in `p.liked` (one group: a single
        interest, the profile of all likes).

        cf-map: each liked paper's topic is the nearest of the global topics learned at fit
        time; a topic with ≥ `interest_min_likes` likes and ≥ `interest_min_share` of them is
        an interest, and every other like joins the interest whose topic is closest to it."""
        cfg = self.config
        n = len(p.liked)
        if items.topic_sim is not None:
            p.group_sizes = [n]
            if n < 2 * max(1, cfg.interest_min_likes):
                return [list(range(n))]
            sims = items.topic_sim[[s for _, s, _ in p.liked]]
            counts = np.bincount(sims.argmax(axis=1), minlength=sims.shape[1])
            need = max(cfg.interest_min_likes, cfg.interest_min_share * n)
            topics = np.flatnonzero(counts >= need)
            if len(topics) < 2:
                return [list(range(n))]
            labels = sims[:, topics].argmax(axis=1)
            groups = [np.flatnonzero(labels == g).tolist() for g in range(len(topics))]
            p.group_sizes = [len(g) for g in groups]
            return groups
        m = min(cfg.max_interests, n // max(1, cfg.likes_per_interest))
        if m <= 1:
            p.group_sizes = [n]
            return [list(range(n))]
        labels = _spherical_kmeans(items.text[[s for _, s, _ in p.liked]], m)
        groups = [[int(i) for i in np.flatnonzero(labels == c)] for c in range(m)]
        groups = [g for g in groups if g]
        p.group_sizes = [len(g) for g in groups]
        return groups

    # -------------------------------------------------------------- selection
    def _cold(
        self,
        fb: Feedback,
        ctx: _Context,
        k: int,
        blocked: np.ndarray,
        fbonus: np.ndarray | None,
        freason: Mapping[int, str] | None,
    ) -> list[Recommendation]:
        """No usable likes: followed keywords/authors first (trending among equals), then
        trending (most upvoted, then newest)."""
        n = len(ctx.cands)
        ban = np.zeros(n, dtype=bool)
        ban[blocked] = True
        bonus = fbonus if fbonus is not None else np.zeros(n, dtype=np.float32)
        trending = ctx.trending()
        tr_rank = np.empty(n, dtype=np.int64)
        tr_rank[trending] = np.arange(n)
        eligible = np.flatnonzero((bonus > 0) & ~ban)
        order = eligible[np.lexsort((tr_rank[eligible], -bonus[eligible]))]
        rest = [int(j) for j in trending if not ban[j] and bonus[j] <= 0]
        picks = self._greedy([int(j) for j in order] + rest, ctx, k, None)
        recs = []
        for j in picks:
            if bonus[j] > 0:
                assert freason is not None
                s = float(min(1.0, bonus[j]))
                recs.append(Recommendation(ctx.cands[j].id, s, "followed", freason[j]))
            else:
                recs.append(Recommendation(ctx.cands[j].id, 0.0, "trending", "Trending today"))
        return recs

    def _greedy(
        self, order: list[int], ctx: _Context, k: int, scores: np.ndarray | None
    ) -> list[int]:
        """Pick k from `order` (best first): skip near-duplicates of earlier picks; optional
        MMR (with `scores`)."""
        cfg = self.config
        dups = ctx.duplicates()
        shadow: set[int] = set()  # near-duplicates of something picked
        picks: list[int] = []
        if cfg.mmr_lambda >= 1.0 or scores is None:
            if not dups:
                return order[:k]
            for j in order:
                if j in shadow:
                    continue
                picks.append(j)
                if j in dups:
                    shadow.update(dups[j])
                if len(picks) >= k:
                    break
            return picks
        # MMR over the pool
        assert scores is not None
        pool = list(order)
        rel = np.array([scores[j] for j in pool], dtype=np.float64)
        vecs = ctx.xc[pool]
        sim = np.asarray((vecs @ vecs.T).todense())
        best_sim = np.zeros(len(pool))
        alive = np.ones(len(pool), dtype=bool)
        lam = cfg.mmr_lambda
        while len(picks) < k and alive.any():
            val = np.where(alive, lam * rel - (1 - lam) * best_sim, -np.inf)
            i = int(np.argmax(val))
            alive[i] = False
            j = pool[i]
            if j in shadow:
                continue
            picks.append(j)
            shadow.update(dups.get(j, ()))
            best_sim = np.maximum(best_sim, sim[i])
        return picks

    def _recommend(
        self, picks: list[int], total: np.ndarray, fbonus: np.ndarray | None, ctx: _Context
    ) -> list[Recommendation]:
        """Recommendations without explanations (the fast path of `rank(explain=False)`)."""
        score = np.clip(total[picks], 0.0, 1.0).tolist() if picks else []
        ids = ctx.cand_ids
        if fbonus is None:
            return [_plain_rec(ids[j], s, "similar") for j, s in zip(picks, score, strict=True)]
        return [
            _plain_rec(ids[j], s, "followed" if fbonus[j] > 0 else "similar")
            for j, s in zip(picks, score, strict=True)
        ]

    def _explain(
        self,
        todo: list[tuple[int, list[int], list[float]]],
        plans: list[_Plan],
        bonus: Mapping[int, np.ndarray],
        reasons: Mapping[int, Mapping[int, str]],
        items: _Items,
        ctx: _Context,
        max_pairs: int = 200_000,
    ) -> list[list[Recommendation]]:
        """For every pick: the liked paper closest in text and the terms both share (with no
        shared term: the liked paper closest in the learned space). Batched over users: the
        (pick, liked paper) pairs of many users are scored in one sparse product."""
        out: list[list[Recommendation]] = []
        chunk: list[tuple[int, list[int], list[float]]] = []
        pairs = 0
        for t in todo:
            n_pairs = len(t[1]) * len(plans[t[0]].liked)
            if chunk and pairs + n_pairs > max_pairs:
                out.extend(self._explain_chunk(chunk, plans, bonus, reasons, items, ctx))
                chunk, pairs = [], 0
            chunk.append(t)
            pairs += n_pairs
        if chunk:
            out.extend(self._explain_chunk(chunk, plans, bonus, reasons, items, ctx))
        return out

    def _explain_chunk(
        self,
        todo: list[tuple[int, list[int], list[float]]],
        plans: list[_Plan],
        bonus: Mapping[int, np.ndarray],
        reasons: Mapping[int, Mapping[int, str]],
        items: _Items,
        ctx: _Context,
    ) -> list[list[Recommendation]]:
        cfg = self.config
        f = ctx.f
        all_picks: list[int] = []
        pair_pick: list[np.ndarray] = []  # index into all_picks
        pair_slot: list[np.ndarray] = []
        group_len: list[int] = []  # pairs per pick (= the user's liked count)
        for b, picks, _ in todo:
            slots = np.asarray([sl for _, sl, _ in plans[b].liked], dtype=np.int64)
            base = len(all_picks)
            all_picks.extend(picks)
            pair_pick.append(np.repeat(np.arange(base, base + len(picks)), len(slots)))
            pair_slot.append(np.tile(slots, len(picks)))
            group_len.extend([len(slots)] * len(picks))
        if not all_picks:
            return [[] for _ in todo]
        pp = np.concatenate(pair_pick)
        ps = np.concatenate(pair_slot)
        pick_vecs = ctx.xc[all_picks]
        sims = np.asarray(pick_vecs[pp].multiply(items.text[ps]).sum(axis=1)).ravel()
        lens = np.asarray(group_len, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        best_sim = np.maximum.reduceat(sims, starts)
        # first position of the maximum inside each pick's group of pairs
        hit = np.flatnonzero(sims == np.repeat(best_sim, lens))
        best = hit[np.searchsorted(hit, starts)] - starts  # index into the user's liked list
        if items.fac is not None and (best_sim <= 0).any():
            qc = ctx.cand_factors()
            for q in np.flatnonzero(best_sim <= 0):
                s0 = starts[q]
                fac = on_grid(items.fac[ps[s0 : s0 + lens[q]]], LEFT_BITS)
                best[q] = np.argmax(fac @ qc[all_picks[q]])
        best_slots = ps[starts + best]
        overlap = pick_vecs.multiply(items.text[best_slots]).tocsr()
        overlap.sort_indices()
        out: list[list[Recommendation]] = []
        r = 0  # row of the pick in all_picks
        for b, picks, score in todo:
            p = plans[b]
            fbonus = bonus.get(b)
            freason = reasons.get(b, {})
            recs: list[Recommendation] = []
            for j, sc in zip(picks, score, strict=True):
                liked_id = p.liked[int(best[r])][0]
                title = _shorten(ctx.title(liked_id), cfg.reason_title_chars)
                a, z = overlap.indptr[r], overlap.indptr[r + 1]
                shared = (
                    _readable_terms(overlap.indices[a:z], overlap.data[a:z], f, cfg.reason_terms)
                    if best_sim[r] > 0
                    else []
                )
                if shared:
                    reason = f"Close to “{title}” you liked — shared: {', '.join(shared)}"
                else:
                    reason = f"Close to “{title}” you liked — read by people with similar libraries"
                kind: Kind = "similar"
                if fbonus is not None and fbonus[j] > 0:
                    kind = "followed"
                    reason = f"{freason[j]} · also close to “{title}” you liked"
                recs.append(
                    Recommendation(
                        doc_id=ctx.cand_ids[j],
                        score=sc,
                        kind=kind,
                        reason=reason,
                        closest_liked_id=liked_id,
                        shared_terms=tuple(shared),
                    )
                )
                r += 1
            out.append(recs)
        return out


class _Context:
    """What one rank call shares between its users (computed lazily, once)."""

    def __init__(
        self, rec: Recommender, f: _Fitted, cands: list[Doc], known: Mapping[str, Doc]
    ) -> None:
        self.rec = rec
        self.f = f
        self.cands = cands
        self.known = known
        self.cand_ids = [d.id for d in cands]
        self.cand_pos = {d: i for i, d in enumerate(self.cand_ids)}
        self.xc = rec.vectorize(cands)
        self._xc_t: sp.csr_matrix | None = None
        self._qc: np.ndarray | None = None
        self._dups: dict[int, list[int]] | None = None
        self._trending: np.ndarray | None = None
        self._texts: list[str] | None = None
        self._kw: dict[str, np.ndarray] = {}
        self._au: dict[str, np.ndarray] = {}
        self.slots: dict[str, int] = {}
        self._slot_row: list[int] = []  # corpus row, or −1
        self._slot_doc: list[Doc | None] = []  # the doc when outside the corpus

    # ---- liked / disliked docs
    def slot(self, doc_id: str) -> int | None:
        s = self.slots.get(doc_id)
        if s is not None:
            return s
        row = self.f.index.get(doc_id)
        doc = None
        if row is None:
            doc = self.known.get(doc_id)
            if doc is None and doc_id in self.cand_pos:
                doc = self.cands[self.cand_pos[doc_id]]
            if doc is None:
                return None
        s = len(self._slot_row)
        self.slots[doc_id] = s
        self._slot_row.append(-1 if row is None else row)
        self._slot_doc.append(doc)
        return s

    def build_items(self) -> _Items:
        f = self.f
        rows = np.asarray(self._slot_row, dtype=np.int64)
        inside = np.flatnonzero(rows >= 0)
        outside = np.flatnonzero(rows < 0)
        parts = [f.matrix[rows[inside]]]
        if len(outside):
            parts.append(self.rec.vectorize([d for d in self._slot_doc if d is not None]))
        perm = np.empty(len(rows), dtype=np.int64)
        perm[np.concatenate([inside, outside])] = np.arange(len(rows))
        text = sp.vstack(parts).tocsr()[perm] if len(outside) else parts[0]
        fac = None
        if self.rec.learned:
            assert f.factor_row is not None and f.singular is not None
            _, factors = self.rec._arrays()
            frow = np.where(rows >= 0, f.factor_row[np.maximum(rows, 0)], -1)
            fac = np.zeros((len(rows), factors.shape[1]), dtype=np.float64)
            true = frow >= 0
            fac[true] = factors[frow[true]]
            if (~true).any():  # liked after the fit, or never liked at fit time: predicted
                scale = f.singular**self.rec.config.cf_singular_power
                fac[~true] = self.rec.predicted_factors(text[np.flatnonzero(~true)]) / scale
            if f.topics is not None and len(rows):
                topic_sim = on_grid(fac * f.singular, LEFT_BITS) @ f.topics.T  # exact
                return _Items([*self.slots], text, fac, topic_sim)
        return _Items([*self.slots], text, fac)

    def title(self, doc_id: str) -> str:
        row = self.f.index.get(doc_id)
        if row is not None:
            return self.f.titles[row]
        doc = self.known.get(doc_id)
        if doc is None and doc_id in self.cand_pos:
            doc = self.cands[self.cand_pos[doc_id]]
        return doc.title if doc is not None else doc_id

    # ---- candidates
    @property
    def xc_t(self) -> sp.csr_matrix:
        if self._xc_t is None:
            self._xc_t = self.xc.T.tocsr()
        return self._xc_t

    def cand_factors(self) -> np.ndarray:
        """Normalised candidate factors, predicted from the text (also for a candidate that had
        likes at fit time: mixing learned and predicted factors made P=10 worse)."""
        if self._qc is None:
            self._qc = on_grid(self.rec.predicted_factors(self.xc), RIGHT_BITS)
        return self._qc

    def duplicates(self) -> dict[int, list[int]]:
        if self._dups is None:
            self._dups = _near_duplicates(self.xc, self.rec.config.duplicate_threshold)
        return self._dups

    def trending(self) -> np.ndarray:
        if self._trending is None:
            self._trending = _trending_order(self.cands)
        return self._trending

    def blocked(self, fb: Feedback) -> np.ndarray:
        """Candidates this user must never get: liked, disliked, already sent."""
        pos = self.cand_pos
        out = [pos[lk.doc_id] for lk in fb.likes if lk.doc_id in pos]
        out += [pos[d] for d in fb.dislikes if d in pos]
        if len(fb.exclude) < len(pos):
            out += [pos[d] for d in fb.exclude if d in pos]
        else:
            out += [j for d, j in pos.items() if d in fb.exclude]
        return np.asarray(out, dtype=np.int64)

    def _kw_mask(self, word: str) -> np.ndarray:
        key = _fold(word).strip()
        if key not in self._kw:
            if self._texts is None:
                self._texts = [_fold(_doc_text(d, True)) for d in self.cands]
            pat = re.compile(r"(?<![a-z0-9])" + re.escape(key) + r"(?![a-z0-9])")
            self._kw[key] = np.fromiter(
                (bool(key) and pat.search(t) is not None for t in self._texts),
                bool,
                len(self._texts),
            )
        return self._kw[key]

    def _au_mask(self, name: str) -> np.ndarray:
        if name not in self._au:
            self._au[name] = np.fromiter(
                (_author_matches(name, d) for d in self.cands), bool, len(self.cands)
            )
        return self._au[name]

    def follows(self, fb: Feedback) -> tuple[np.ndarray, dict[int, str], np.ndarray]:
        """(bonus per candidate, reason per boosted candidate, muted mask)."""
        cfg = self.rec.config
        n = len(self.cands)
        muted = np.zeros(n, dtype=bool)
        for w in fb.muted_keywords:
            muted |= self._kw_mask(w)
        for a in fb.muted_authors:
            muted |= self._au_mask(a)
        bonus = np.zeros(n, dtype=np.float32)
        reason: dict[int, str] = {}
        for a in fb.authors:
            hit = self._au_mask(a)
            bonus[hit] = np.maximum(bonus[hit], cfg.author_boost)
            for j in np.flatnonzero(hit):
                reason.setdefault(int(j), f"By {a.strip()}, whom you follow")
        for w in fb.keywords:
            hit = self._kw_mask(w)
            bonus[hit] += cfg.keyword_boost
            for j in np.flatnonzero(hit):
                reason.setdefault(int(j), f"Matches your keyword “{w.strip()}”")
        return bonus, reason, muted


_new_object = object.__new__


def _plain_rec(doc_id: str, score: float, kind: Kind) -> Recommendation:
    """`Recommendation(doc_id, score, kind, "")`, twice as fast: the frozen dataclass's
    `__init__` sets each field through `object.__setattr__`; at k=100 for thousands of users
    that was a fifth of `rank`. Equal to the normal construction (tested)."""
    rec: Recommendation = _new_object(Recommendation)
    rec.__dict__.update(
        doc_id=doc_id, score=score, kind=kind, reason="", closest_liked_id=None, shared_terms=()
    )
    return rec


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _near_duplicates(x: sp.csr_matrix, threshold: float, chunk: int = 2048) -> dict[int, list[int]]:
    """Pairs of candidates whose cosine is >= threshold (computed once per rank call)."""
    out: dict[int, list[int]] = {}
    if threshold > 1.0 or x.shape[0] < 2:
        return out
    xt = x.T.tocsr()
    for start in range(0, x.shape[0], chunk):
        block = (x[start : start + chunk] @ xt).tocoo()
        keep = (block.data >= threshold) & (block.row + start != block.col)
        for r, c in zip(block.row[keep] + start, block.col[keep], strict=True):
            out.setdefault(int(r), []).append(int(c))
    return out


def _top_rows(total: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The `m` best columns of every row of `total`, best first, equal values by column
    (candidates are in id order: ties break by id, also at the cut). Returns (columns, values)."""
    n = total.shape[1]
    if m < n:
        short = np.argpartition(-total, m - 1, axis=1)[:, :m]
        vals = np.take_along_axis(total, short, axis=1)
        cut = vals.min(axis=1)
        # argpartition may keep any of several candidates tied at the cut: keep the first ones
        for i in np.flatnonzero(
            (total == cut[:, None]).sum(axis=1) > (vals == cut[:, None]).sum(axis=1)
        ):
            above = np.flatnonzero(total[i] > cut[i])
            tied = np.flatnonzero(total[i] == cut[i])[: m - len(above)]
            short[i] = np.concatenate([above, tied])
            vals[i] = total[i, short[i]]
    else:
        short = np.broadcast_to(np.arange(n), total.shape)
        vals = total
    order = np.lexsort((short, -vals), axis=-1)
    return np.take_along_axis(short, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _trending_order(cands: Sequence[Doc]) -> np.ndarray:
    """Most upvoted first, then newest, then id (stable, deterministic)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def key(i: int) -> tuple[float, float, str]:
        d = cands[i]
        up = float(d.upvotes or 0)
        ts = (_aware(d.published) - epoch).total_seconds() if d.published else -math.inf
        return (-up, -ts, d.id)

    return np.array(sorted(range(len(cands)), key=key), dtype=np.int64)


def _learn_topics(
    factors: np.ndarray, singular: np.ndarray, cfg: RecommenderConfig
) -> np.ndarray | None:
    """The interest topics of a fit (None: too few liked papers, or switched off)."""
    n_topics = min(cfg.interest_topics, factors.shape[0] // TOPIC_MIN_PAPERS)
    if n_topics > 1:
        return _spherical_kmeans_dense(factors.astype(np.float64) * singular, n_topics)
    return None


def _spherical_kmeans(x: sp.csr_matrix, m: int, iters: int = 10) -> np.ndarray:
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
    best, best_fit = x[:m], -np.inf
    for seed in range(max(1, restarts)):
        cent, fit = _kmeans_once(x, m, np.random.default_rng(seed))
        if fit > best_fit:  # the first of equals: deterministic
            best, best_fit = cent, fit
    return best


def _kmeans_once(
    x: np.ndarray, m: int, rng: np.random.Generator, iters: int = 20
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


def _readable_terms(cols: np.ndarray, vals: np.ndarray, f: _Fitted, limit: int) -> list[str]:
    """Top word terms of (column, weight) pairs; a bigram hides its words."""
    if len(cols) == 0 or limit <= 0:
        return []
    order = np.argsort(-vals, kind="stable")
    chosen: list[str] = []
    for i in order:
        col = int(cols[i])
        if col >= f.n_word_features:
            continue
        term = str(f.terms[col])
        words = set(term.split())
        if any(words <= set(c.split()) or set(c.split()) <= words for c in chosen):
            # keep the bigram when both are present
            if len(words) > 1:
                chosen = [c for c in chosen if not set(c.split()) <= words]
                chosen.append(term)
            continue
        chosen.append(term)
        if len(chosen) >= limit:
            break
    return chosen[:limit]
