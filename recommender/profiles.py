"""Stage 5, profiles: each user's feedback resolved against the rank call's items (`_Plan`),
then one profile per (user, interest) — the weighted mean of the liked papers' factors (or
text rows) minus a share of the disliked ones — and their scores against the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, on_grid
from recommender.interests import _interests, _several_interests
from recommender.types import Feedback

if TYPE_CHECKING:
    from recommender.context import _Context, _Items


@dataclass
class _Plan:
    """One user's resolved feedback for a rank call (slots index the call's item table)."""

    liked: list[tuple[str, int, float]]  # (doc id, slot, weight)
    disliked: list[int]  # slots
    group_sizes: list[int] = field(default_factory=list)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _profile_plan(fb: Feedback, ctx: _Context, now: datetime, cfg: RecommenderConfig) -> _Plan:
    n = len(fb.likes)
    dated = n > 0 and all(lk.at is not None for lk in fb.likes)
    slot = ctx.slot
    known_slot = ctx.slots.get
    disliked = [s for s in map(slot, fb.dislikes) if s is not None]
    weighted = (dated and cfg.recency_half_life_days) or (cfg.recency_half_life_likes and not dated)
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
    plans: list[_Plan], items: _Items, cfg: RecommenderConfig
) -> tuple[tuple[np.ndarray | None, sp.csr_matrix | None], list[int]]:
    """One row per (user, interest) in factor space and/or text space;
    `owner[row]` is the user's position in the batch."""
    n_slots = len(items.ids)
    lr: list[int] = []
    lc: list[int] = []
    lv: list[float] = []
    dr: list[int] = []
    dc: list[int] = []
    dv: list[float] = []
    owner: list[int] = []
    row = 0
    several = _several_interests(plans, items, cfg)
    for b, p in enumerate(plans):
        if not p.liked:
            continue
        groups: Sequence[Sequence[int]]
        if several is not None and not several[b]:  # the common case: one interest
            p.group_sizes = [len(p.liked)]
            groups = [range(len(p.liked))]
        else:
            groups = _interests(p, items, cfg)
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


def _score(
    profiles: tuple[np.ndarray | None, sp.csr_matrix | None],
    ctx: _Context,
    cfg: RecommenderConfig,
) -> np.ndarray:
    """Profiles × candidates → cosine-like score in [0, 1] per (user, interest) row."""
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
