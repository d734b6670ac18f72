"""Stage 6, scores and selection: every (user, interest) profile × the candidates in one
product, the short list of every user's best scores (`_top_rows`), then per user a greedy pass
over it — follows and mutes, near-duplicates collapse, each interest gets its share, optional
MMR — and the cold start (follows, then trending) for users without usable likes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.sparse import _sparsetools  # the sparse product's kernel (`_dense_product`)

from recommender.config import RecommenderConfig
from recommender.features import _fold
from recommender.interests import _share_order
from recommender.profiles import _aware
from recommender.types import Doc, Feedback, Kind, Recommendation, _new_tuple

if TYPE_CHECKING:
    from recommender.context import _Context
    from recommender.profiles import _Profiles

# the short list holds shortlist_factor × k candidates plus this many: room for the
# near-duplicates and interest shares of a small k
SHORTLIST_EXTRA = 20
# a digest keeps at most this share for papers matching a followed keyword (the daemon's
# `digest.keyword_share`): they do not crowd out the papers learned from likes
KEYWORD_SHARE = 0.5
# a reader without likes: candidates this close in text (TF-IDF cosine) to a paper they
# disliked come after the others. On CiteULike-a, 11 % of the pairs of papers of one library
# are this close, 0.7 % of the pairs drawn at random (1,500 of each).
DISLIKED_NEAR = 0.1
DUPLICATE_CHUNK = 2048  # near-duplicates: candidate rows per sparse product (bounds memory)
_NO_CANDIDATE = np.empty(0, dtype=np.int64)
# another record of a liked or disliked paper (`_near_known`): enough text on both sides to
# tell (on CiteULike a title alone has 7 terms in the median, with its abstract 81), half
# the title's words and the same numbers in the titles
SAME_PAPER_TERMS = 40
SAME_PAPER_TITLE = 0.5
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+|(?=[ivx])x{0,3}(?:ix|iv|v?i{0,3})")  # "2", "2015", "ii", "xiii"


@dataclass(frozen=True)
class _Follows:
    """What one user's follows and mutes do to the candidates."""

    bonus: np.ndarray  # per candidate: author_boost if by a followed author, + keyword_boost
    reason: dict[int, str]  # boosted candidate → why ("By …, whom you follow")
    muted: np.ndarray  # per candidate: matches a muted keyword or author
    keyword_only: np.ndarray  # per candidate: matches a followed keyword, by no followed author


@dataclass(frozen=True)
class _PickList:
    """One user's picks, best first, before they become recommendations."""

    user: int  # position in the batch
    picks: list[int]  # candidate positions
    scores: list[float]  # their scores, clipped to [0, 1]


@dataclass(frozen=True)
class _BatchScores:
    """A batch's scores. The rows of `total` are adjusted in place by `_boost_and_block`
    (it is the batch's own array: a copy per user would cost more than the selection)."""

    scores: np.ndarray  # one row per profile row (user, interest) × candidates, in [0, 1]
    total: np.ndarray  # one row per user with a profile: the best of the user's rows
    users: list[int]  # batch positions with a profile, in the order of the rows of `total`
    user_rows: dict[int, list[int]]  # batch position → its rows of `scores` (adjacent)
    row_of: dict[int, int]  # batch position → its row of `total`


def _score(profiles: _Profiles, ctx: _Context, cfg: RecommenderConfig) -> np.ndarray:
    """Profiles × candidates → cosine-like score in [0, 1] per (user, interest) row."""
    fac, text = profiles.fac, profiles.text
    text_weight = ctx.f.text_weight  # the fitted value (`RecommenderConfig.text_weight`)
    parts: list[tuple[float, np.ndarray]] = []
    if fac is not None:
        parts.append((1.0 - text_weight, fac @ ctx.cand_factors().T))
    if text is not None:
        w = text_weight if fac is not None else 1.0
        parts.append((w, np.asarray(_dense_product(text, ctx.xc_t), dtype=np.float32)))
    total = parts[0][0] * parts[0][1]
    for w, s in parts[1:]:
        total += w * s
    return np.clip(total, 0.0, 1.0, out=total).astype(np.float32, copy=False)


