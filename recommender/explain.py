"""Explanations for the picks: the liked paper closest in text and the terms both share (with
no shared term: the liked paper closest in the learned space), batched over users. A pick far
from every liked paper in text is explained by the reader's interest it comes from instead
("From your interest in …"). Terms are picked by their weight in both papers; the filler of
academic prose (`academic_stopwords.txt`: "furthermore", "general", "users" …) is never named,
and a bigram is named before its words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recommender.config import RecommenderConfig
from recommender.exact import LEFT_BITS, on_grid
from recommender.interests import _interests
from recommender.terms import _group_label, _readable_terms_of_rows, _surfaces
from recommender.types import Kind, Recommendation, _new_tuple

if TYPE_CHECKING:
    from recommender.context import _Context, _Items
    from recommender.profiles import _Plan
    from recommender.selection import _Follows, _PickList

# (pick, liked paper) pairs scored in one sparse product at most: bounds the memory of a batch
MAX_EXPLAIN_PAIRS = 200_000
# a pick whose closest liked paper has a TF-IDF cosine below this is "far": it is explained by
# the reader's interest, not by a weak "close to" ("shared: data"; on CiteULike coldstart/ the
# top 10s have 5 % of their picks below 0.11, and the links below 0.05 rarely make sense)
FAR_SIMILARITY = 0.05


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
    all_picks, group, slot_lists = _pairs(todo, plans)
    if not all_picks:
        return [[] for _ in todo]
    pick_vecs = ctx.xc[all_picks]
    sizes = np.fromiter(map(len, slot_lists), np.int64, len(slot_lists))
    lens = sizes[group]  # per pick: its pairs, one per liked paper of its user
    starts = np.cumsum(lens) - lens
    # pairs: every pick × its user's likes (`ps`: the liked paper's slot, in the user's order)
    first = np.cumsum(sizes) - sizes  # each user's first position in `flat`
    flat = np.concatenate(slot_lists)
    ps = flat[np.arange(int(lens.sum())) + np.repeat(first[group] - starts, lens)]
    sims = _pair_sims(pick_vecs, group, items.text, slot_lists)
    best_sim = np.maximum.reduceat(sims, starts)
    # first position of the maximum inside each pick's group of pairs
    hit = np.flatnonzero(sims == np.repeat(best_sim, lens))
    best = hit[np.searchsorted(hit, starts)] - starts  # index into the user's liked list
    far = best_sim < FAR_SIMILARITY  # the link is collaborative: closest in factor space
    far_rows = np.flatnonzero(far)
    if items.fac is not None and len(far_rows):
        best[far_rows] = _closest_in_factors(far_rows, group, slot_lists, all_picks, items, ctx)
    best_slots = ps[starts + best]
    overlap = pick_vecs.multiply(items.text[best_slots]).tocsr()
    overlap.sort_indices()
    terms = _readable_terms_of_rows(overlap, f, cfg.reason_terms)
    interests: dict[int, str] = {}  # far pick → the reader's interest it comes from
    if items.topic_sim is not None and len(far_rows):
        labels = ctx.rec._topic_labels()
        topics = items.topic_sim[best_slots[far_rows]].argmax(axis=1).tolist()
        interests = {q: labels[t] for q, t in zip(far_rows.tolist(), topics, strict=True)}
    near_of = (~far).tolist()
    liked_ids = [items.ids[s] for s in best_slots.tolist()]
    titles = ctx.short_titles(liked_ids, cfg.reason_title_chars)
    ids = ctx.cand_ids
    shown = _shown_terms(terms, near_of, all_picks, ctx, cfg)
    out: list[list[Recommendation]] = []
    r = 0  # row of the pick in all_picks
    for t in todo:
        p = plans[t.user]
        fol = follows.get(t.user)
        named: list[tuple[sp.csr_matrix, list[str]]] = []  # the user's interests, once made
        recs: list[Recommendation] = []
        for j, sc in zip(t.picks, t.scores, strict=True):
            liked_id = liked_ids[r]
            title = titles[liked_id]
            near = near_of[r]
            shared = shown[r]
            if near:
                interest = ""
            elif items.topic_sim is not None:
                interest = interests[r]
            else:
                interest = _interest_label(p, pick_vecs[r], named, items, ctx, cfg)
            if shared:
                reason = f"Close to “{title}” you liked — shared: {', '.join(shared)}"
            elif interest:
                reason = f"From your interest in {interest}"
            elif near:
                reason = f"Close to “{title}” you liked"
            else:
                reason = f"Close to “{title}” you liked — read by people with similar libraries"
            kind: Kind = "similar"
            if fol is not None and fol.bonus[j] > 0:
                kind = "followed"
                also = (
                    f"also from your interest in {interest}"
                    if interest
                    else f"also close to “{title}” you liked"
                )
                reason = f"{fol.reason[j]} · {also}"
            recs.append(_new_tuple(Recommendation, (ids[j], sc, kind, reason, liked_id, shared)))
            r += 1
        out.append(recs)
    return out


def _shown_terms(
    terms: list[list[str]],
    near: list[bool],
    picks: list[int],
    ctx: _Context,
    cfg: RecommenderConfig,
) -> list[tuple[str, ...]]:
    """The shared terms of every pick near its liked paper as the pick writes them
    (`terms._surfaces`: none across a sentence's end), remembered for the day's rank calls."""
    cache, words, cands = ctx.candidates.surfaces, ctx.candidates.words, ctx.cands
    out: list[tuple[str, ...]] = []
    for j, named, close in zip(picks, terms, near, strict=True):
        if not (close and named):
            out.append(())
            continue
        key = (j, *named)
        hit = cache.get(key)
        out.append(hit if hit is not None else _surfaces(cache, words, cands[j], key, cfg))
    return out


def _closest_in_factors(
    rows: np.ndarray,
    group: np.ndarray,
    slot_lists: list[np.ndarray],
    all_picks: list[int],
    items: _Items,
    ctx: _Context,
) -> np.ndarray:
    """For the picks `rows` (far from every liked paper in text; positions in `all_picks`, of
    user `group[row]`): the position in their user's liked list (`slot_lists[user]`) of the
    liked paper closest in factor space, the first of equals. A user's far picks share one
    table of the factors of their liked papers: on the grid, its product by all of them has
    the bits of its product by each (`recommender.exact`)."""
    assert items.fac is not None
    qc = ctx.cand_factors()
    picks = np.asarray(all_picks, dtype=np.int64)[rows]
    best = np.empty(len(rows), dtype=np.int64)
    first = np.flatnonzero(np.diff(group[rows], prepend=-1)).tolist()  # each user's first
    users = group[rows[first]].tolist()
    # the liked papers of these users on the grid, in one call (row by row: the same rows)
    sizes = [len(slot_lists[u]) for u in users]
    grid = on_grid(items.fac[np.concatenate([slot_lists[u] for u in users])], LEFT_BITS)
    ends = np.cumsum(sizes).tolist()
    for a, z, start, end in zip(first, [*first[1:], len(rows)], [0, *ends[:-1]], ends, strict=True):
        best[a:z] = np.argmax(grid[start:end] @ qc[picks[a:z]].T, axis=0)
    return best


def _pairs(
    todo: list[_PickList], plans: list[_Plan]
) -> tuple[list[int], np.ndarray, list[np.ndarray]]:
    """The picks of a chunk (candidate positions), each pick's user (a position in the list
    of slot lists), and the slots of the liked papers of every user with picks."""
    all_picks: list[int] = []
    pick_group: list[int] = []
    slot_lists: list[np.ndarray] = []
    for t in todo:
        if not t.picks:
            continue
        liked = plans[t.user].liked
        all_picks.extend(t.picks)
        pick_group.extend([len(slot_lists)] * len(t.picks))
        slot_lists.append(np.fromiter((sl for _, sl, _ in liked), np.int64, len(liked)))
    return all_picks, np.asarray(pick_group, dtype=np.int64), slot_lists


def _pair_sims(
    picks: sp.csr_matrix, group: np.ndarray, text: sp.csr_matrix, slot_lists: list[np.ndarray]
) -> np.ndarray:
    """The dot product of every pick (a row of `picks`, of user `group[row]`) with every liked
    paper of its user (rows `slot_lists[user]` of `text`), pick by pick: equal bit for bit to
    `picks[pp].multiply(text[ps]).sum(axis=1)` over those pairs, without building the pairs'
    rows. The products of the columns both hold are joined on (user, column) and summed per
    pair in scipy's order (`np.add.reduceat` over them, in the order its element-wise product
    lists them: by column for sorted rows, else in reverse order of the pick's row)."""
    n_cols = picks.shape[1]
    dtype = np.result_type(picks.dtype, text.dtype)
    # the likes' entries: (user, column) keys, sorted
    liked = text[np.concatenate(slot_lists)]
    liked_len = np.diff(liked.indptr)
    q_of = np.repeat(np.arange(liked.shape[0]), liked_len)  # entry → its row of `liked`
    sizes = np.asarray([len(s) for s in slot_lists], dtype=np.int64)
    q_user = np.repeat(np.arange(len(slot_lists)), sizes)  # row of `liked` → user
    first_q = np.cumsum(sizes) - sizes  # each user's first row of `liked`
    q_pos = np.arange(liked.shape[0]) - np.repeat(first_q, sizes)  # row → in the user's list
    by_key = _by_user_and_column(q_user[q_of], liked.indices, n_cols)
    key = (q_user[q_of] * n_cols + liked.indices)[by_key]
    # the picks' entries (in key order: sorted queries search faster), each matched with the
    # likes of its user holding its column
    pick_len = np.diff(picks.indptr)
    r_of = np.repeat(np.arange(picks.shape[0]), pick_len)
    pick_order = _by_user_and_column(group[r_of], picks.indices, n_cols)
    pick_key = (group[r_of] * n_cols + picks.indices)[pick_order]
    lo = np.searchsorted(key, pick_key, "left")
    count = np.searchsorted(key, pick_key, "right") - lo
    e = np.repeat(pick_order, count)  # per product: the pick's entry
    m = by_key[np.arange(len(e)) - np.repeat(np.cumsum(count) - count - lo, count)]
    prod = picks.data.astype(dtype, copy=False)[e] * liked.data.astype(dtype, copy=False)[m]
    pair_start = np.concatenate([[0], np.cumsum(sizes[group])[:-1]])
    pair = pair_start[r_of[e]] + q_pos[q_of[m]]
    if _sorted_rows(picks) and _sorted_rows(liked):  # scipy's canonical path: by column
        # a pair's products come by column already (the picks' entries are in key order)
        order = np.argsort(pair, kind="stable")
    else:  # its general path: the pick row's columns in reverse order (one sort of both keys)
        width = int(pick_len.max()) + 1
        order = np.argsort(pair * width - (e - picks.indptr[r_of[e]]), kind="stable")
    prod, pair = prod[order], pair[order]
    nonzero = prod != 0
    prod, pair = prod[nonzero], pair[nonzero]
    sims = np.zeros(int(sizes[group].sum()), dtype=dtype)
    if len(pair):
        first = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]]))
        sims[pair[first]] = np.add.reduceat(prod, first)
    return sims


