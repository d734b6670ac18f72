"""Explanations for the picks: the liked paper closest in text and the terms both share (with
no shared term: the liked paper closest in the learned space), batched over users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, on_grid
from recommender.state import _Fitted
from recommender.types import Kind, Recommendation

if TYPE_CHECKING:
    from recommender.context import _Context, _Items
    from recommender.profiles import _Plan
    from recommender.selection import _Follows, _PickList

# (pick, liked paper) pairs scored in one sparse product at most: bounds the memory of a batch
MAX_EXPLAIN_PAIRS = 200_000


def _explain(
    todo: list[_PickList],
    plans: list[_Plan],
    follows: Mapping[int, _Follows],
    items: _Items,
    ctx: _Context,
    cfg: RecommenderConfig,
    max_pairs: int = MAX_EXPLAIN_PAIRS,
) -> list[list[Recommendation]]:
    """For every pick: the liked paper closest in text and the terms both share (with no
    shared term: the liked paper closest in the learned space). Batched over users: the
    (pick, liked paper) pairs of many users are scored in one sparse product. One list of
    recommendations per entry of `todo` (`plans` and `follows`: by position in the batch)."""
    out: list[list[Recommendation]] = []
    chunk: list[_PickList] = []
    pairs = 0
    for t in todo:
        n_pairs = len(t.picks) * len(plans[t.user].liked)
        if chunk and pairs + n_pairs > max_pairs:
            out.extend(_explain_chunk(chunk, plans, follows, items, ctx, cfg))
            chunk, pairs = [], 0
        chunk.append(t)
        pairs += n_pairs
    if chunk:
        out.extend(_explain_chunk(chunk, plans, follows, items, ctx, cfg))
    return out


def _explain_chunk(
    todo: list[_PickList],
    plans: list[_Plan],
    follows: Mapping[int, _Follows],
    items: _Items,
    ctx: _Context,
    cfg: RecommenderConfig,
) -> list[list[Recommendation]]:
    f = ctx.f
    all_picks: list[int] = []
    pair_pick: list[np.ndarray] = []  # index into all_picks
    pair_slot: list[np.ndarray] = []
    group_len: list[int] = []  # pairs per pick (= the user's liked count)
    for t in todo:
        picks = t.picks
        slots = np.asarray([sl for _, sl, _ in plans[t.user].liked], dtype=np.int64)
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
    for t in todo:
        p = plans[t.user]
        fol = follows.get(t.user)
        recs: list[Recommendation] = []
        for j, sc in zip(t.picks, t.scores, strict=True):
            liked_id = p.liked[int(best[r])].doc_id
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
            if fol is not None and fol.bonus[j] > 0:
                kind = "followed"
                reason = f"{fol.reason[j]} · also close to “{title}” you liked"
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


def _shorten(title: str, limit: int) -> str:
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"