def _dense_product(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """`(a @ b).toarray()`, equal bit for bit: scipy's own sparse product kernel (the same sums
    in the same order), without the first of its two passes, which only counts the result's
    nonzeros to size it. A batch's text scores are half dense: sized rows × columns at once,
    the product takes half the time."""
    m, n = a.shape[0], b.shape[1]
    dtype = np.result_type(a.dtype, b.dtype)
    idx = np.int32 if max(m * n, a.nnz, b.nnz, a.shape[1]) < np.iinfo(np.int32).max else np.int64
    indptr = np.empty(m + 1, dtype=idx)
    indices = np.empty(m * n, dtype=idx)
    data = np.empty(m * n, dtype=dtype)
    _sparsetools.csr_matmat(
        m, n,
        np.asarray(a.indptr, dtype=idx), np.asarray(a.indices, dtype=idx),
        np.asarray(a.data, dtype=dtype),
        np.asarray(b.indptr, dtype=idx), np.asarray(b.indices, dtype=idx),
        np.asarray(b.data, dtype=dtype),
        indptr, indices, data,
    )  # fmt: skip
    # the result's entries into a zeroed array by scipy's own kernel (its `toarray`): every
    # entry is a nonzero sum (the product keeps no zeros) of a column of its own, added to 0
    out = np.zeros((m, n), dtype=dtype)
    _sparsetools.csr_todense(m, n, indptr, indices, data, out)
    return out


def _batch_scores(profiles: _Profiles, ctx: _Context, cfg: RecommenderConfig) -> _BatchScores:
    """Scores of a batch's profiles; a user's total is the best of their interests' scores."""
    n = len(ctx.cands)
    user_rows: dict[int, list[int]] = {}
    for r, b in enumerate(profiles.owner):
        user_rows.setdefault(b, []).append(r)
    has = list(user_rows)  # batch positions with a profile, in row order
    row_of = {b: i for i, b in enumerate(has)}
    scores = np.zeros((0, n), dtype=np.float32)
    total = scores
    if has:
        scores = _score(profiles, ctx, cfg)  # rows: (user, interest)
        starts = [user_rows[b][0] for b in has]
        total = scores[starts]  # a copy; with several interests: the best of the rows
        if len(profiles.owner) > len(has):
            for i, b in enumerate(has):
                rows = user_rows[b]
                if len(rows) > 1:
                    np.max(scores[rows[0] : rows[-1] + 1], axis=0, out=total[i])
    return _BatchScores(scores, total, has, user_rows, row_of)


def _follows(fb: Feedback, ctx: _Context, cfg: RecommenderConfig) -> _Follows | None:
    """The bonus, reasons and mutes of `fb`'s followed/muted keywords and authors (None: it
    follows and mutes nothing)."""
    if not (fb.keywords or fb.authors or fb.muted_keywords or fb.muted_authors):
        return None
    n = len(ctx.cands)
    muted = np.zeros(n, dtype=bool)
    for w in fb.muted_keywords:
        muted |= ctx.keyword_mask(w)
    for a in fb.muted_authors:
        muted |= ctx.author_mask(a)
    bonus = np.zeros(n, dtype=np.float32)
    reason: dict[int, str] = {}
    # the first reason of a candidate stays (`|`: the right one wins), built in C per match
    for a in fb.authors:
        hit = ctx.author_mask(a)
        bonus[hit] = np.maximum(bonus[hit], cfg.author_boost)
        reason = (
            dict.fromkeys(np.flatnonzero(hit).tolist(), f"By {a.strip()}, whom you follow") | reason
        )
    by_author = bonus > 0
    keyword = np.zeros(n, dtype=bool)
    for w in fb.keywords:
        hit = ctx.keyword_mask(w)
        keyword |= hit
        bonus[hit] += cfg.keyword_boost
        words = f"Matches your keyword “{w.strip()}”"
        reason = dict.fromkeys(np.flatnonzero(hit).tolist(), words) | reason
    return _Follows(bonus, reason, muted, keyword & ~by_author)


def _boost_and_block(
    fb: Feedback,
    fol: _Follows | None,
    total: np.ndarray | None,
    ctx: _Context,
    cfg: RecommenderConfig,
    near: np.ndarray = _NO_CANDIDATE,
) -> np.ndarray:
    """The candidates `fb` must not get: liked, disliked, already sent, another record of one
    of those (`near`: of the liked and disliked papers, `_near_known`; `_sent_twins`), and
    muted (unless `mute_penalty` pushes them down instead). With a profile (`total`: the
    user's row of the batch's totals), adds the follow bonus to it and sets the blocked ones
    to −∞, in place."""
    blocked = ctx.blocked(fb)
    twins = _sent_twins(fb, ctx) if fb.exclude else []
    if twins or len(near):
        blocked = np.concatenate([blocked, near, np.asarray(twins, dtype=np.int64)])
    if fol is not None:
        if total is not None and cfg.mute_penalty is not None:
            total += fol.bonus - cfg.mute_penalty * fol.muted
        else:
            if total is not None:
                total += fol.bonus
            blocked = np.concatenate([blocked, np.flatnonzero(fol.muted)])
    if total is not None:
        total[blocked] = -np.inf
    return blocked


def _select(
    sc: _BatchScores,
    group_sizes: list[list[int]],
    follows: Mapping[int, _Follows],
    ctx: _Context,
    k: int,
    cfg: RecommenderConfig,
    keyword_share: float = 1.0,
) -> list[_PickList]:
    """Every user's `k` picks from their short list (`group_sizes`: per batch position, the
    likes of each interest; `follows`: per batch position that follows or mutes anything).
    Papers matching a followed keyword (and no followed author) hold at most `keyword_share`
    of every prefix of a digest while other papers remain."""
    n = len(ctx.cands)
    m = min(n, max(1, cfg.shortlist_factor) * k + SHORTLIST_EXTRA)
    short, vals = _top_rows(sc.total, m)
    out: list[_PickList] = []
    for i, b in enumerate(sc.users):
        total = sc.total[i]
        pool = short[i][np.isfinite(vals[i])]
        rows = sc.user_rows[b] if len(sc.user_rows[b]) > 1 else []
        fol = follows.get(b)
        fbonus = None if fol is None else fol.bonus
        if fol is not None and keyword_share < 1.0 and fol.keyword_only[pool].any():
            # keyword hits may fill the short list: a short list of each kind, then capped
            pool = _two_short_lists(total, fol.keyword_only, m)
            picks = _pick(pool, total, sc.scores, rows, group_sizes[b], fbonus, ctx, len(pool), cfg)
            picks = _capped(picks, fol.keyword_only, keyword_share, k)
            out.append(_PickList(b, picks, np.clip(total[picks], 0.0, 1.0).tolist()))
            continue
        picks = _pick(pool, total, sc.scores, rows, group_sizes[b], fbonus, ctx, k, cfg)
        if len(picks) < k and m < n:  # short list exhausted by duplicates: full order
            pool = np.argsort(-total, kind="stable")
            pool = pool[np.isfinite(total[pool])]
            picks = _pick(pool, total, sc.scores, rows, group_sizes[b], fbonus, ctx, k, cfg)
        out.append(_PickList(b, picks, np.clip(total[picks], 0.0, 1.0).tolist()))
    return out


def _two_short_lists(total: np.ndarray, kind: np.ndarray, m: int) -> np.ndarray:
    """The `m` best candidates of each kind (`kind`: per candidate, True or False) of the
    finite ones of `total`, together, best first, equal values by column: the first `m` of
    each kind in the order of a stable sort of the whole row, without sorting it all."""
    finite = np.isfinite(total)
    pool = np.concatenate(
        [_best_of(np.flatnonzero(finite & kind), total, m),
         _best_of(np.flatnonzero(finite & ~kind), total, m)]
    )  # fmt: skip
    return pool[np.lexsort((pool, -total[pool]))]


def _best_of(cols: np.ndarray, total: np.ndarray, m: int) -> np.ndarray:
    """The `m` best of the columns `cols` (ascending) by `total`, equal values by column, in
    no particular order: one partition of their values (7× faster per user than `_top_rows`
    on a row with the other kind set to −∞)."""
    if len(cols) <= m:
        return cols
    values = total[cols]
    cut = np.partition(values, len(values) - m)[len(values) - m]
    above = cols[values > cut]
    return np.concatenate([above, cols[values == cut][: m - len(above)]])


def _capped(picks: list[int], keyword: np.ndarray, share: float, k: int) -> list[int]:
    """The first `k` of `picks` (best first) reordered so that the keyword hits (`keyword`:
    per candidate) hold at most `share` of every prefix while other picks remain; each kind
    keeps its order. 0.5: other, hit, other, hit, …"""
    hits = [i for i, j in enumerate(picks) if keyword[j]]  # positions in `picks`
    rest = [i for i, j in enumerate(picks) if not keyword[j]]
    out: list[int] = []
    h = r = 0
    while len(out) < k and (h < len(hits) or r < len(rest)):
        allowed = (h + 1) <= share * (len(out) + 1) + 1e-9
        if h < len(hits) and (r >= len(rest) or (allowed and hits[h] < rest[r])):
            out.append(picks[hits[h]])
            h += 1
        else:
            out.append(picks[rest[r]])
            r += 1
    return out


def _top_rows(total: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The `m` best columns of every row of `total`, best first, equal values by column
    (candidates are in id order: ties break by id, also at the cut). Returns (columns, values)."""
    n = total.shape[1]
    if m < n:
        # the m-th best value of each row (a partition of values: faster than of indices),
        # then everything at or above it, row by row in column order
        cut = np.partition(total, n - m, axis=1)[:, n - m]
        keep = total >= cut[:, None]
        # a value equal at the m-th and the (m+1)-th place: keep the first of the tied
        # candidates (rare: scores are exact, mostly distinct)
        for i in np.flatnonzero(keep.sum(axis=1) > m):
            above = int(np.count_nonzero(total[i] > cut[i]))
            keep[i, np.flatnonzero(total[i] == cut[i])[m - above :]] = False
        rows, cols = np.nonzero(keep)
        short = cols.reshape(-1, m)
        vals = total[rows, cols].reshape(-1, m)
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
    group_sizes: list[int],
    fbonus: np.ndarray | None,
    ctx: _Context,
    k: int,
    cfg: RecommenderConfig,
) -> list[int]:
    """Up to `k` of `pool` (best first). `rows`: the user's rows of `scores` when they have
    several interests (else []), `group_sizes`: the likes of each interest."""
    if len(rows) > 1:  # several interests: each gets its share (MMR off)
        groups = scores[rows][:, pool]
        if fbonus is not None:
            groups = groups + fbonus[pool]
        order = pool[_share_order(groups, np.asarray(group_sizes, dtype=np.float64))]
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
    ctx: _Context,
    k: int,
    blocked: np.ndarray,
    fol: _Follows | None,
    cfg: RecommenderConfig,
    disliked: sp.csr_matrix | None = None,
) -> list[Recommendation]:
    """No usable likes: followed keywords/authors first (trending among equals), then
    trending (most upvoted, then newest). With dislikes (`disliked`: their TF-IDF rows), a
    near-duplicate of a disliked paper is left out and the papers close to one in text come
    after the others."""
    n = len(ctx.cands)
    ban = np.zeros(n, dtype=bool)
    ban[blocked] = True
    near = np.zeros(n, dtype=bool)
    if disliked is not None and disliked.shape[0]:
        closest = np.asarray((ctx.xc @ disliked.T).max(axis=1).todense()).ravel()
        ban |= closest >= cfg.duplicate_threshold
        near = closest >= DISLIKED_NEAR
    bonus = fol.bonus if fol is not None else np.zeros(n, dtype=np.float32)
    trending = ctx.trending()
    tr_rank = np.empty(n, dtype=np.int64)
    tr_rank[trending] = np.arange(n)
    eligible = np.flatnonzero((bonus > 0) & ~ban)
    order = eligible[np.lexsort((tr_rank[eligible], -bonus[eligible]))]
    rest = [int(j) for j in trending if not ban[j] and bonus[j] <= 0]
    if near.any():  # stable: trending order within each part
        rest = [j for j in rest if not near[j]] + [j for j in rest if near[j]]
    picks = _greedy([int(j) for j in order] + rest, ctx, k, None, cfg)
    recs = []
    for j in picks:
        if bonus[j] > 0:
            assert fol is not None
            s = float(min(1.0, bonus[j]))
            recs.append(Recommendation(ctx.cands[j].id, s, "followed", fol.reason[j]))
        else:
            recs.append(Recommendation(ctx.cands[j].id, 0.0, "trending", "Popular today"))
    return recs


def _recommend(pl: _PickList, fol: _Follows | None, ctx: _Context) -> list[Recommendation]:
    """Recommendations without explanations (the fast path of `rank(explain=False)`)."""
    ids = ctx.cand_ids
    picks, score = pl.picks, pl.scores
    if fol is None:
        return [_plain_rec(ids[j], s, "similar") for j, s in zip(picks, score, strict=True)]
    fbonus = fol.bonus
    return [
        _plain_rec(ids[j], s, "followed" if fbonus[j] > 0 else "similar")
        for j, s in zip(picks, score, strict=True)
    ]


def _plain_rec(doc_id: str, score: float, kind: Kind) -> Recommendation:
    """`Recommendation(doc_id, score, kind, "")` without the keyword handling of the named
    tuple's constructor (a third faster; at k=100 for thousands of users that counts). Equal
    to the normal construction (tested)."""
    rec: Recommendation = _new_tuple(Recommendation, (doc_id, score, kind, "", None, ()))
    return rec


def _near_duplicates(
    x: sp.csr_matrix, threshold: float, chunk: int = DUPLICATE_CHUNK
) -> dict[int, list[int]]:
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


def _near_known(
    text: sp.csr_matrix,
    slots: list[int],
    ids: Sequence[str],
    ctx: _Context,
    threshold: float,
) -> dict[int, np.ndarray]:
    """The candidates that are another record of one of the item table's `slots` (rows of
    `text`, `ids` their docs), for those that have any: the arXiv and the journal version of
    a paper someone liked, which no id joins. Another record: a TF-IDF cosine ≥ `threshold`,
    both texts of at least `SAME_PAPER_TERMS` terms, and titles sharing `SAME_PAPER_TITLE` of
    their words and the same numbers (`_same_title`) — the cosine alone joins different
    papers where the vocabulary leaves a title few words ("iPhoto '08: The Missing Manual"
    and "Dreamweaver CS3: …", 1.0 on CiteULike).
    Each doc's are found once per day's candidates (`Candidates.records`)."""
    if threshold > 1.0 or not slots:
        return {}
    found = ctx.candidates.records
    long = _enough_text(text)
    todo = [s for s in slots if long[s] and ids[s] not in found]
    if todo:
        cols, xt = ctx.candidates.long_rows()
        for start in range(0, len(todo), DUPLICATE_CHUNK):
            part = todo[start : start + DUPLICATE_CHUNK]
            block = (text[part] @ xt).tocoo()
            keep = block.data >= threshold
            hits: dict[int, list[int]] = {}
            for r, c in zip(block.row[keep].tolist(), cols[block.col[keep]].tolist(), strict=True):
                if _same_title(ctx.title(ids[part[r]]), ctx.cands[c].title):
                    hits.setdefault(part[r], []).append(c)
            for slot in part:
                found[ids[slot]] = np.asarray(hits.get(slot, ()), dtype=np.int64)
    return {s: found[ids[s]] for s in slots if long[s] and len(found[ids[s]])}


def _enough_text(rows: sp.csr_matrix) -> np.ndarray:
    """Per row: its text has enough terms (`SAME_PAPER_TERMS`) to tell another record of it
    by text."""
    indptr: np.ndarray = rows.indptr
    return np.diff(indptr) >= SAME_PAPER_TERMS


def _sent_twins(fb: Feedback, ctx: _Context) -> list[int]:
    """The candidates that are another record (as `_near_known` tells) of a candidate `fb`
    was already sent."""
    dups, pos, cands = ctx.duplicates(), ctx.cand_pos, ctx.cands
    long = ctx.candidates.long()
    sent = [pos[d] for d in fb.exclude if d in pos]
    return [
        c
        for j in sent
        if j in dups and long[j]
        for c in dups[j]
        if long[c] and _same_title(cands[j].title, cands[c].title)
    ]


def _same_title(a: str, b: str) -> bool:
    """Whether two titles can be of one paper: they share `SAME_PAPER_TITLE` of their words
    (Jaccard; case and accents folded) and the same numbers (digits, roman numerals): the
    parts of a work ("… I", "… II", "Part 2") often share their abstract word for word."""
    wa, wb = set(_WORD.findall(_fold(a))), set(_WORD.findall(_fold(b)))
    if not (wa and wb) or len(wa & wb) < SAME_PAPER_TITLE * len(wa | wb):
        return False
    return {w for w in wa if _NUMBER.fullmatch(w)} == {w for w in wb if _NUMBER.fullmatch(w)}


def _trending_order(cands: Sequence[Doc]) -> np.ndarray:
    """Most upvoted first, then newest, then id (stable, deterministic)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def key(i: int) -> tuple[float, float, str]:
        d = cands[i]
        up = float(d.upvotes or 0)
        ts = (_aware(d.published) - epoch).total_seconds() if d.published else -math.inf
        return (-up, -ts, d.id)

    return np.array(sorted(range(len(cands)), key=key), dtype=np.int64)