def _by_user_and_column(user: np.ndarray, col: np.ndarray, n_cols: int) -> np.ndarray:
    """The order of entries by (user, column): two stable radix sorts on 16 bits when both fit
    (twice as fast as sorting the combined keys), else one sort of them. Entries of equal
    (user, column) keep their order."""
    if n_cols <= 1 << 16 and (len(user) == 0 or int(user.max()) < 1 << 16):
        by_col = np.argsort(col.astype(np.uint16), kind="stable")
        return by_col[np.argsort(user[by_col].astype(np.uint16), kind="stable")]
    return np.argsort(user.astype(np.int64) * n_cols + col, kind="stable")


def _sorted_rows(m: sp.csr_matrix) -> bool:
    """Whether every row's columns strictly increase (scipy's canonical format)."""
    up = np.ones(m.nnz, dtype=bool)
    up[1:] = m.indices[1:] > m.indices[:-1]
    up[m.indptr[:-1][np.diff(m.indptr) > 0]] = True  # a row's first entry
    return bool(up.all())


def _interest_label(
    p: _Plan,
    pick: sp.csr_matrix,
    named: list[tuple[sp.csr_matrix, list[str]]],
    items: _Items,
    ctx: _Context,
    cfg: RecommenderConfig,
) -> str:
    """The name of the reader's interest a far pick comes from, without interest topics (with
    them, cf-map: the label of the topic of the liked paper closest to it in factor space, made
    for all far picks of a chunk at once in `_explain_chunk`). Of the reader's interests (their
    liked papers, grouped), the one whose papers' terms the pick (`pick`: its TF-IDF row)
    shares most, named by the words its papers have in common ("protein folding"). "" when
    nothing can be named. `named`: the user's interests (summed rows, names) once made."""
    if not named:
        groups = [items.text[[p.liked[i].slot for i in g]] for g in _interests(p, items, cfg)]
        sums = sp.vstack([sp.csr_matrix(g.sum(axis=0)) for g in groups]).tocsr()
        named.append((sums, [_group_label(g, ctx.f) for g in groups]))
    sums, names = named[0]
    shared = np.asarray((sums @ pick.T).todense()).ravel()
    return names[int(np.argmax(shared))]  # the first of equals: the first interest


