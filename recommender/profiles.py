"""Stage 5, profiles: each user's feedback resolved against the rank call's items (`_Plan`),
then one profile per (user, interest) — the weighted mean of the liked papers' factors (or
text rows) minus a share of the disliked ones (`_Profiles`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, on_grid
from recommender.interests import _interests, _several_interests
from recommender.types import Feedback, _new_tuple

if TYPE_CHECKING:
    from recommender.context import _Context, _Items

SECONDS_PER_DAY = 86400.0


class _Liked(NamedTuple):
    """A liked doc as a profile uses it."""

    doc_id: str
    slot: int  # row of the rank call's item table (`_Items`)
    weight: float  # like_weight, halved per recency half-life


@dataclass(frozen=True)
class _Plan:
    """One user's resolved feedback for a rank call (slots index the call's item table)."""

    liked: list[_Liked]
    disliked: list[int]  # slots


@dataclass(frozen=True)
class _Profiles:
    """The profiles of a batch of users: one row per (user, interest), in factor space and/or
    text space."""

    fac: np.ndarray | None  # rows × factors, on the LEFT_BITS grid (None: text only)
    text: sp.csr_matrix | None  # rows × features (None: factors only)
    owner: list[int]  # row → the user's position in the batch (a user's rows are adjacent)
    # per position in the batch: the liked papers of each of the user's interests, counted
    # ([] for a user without usable likes); an interest's share of the digest follows from it
    group_sizes: list[list[int]]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _profile_plan(fb: Feedback, ctx: _Context, now: datetime, cfg: RecommenderConfig) -> _Plan:
    """`fb`'s likes (weighted; recency halves a like's weight per half-life) and dislikes as
    slots of the call's item table; docs neither in the corpus nor known are left out."""
    n = len(fb.likes)
    dated = n > 0 and all(lk.at is not None for lk in fb.likes)
    slot = ctx.slot
    known_slot = ctx.slots.get
    disliked = [s for s in map(slot, fb.dislikes) if s is not None]
    weighted = (dated and cfg.recency_half_life_days) or (cfg.recency_half_life_likes and not dated)
    if not weighted:  # the common case: every like weighs the same
        w = cfg.like_weight
        liked = [
            _new_tuple(_Liked, (lk.doc_id, s, w))
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
            age = (_aware(now) - _aware(lk.at)).total_seconds() / SECONDS_PER_DAY
            w *= 0.5 ** (max(age, 0.0) / cfg.recency_half_life_days)
        elif cfg.recency_half_life_likes and not dated:
            w *= 0.5 ** ((n - 1 - pos) / cfg.recency_half_life_likes)
        liked.append(_Liked(lk.doc_id, s, w))
    return _Plan(liked=liked, disliked=disliked)


def _unit_rows(x: Any) -> Any:
    """`sklearn.preprocessing.normalize(x)` (l2 rows), equal bit for bit. A dense `x` (a
    product made for this call) is scaled in place, without normalize's checked copy of it:
    the same norms (`row_norms`: einsum, sqrt), near-zero ones replaced by 1 as
    `_handle_zeros_in_scale` does, the same division."""
    if sp.issparse(x) or not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        return normalize(x)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    x /= norms[:, None]
    return x


def _profile_alpha(n_likes: np.ndarray, prior_likes: float) -> np.ndarray:
    """The weight of the learned factors in a profile of `n_likes` likes: n / (n + m), m =
    `prior_likes` (0: 1, the learned factors only; math.inf: 0, the predicted ones only)."""
    n = np.asarray(n_likes, dtype=np.float64)
    if prior_likes == 0.0:
        return np.ones_like(n)
    if math.isinf(prior_likes):
        return np.zeros_like(n)
    alpha: np.ndarray = n / (n + prior_likes)
    return alpha


def _factor_profiles(
    learned: Callable[[], np.ndarray],
    predicted: Callable[[], np.ndarray] | None,
    n_likes: np.ndarray,
    prior_likes: float,
) -> np.ndarray:
    """Profile rows in factor space (`learned`, `predicted`: the profile rows of the liked
    papers' learned and predicted factors, `n_likes`: per row): of the first, of the second,
    or n/(n+m) of the first and the rest of the second (m = `prior_likes`), each part a unit
    row."""
    if predicted is None or prior_likes == 0:
        return learned()
    if math.isinf(prior_likes):
        return predicted()
    alpha = _profile_alpha(n_likes, prior_likes)[:, None]
    mixed: np.ndarray = alpha * _unit_rows(learned()) + (1.0 - alpha) * _unit_rows(predicted())
    return mixed


def _times(table: Any) -> Callable[[sp.csr_matrix], Any]:
    """The product of profile rows × slots by `table` (one row per slot)."""
    if sp.issparse(table):
        return lambda m: sp.csr_matrix(m @ table)
    return lambda m: m @ table


def _predicted_times(items: _Items) -> Callable[[sp.csr_matrix], Any] | None:
    """The product by the liked papers' predicted factors (None: not needed): the model's
    table, read in place at `items.pred_row` (`items.fac` for the slots without a row there)."""
    pred, rows, fac = items.pred, items.pred_row, items.fac
    if pred is None:
        return None
    assert rows is not None and fac is not None
    return lambda m: _in_place(m, rows, pred, fac)


def _in_place(m: sp.csr_matrix, rows: np.ndarray, table: np.ndarray, fac: np.ndarray) -> Any:
    """`m` (profile rows × slots) @ the slots' factors, read in place: slot s is row `rows[s]`
    of `table`, or row s of `fac` where `rows[s]` is −1. Both products keep the entries'
    order: a profile row without slots of the second kind sums exactly as `m` @ a table of
    the slots' rows would (+ 0.0), the others add the two parts."""
    at = rows[m.indices]
    own = at < 0
    n = m.shape[0]
    if not own.any():
        return sp.csr_matrix((m.data, at, m.indptr), shape=(n, len(table))) @ table
    row_of = np.repeat(np.arange(n), np.diff(m.indptr))

    def part(keep: np.ndarray, cols: np.ndarray, width: int) -> sp.csr_matrix:
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=n))])
        return sp.csr_matrix((m.data[keep], cols[keep], indptr), shape=(n, width))

    return part(~own, at, len(table)) @ table + part(own, m.indices, len(fac)) @ fac


