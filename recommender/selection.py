"""Stage 6, selection: the short list of every user's best scores (`_top_rows`), then per
user a greedy pass over it — near-duplicates collapse, each interest gets its share, optional
MMR — and the cold start (follows, then trending) for users without usable likes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recommender.config import RecommenderConfig
from recommender.interests import _share_order
from recommender.profiles import _aware
from recommender.types import Doc, Feedback, Kind, Recommendation

if TYPE_CHECKING:
    from recommender.context import _Context
    from recommender.profiles import _Plan


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


def _pick(
    pool: np.ndarray,
    total: np.ndarray,
    scores: np.ndarray,
    rows: list[int],
    p: _Plan,
    fbonus: np.ndarray | None,
    ctx: _Context,
    k: int,
    cfg: RecommenderConfig,
) -> list[int]:
    if len(rows) > 1:  # several interests: each gets its share (MMR off)
        groups = scores[rows][:, pool]
        if fbonus is not None:
            groups = groups + fbonus[pool]
        order = pool[_share_order(groups, np.asarray(p.group_sizes, dtype=np.float64))]
        if fbonus is not None:  # a followed match still comes first
            order = order[np.argsort(fbonus[order] <= 0, kind="stable")]
        return _greedy(order.tolist(), ctx, k, None, cfg)
    return _greedy(pool.tolist(), ctx, k, total, cfg)


def _greedy(
    order: list[int], ctx: _Context, k: int, scores: np.ndarray | None, cfg: RecommenderConfig
) -> list[int]:
    """Pick k from `order` (best first): skip near-duplicates of earlier picks; optional
    MMR (with `scores`)."""
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


def _cold(
    fb: Feedback,
    ctx: _Context,
    k: int,
    blocked: np.ndarray,
    fbonus: np.ndarray | None,
    freason: Mapping[int, str] | None,
    cfg: RecommenderConfig,
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
    picks = _greedy([int(j) for j in order] + rest, ctx, k, None, cfg)
    recs = []
    for j in picks:
        if bonus[j] > 0:
            assert freason is not None
            s = float(min(1.0, bonus[j]))
            recs.append(Recommendation(ctx.cands[j].id, s, "followed", freason[j]))
        else:
            recs.append(Recommendation(ctx.cands[j].id, 0.0, "trending", "Trending today"))
    return recs


def _recommend(
    picks: list[int], total: np.ndarray, fbonus: np.ndarray | None, ctx: _Context
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


def _trending_order(cands: Sequence[Doc]) -> np.ndarray:
    """Most upvoted first, then newest, then id (stable, deterministic)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def key(i: int) -> tuple[float, float, str]:
        d = cands[i]
        up = float(d.upvotes or 0)
        ts = (_aware(d.published) - epoch).total_seconds() if d.published else -math.inf
        return (-up, -ts, d.id)

    return np.array(sorted(range(len(cands)), key=key), dtype=np.int64)