def _shorten(title: str, limit: int) -> str:
    """`title` cut at a word boundary to `limit` characters with "…", never inside LaTeX math
    or a braced group: "order $\\widetilde{O}(\\sqrt{d T \\log…" became, made readable, "order
    $O(√(d T log…” you liked)" (the rest of the reason inside the root)."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[: limit - 1].rsplit(" ", 1)[0]
    words = cut.split(" ")
    spans = _latex_spans(title)
    while len(words) > 1 and any(a < len(" ".join(words)) <= b for a, b in spans):
        words.pop()
    return " ".join(words).rstrip(" ,.;:") + "…"


_DOLLAR = re.compile(r"(?<!\\)\$")
_BRACE = re.compile(r"(?<!\\)[{}]")
_MACRO_END = re.compile(r"\\[A-Za-z]+\s*$")


def _latex_spans(text: str) -> list[tuple[int, int]]:
    """(opening, closing) positions of `text`'s math spans (dollars taken in pairs) and macro
    arguments ("\\sqrt{…}", "\\frac{…}{…}"). A dollar or brace that nothing closes opens
    nothing ("$100 budget: …" is money), and a group no macro opens is text: "{The yeast …}"."""
    dollars = [m.start() for m in _DOLLAR.finditer(text)]
    spans = list(zip(dollars[::2], dollars[1::2], strict=False))
    opened: list[tuple[int, bool]] = []  # an open brace, and whether it opens a macro argument
    argument_end = -2  # where the last macro argument closed: "}{" opens the next one
    for m in _BRACE.finditer(text):
        at = m.start()
        if m.group() == "{":
            opened.append((at, at == argument_end + 1 or bool(_MACRO_END.search(text, 0, at))))
        elif opened:
            start, argument = opened.pop()
            if argument:
                spans.append((start, at))
                argument_end = at
    return spans