def _profiles(
    plans: list[_Plan],
    items: _Items,
    cfg: RecommenderConfig,
    *,
    prior_likes: float = 0.0,
    text_weight: float = 0.0,
) -> _Profiles:
    """One row per (user, interest) in factor space and/or text space (`plans`: the batch's).
    A factor profile of n likes leans n / (n + `prior_likes`) on the learned factors of the
    liked papers and the rest on the ones predicted from their text (`items.pred`);
    `text_weight` > 0 also builds the text profiles (`recommender.calibration`)."""
    n_slots = len(items.ids)
    lr: list[int] = []
    lc: list[int] = []
    lv: list[float] = []
    dr: list[int] = []
    dc: list[int] = []
    dv: list[float] = []
    owner: list[int] = []
    group_sizes: list[list[int]] = [[] for _ in plans]
    row = 0
    several = _several_interests(plans, items, cfg)
    for b, p in enumerate(plans):
        if not p.liked:
            continue
        groups: Sequence[Sequence[int]]
        if several is not None and not several[b]:  # the common case: one interest
            groups = [range(len(p.liked))]
        else:
            groups = _interests(p, items, cfg)
        group_sizes[b] = [len(g) for g in groups]
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
        return _Profiles(None, None, owner, group_sizes)
    shape = (row, n_slots)
    liked = sp.csr_matrix((lv, (lr, lc)), shape=shape, dtype=np.float64)
    disliked = sp.csr_matrix((dv, (dr, dc)), shape=shape, dtype=np.float64) if dr else None
    gamma = cfg.dislike_weight

    def build(times: Callable[[sp.csr_matrix], Any]) -> Any:
        """Profile rows from the products of the weights (`times`: weights → product)."""
        prof = _unit_rows(times(liked))
        if disliked is not None and gamma > 0:
            prof = prof - gamma * _unit_rows(times(disliked))
        return prof

    fac = None
    text = None
    if items.fac is not None:
        n_likes = np.bincount(lr, minlength=row)
        by_predicted = _predicted_times(items)
        predicted = None if by_predicted is None else functools.partial(build, by_predicted)
        learned = functools.partial(build, _times(items.fac))
        prof = _factor_profiles(learned, predicted, n_likes, prior_likes)
        fac = on_grid(prof, LEFT_BITS)  # exact products (recommender.exact)
    if items.fac is None or text_weight > 0:
        text = sp.csr_matrix(build(_times(items.text)), dtype=np.float32)
    return _Profiles(fac, text, owner, group_sizes)
