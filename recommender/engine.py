"""The daemon-facing recommender: fit on the stored corpus (+ every subscriber's likes), rank.

Method in short (defaults in `RecommenderConfig`):

1. Text features: TF-IDF over title + abstract (uni+bigrams, sublinear tf) hstacked with a
   smaller-weight author block; rows L2-normalised.
2. Cross-user signal learned from all subscribers' libraries ("co-liked expansion"): an
   item-item cosine over who-liked-what, sparsified to the top neighbours of each paper. A
   person's liked set is expanded with papers that are co-liked with theirs *by other people*,
   and the profile is built in word space from that expanded set, so it works for papers that
   nobody has liked yet (they are matched by their text only).
3. Profile (Rocchio): weighted mean of liked vectors (+ expansion) minus a share of the
   disliked ones; optionally several interests per person (spherical k-means over likes).
4. Scores for a batch of users at once = profiles @ candidates.T (sparse products).
5. Selection per user: follows boost, mutes remove, near-duplicates collapse, interests get their
   share, optional MMR; explanations name the closest liked paper and the shared terms.
"""

from __future__ import annotations

import math
import pickle
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommender.types import Doc, Feedback, Kind, Recommendation

ASL_TOKEN_PATTERN = r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RecommenderConfig:
    """Every knob of the method. Defaults are the method that won on CiteULike coldstart/."""

    method: str = "learned"  # "learned" (text + map learned from all libraries) | "tfidf-centroid"
    # --- text features -------------------------------------------------------------------
    max_features: int | None = 50000
    min_df: int | float = 2
    max_df: int | float = 0.1
    ngram_range: tuple[int, int] = (1, 2)
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    token_pattern: str = ASL_TOKEN_PATTERN
    strip_accents: str | None = "unicode"
    use_abstract: bool = True
    author_weight: float = 0.3  # 0 = authors are not features
    author_min_df: int = 2
    # --- cross-user learned signal (needs the libraries passed to `fit`) -------------------
    learned_rank: int = 1500  # word-space basis: top singular vectors of the user×word matrix
    learned_lambda: float = 1.5  # ridge strength of the bilinear profile→paper map
    lsa_rank: int = 256  # leading part of the basis used as a "topic" space (LSA)
    learned_min_users: int = 20  # fewer libraries than this → text only
    text_weight: float = 0.0  # blend (per-user z-scores) of text cosine,
    lsa_weight: float = 1.0  # cosine in the LSA topic space,
    bilinear_weight: float = 2.0  # and the learned bilinear score
    # --- profile -------------------------------------------------------------------------
    like_weight: float = 1.0
    dislike_weight: float = 0.5  # Rocchio gamma
    recency_half_life_days: float | None = None  # when likes carry timestamps
    recency_half_life_likes: float | None = None  # otherwise: half-life counted in likes
    max_interests: int = 1  # >1: cluster likes into interests, each gets its share
    likes_per_interest: int = 8  # at least this many likes per extra interest
    # --- selection -----------------------------------------------------------------------
    duplicate_threshold: float = 0.9  # cosine between two picks at/above this → keep one
    mmr_lambda: float = 1.0  # 1 = off; <1 trades relevance for novelty
    keyword_boost: float = 0.5
    author_boost: float = 0.5
    mute_penalty: float | None = None  # None: muted papers are removed; else subtracted
    reason_terms: int = 3
    reason_title_chars: int = 60
    batch_size: int = 256


@dataclass
class _Fitted:
    word_vectorizer: TfidfVectorizer
    author_vectorizer: TfidfVectorizer | None
    ids: list[str]
    index: dict[str, int]
    matrix: sp.csr_matrix  # corpus × features, L2-normalised rows
    basis: np.ndarray | None  # features × rank (learned from the user×word matrix)
    bilinear: np.ndarray | None  # rank × rank: profile → paper affinity learned from libraries
    terms: np.ndarray  # feature index → readable term ("" for author columns)
    n_word_features: int
    titles: list[str]


@dataclass
class _Plan:
    """One user's resolved feedback for a rank call."""

    liked: list[tuple[str, bool, int, float]]  # (doc id, in fitted corpus, row, weight)
    disliked: list[tuple[bool, int]]  # (in fitted corpus, row)
    rows: list[int] = field(default_factory=list)
    group_sizes: list[int] = field(default_factory=list)


def _doc_text(doc: Doc, use_abstract: bool) -> str:
    if use_abstract and doc.abstract:
        return f"{doc.title}. {doc.abstract}"
    return doc.title


def _fold(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


def _name_key(name: str) -> tuple[str, str]:
    """("last", "first initial") from "Last, First" or "First Last" (accents and case folded)."""
    folded = _fold(name).strip()
    if "," in folded:
        last, _, first = folded.partition(",")
    else:
        parts = folded.split()
        if not parts:
            return "", ""
        last, first = parts[-1], " ".join(parts[:-1])
    last = re.sub(r"[^a-z0-9]+", "", last)
    first = re.sub(r"[^a-z ]+", " ", first).strip()
    return last, first[:1]


def _author_tokens(doc: Doc) -> list[str]:
    out = []
    for name in doc.authors:
        last, initial = _name_key(name)
        if last:
            out.append(f"{last}_{initial}")
    return out


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _author_matches(followed: str, doc: Doc) -> bool:
    f_last, f_init = _name_key(followed)
    if not f_last:
        return False
    for name in doc.authors:
        last, init = _name_key(name)
        if last == f_last and (not f_init or not init or f_init == init):
            return True
    return False


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

    # ------------------------------------------------------------------ fitting / state
    @property
    def fitted_size(self) -> int:
        """Number of corpus docs the model was fitted on (0 = not fitted)."""
        return 0 if self._fitted is None else len(self._fitted.ids)

    def fit(self, corpus: Sequence[Doc], libraries: Sequence[Feedback] = ()) -> None:
        """Fit TF-IDF on `corpus`; learn the cross-user co-like graph from `libraries` (every
        subscriber's feedback; may be empty — the method then falls back to text alone)."""
        cfg = self.config
        docs = list({d.id: d for d in corpus}.values())
        if not docs:
            raise ValueError("cannot fit on an empty corpus")
        texts = [_doc_text(d, cfg.use_abstract) for d in docs]
        n = len(docs)
        min_df: int | float = cfg.min_df if not isinstance(cfg.min_df, int) else min(cfg.min_df, n)
        max_df: int | float = cfg.max_df
        if isinstance(max_df, float) and max_df * n < max(
            1, min_df if isinstance(min_df, int) else 1
        ):
            max_df = 1.0
        word_vec = TfidfVectorizer(
            max_features=cfg.max_features,
            min_df=min_df,
            max_df=max_df,
            ngram_range=cfg.ngram_range,
            sublinear_tf=cfg.sublinear_tf,
            stop_words=cfg.stop_words,
            token_pattern=cfg.token_pattern,
            strip_accents=cfg.strip_accents,
            dtype=np.float32,
        )
        try:
            words = word_vec.fit_transform(texts)
        except ValueError:  # tiny corpus: every term pruned → keep them all
            word_vec.set_params(min_df=1, max_df=1.0)
            words = word_vec.fit_transform(texts)
        blocks = [normalize(words)]
        author_vec: TfidfVectorizer | None = None
        if cfg.author_weight > 0:
            author_vec = TfidfVectorizer(
                analyzer=_identity,
                min_df=min(cfg.author_min_df, n),
                sublinear_tf=True,
                dtype=np.float32,
            )
            try:
                authors = author_vec.fit_transform([_author_tokens(d) for d in docs])
                blocks.append(normalize(authors) * cfg.author_weight)
            except ValueError:  # no author appears often enough
                author_vec = None
        matrix = normalize(sp.hstack(blocks).tocsr()).astype(np.float32)
        n_words = words.shape[1]
        terms = np.array(
            list(word_vec.get_feature_names_out()) + [""] * (matrix.shape[1] - n_words),
            dtype=object,
        )
        ids = [d.id for d in docs]
        index = {d: i for i, d in enumerate(ids)}
        basis, bilinear = (
            self._fit_learned(matrix, index, libraries) if cfg.method == "learned" else (None, None)
        )
        self._fitted = _Fitted(
            word_vec,
            author_vec,
            ids,
            index,
            matrix,
            basis,
            bilinear,
            terms,
            n_words,
            [d.title for d in docs],
        )

    def _fit_learned(
        self, matrix: sp.csr_matrix, index: Mapping[str, int], libraries: Sequence[Feedback]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Learn from every subscriber's likes which word combinations predict a like.

        U = users × words (normalised mean of each library). Its top singular vectors V give a
        word basis. In that basis, a bilinear map B is fitted by ridge so that
        (profile_u V) B (paper_i V)ᵀ ≈ [u liked i] over all libraries. New papers need only their
        text (paper V), so the map works for papers nobody has liked yet."""
        cfg = self.config
        rows: list[int] = []
        cols: list[int] = []
        n_users = 0
        for fb in libraries:
            liked = {index[lk.doc_id] for lk in fb.likes if lk.doc_id in index}
            if liked:
                rows.extend([n_users] * len(liked))
                cols.extend(liked)
                n_users += 1
        if n_users < max(2, cfg.learned_min_users):
            return None, None
        likes = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, len(index))
        )
        users_words = normalize(likes @ matrix)
        rank = min(cfg.learned_rank, n_users - 1, matrix.shape[1] - 1)
        svd = TruncatedSVD(rank, algorithm="randomized", n_iter=3, random_state=0)
        svd.fit(users_words)
        basis = np.ascontiguousarray(svd.components_.T, dtype=np.float32)  # words × rank
        liked_items = np.flatnonzero(np.asarray(likes.sum(axis=0)).ravel() > 0)
        z_items = np.asarray(matrix[liked_items] @ basis, dtype=np.float64)
        z_users = np.asarray(users_words @ basis, dtype=np.float64)
        target = likes[:, liked_items]
        eye = np.eye(rank) * cfg.learned_lambda
        a = np.linalg.solve(z_users.T @ z_users + eye, np.asarray((target.T @ z_users).T))
        b = np.linalg.solve(z_items.T @ z_items + eye, (a @ z_items).T).T
        return basis, b.astype(np.float32)

    def dumps(self) -> bytes:
        return pickle.dumps(
            {"version": FORMAT_VERSION, "config": self.config, "fitted": self._fitted}
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

    def vectorize(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        """Feature rows (L2-normalised) for docs; fitted-corpus docs reuse their stored row."""
        f = self._require()
        if not docs:
            return sp.csr_matrix((0, f.matrix.shape[1]), dtype=np.float32)
        stored = [f.index.get(d.id) for d in docs]
        if all(s is not None for s in stored):
            return f.matrix[[s for s in stored if s is not None]]
        words = f.word_vectorizer.transform([_doc_text(d, self.config.use_abstract) for d in docs])
        blocks = [normalize(words)]
        if f.author_vectorizer is not None:
            authors = f.author_vectorizer.transform([_author_tokens(d) for d in docs])
            blocks.append(normalize(authors) * self.config.author_weight)
        fresh = normalize(sp.hstack(blocks).tocsr()).astype(np.float32)
        out = sp.vstack(
            [f.matrix[s] if s is not None else fresh[i] for i, s in enumerate(stored)]
        ).tocsr()
        return out

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
        cands = list({d.id: d for d in candidates}.values())
        out: dict[str, list[Recommendation]] = {u.user_id: [] for u in users}
        if not cands or k <= 0 or not users:
            return out
        known = known or {}
        cand_ids = [d.id for d in cands]
        cand_pos = {d: i for i, d in enumerate(cand_ids)}
        xc = self.vectorize(cands)
        xc_t = xc.T.tocsr()
        learned = self._candidate_basis(xc, f)
        titles = {d.id: d.title for d in cands}
        texts = [_fold(_doc_text(d, True)) for d in cands]
        dups = _near_duplicates(xc, cfg.duplicate_threshold)
        trending = _trending_order(cands)
        kw_cache: dict[str, np.ndarray] = {}
        au_cache: dict[str, np.ndarray] = {}

        def kw_mask(word: str) -> np.ndarray:
            key = _fold(word).strip()
            if key not in kw_cache:
                pat = re.compile(r"(?<![a-z0-9])" + re.escape(key) + r"(?![a-z0-9])")
                kw_cache[key] = np.fromiter(
                    (bool(key) and pat.search(t) is not None for t in texts), bool, len(texts)
                )
            return kw_cache[key]

        def au_mask(name: str) -> np.ndarray:
            if name not in au_cache:
                au_cache[name] = np.fromiter(
                    (_author_matches(name, d) for d in cands), bool, len(cands)
                )
            return au_cache[name]

        # liked / disliked docs → rows: fitted corpus first, else vectorised from `known`
        need: dict[str, Doc | None] = {}
        for fb in users:
            for i in [lk.doc_id for lk in fb.likes] + list(fb.dislikes):
                if i not in f.index and i not in need:
                    need[i] = known.get(i) or next((d for d in cands if d.id == i), None)
        extra_docs = [d for d in need.values() if d is not None]
        extra_rows = self.vectorize(extra_docs) if extra_docs else None
        extra_index = {d.id: j for j, d in enumerate(extra_docs)}
        titles.update({d.id: d.title for d in extra_docs})

        for start in range(0, len(users), max(1, cfg.batch_size)):
            batch = users[start : start + cfg.batch_size]
            plan = [self._profile_plan(fb, f, extra_index, now) for fb in batch]
            profiles, owner = self._profile_matrix(plan, f, extra_rows)
            scores = self._score(profiles, xc_t, learned)
            for b, fb in enumerate(batch):
                rows = [r for r, o in enumerate(owner) if o == b]
                out[fb.user_id] = self._select(
                    fb,
                    plan[b],
                    scores[rows] if rows else None,
                    cands,
                    cand_pos,
                    xc,
                    dups,
                    trending,
                    kw_mask,
                    au_mask,
                    k,
                    explain,
                    f,
                    extra_rows,
                    titles,
                )
        return out

    def _candidate_basis(
        self, xc: sp.csr_matrix, f: _Fitted
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidates in the learned basis: (for the bilinear map, L2-normalised LSA part)."""
        if f.basis is None or f.bilinear is None:
            return None
        zc = np.asarray(xc @ f.basis, dtype=np.float32)
        lsa = normalize(zc[:, : self.config.lsa_rank])
        return zc, lsa

    def _score(
        self,
        profiles: sp.csr_matrix,
        xc_t: sp.csr_matrix,
        learned: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        """Profiles (rows) × candidates → score in [0, 1] (text cosine, or the learned blend)."""
        cfg = self.config
        text = np.asarray((profiles @ xc_t).todense(), dtype=np.float32)
        if profiles.shape[0] == 0:
            return text
        f = self._fitted
        if learned is None or f is None or f.basis is None or f.bilinear is None:
            return np.clip(text, 0.0, 1.0)
        zc, lsa = learned
        zp = np.asarray(profiles @ f.basis, dtype=np.float32)
        parts = [
            (cfg.text_weight, text),
            (cfg.lsa_weight, normalize(zp[:, : cfg.lsa_rank]) @ lsa.T),
            (cfg.bilinear_weight, (zp @ f.bilinear) @ zc.T),
        ]
        total = np.zeros_like(text)
        wsum = 0.0
        for w, s in parts:
            if w:
                total += w * _zscore(s)
                wsum += abs(w)
        # per-user z-score blend → [0, 1]: z = 2 maps to 0.5, z = 4 to 0.88
        return (1.0 / (1.0 + np.exp(-(total / max(wsum, 1e-9) - 2.0)))).astype(np.float32)

    # -------------------------------------------------------------- profile building
    def _profile_plan(
        self, fb: Feedback, f: _Fitted, extra_index: Mapping[str, int], now: datetime
    ) -> _Plan:
        cfg = self.config
        liked: list[tuple[str, bool, int, float]] = []  # id, in_corpus, row, weight
        n = len(fb.likes)
        dated = n > 0 and all(lk.at is not None for lk in fb.likes)
        for pos, lk in enumerate(fb.likes):
            w = cfg.like_weight
            if dated and cfg.recency_half_life_days and lk.at is not None:
                age = (_aware(now) - _aware(lk.at)).total_seconds() / 86400.0
                w *= 0.5 ** (max(age, 0.0) / cfg.recency_half_life_days)
            elif cfg.recency_half_life_likes and not dated:
                w *= 0.5 ** ((n - 1 - pos) / cfg.recency_half_life_likes)
            if lk.doc_id in f.index:
                liked.append((lk.doc_id, True, f.index[lk.doc_id], w))
            elif lk.doc_id in extra_index:
                liked.append((lk.doc_id, False, extra_index[lk.doc_id], w))
        disliked: list[tuple[bool, int]] = []
        for d in fb.dislikes:
            if d in f.index:
                disliked.append((True, f.index[d]))
            elif d in extra_index:
                disliked.append((False, extra_index[d]))
        return _Plan(liked=liked, disliked=disliked)

    def _profile_matrix(
        self, plan: list[_Plan], f: _Fitted, extra_rows: sp.csr_matrix | None
    ) -> tuple[sp.csr_matrix, list[int]]:
        """One row per (user, interest); `owner[row]` is the user's position in the batch."""
        cfg = self.config
        n_corpus = len(f.ids)
        n_extra = 0 if extra_rows is None else extra_rows.shape[0]
        r_rows: list[int] = []
        r_cols: list[int] = []
        r_vals: list[float] = []
        e_rows: list[int] = []
        e_cols: list[int] = []
        e_vals: list[float] = []
        owner: list[int] = []
        dis_rows: list[int] = []
        dis_cols: list[int] = []
        dis_extra: list[bool] = []
        row = 0
        for b, p in enumerate(plan):
            if not p.liked:
                continue
            groups = self._interests(p, f, extra_rows)
            for g in groups:
                tot = sum(p.liked[i][3] for i in g) or 1.0
                for i in g:
                    _, in_corpus, r, w = p.liked[i]
                    if in_corpus:
                        r_rows.append(row)
                        r_cols.append(r)
                        r_vals.append(w / tot)
                    else:
                        e_rows.append(row)
                        e_cols.append(r)
                        e_vals.append(w / tot)
                for in_corpus, r in p.disliked:
                    dis_rows.append(row)
                    dis_cols.append(r)
                    dis_extra.append(not in_corpus)
                owner.append(b)
                p.rows.append(row)
                row += 1
        n_rows = row
        d = f.matrix.shape[1]
        if n_rows == 0:
            return sp.csr_matrix((0, d), dtype=np.float32), owner
        liked_c = sp.csr_matrix(
            (r_vals, (r_rows, r_cols)), shape=(n_rows, n_corpus), dtype=np.float32
        )
        prof = liked_c @ f.matrix
        if e_rows and extra_rows is not None:
            liked_e = sp.csr_matrix(
                (e_vals, (e_rows, e_cols)), shape=(n_rows, n_extra), dtype=np.float32
            )
            prof = prof + liked_e @ extra_rows
        prof = normalize(sp.csr_matrix(prof))
        if dis_rows and cfg.dislike_weight > 0:
            dis = [(rw, c, x) for rw, c, x in zip(dis_rows, dis_cols, dis_extra, strict=True)]
            counts = np.bincount([rw for rw, _, _ in dis], minlength=n_rows).astype(np.float32)
            vals = [1.0 / counts[rw] for rw, _, _ in dis]
            dc = sp.csr_matrix(
                (
                    [v for v, (_, _, x) in zip(vals, dis, strict=True) if not x],
                    ([rw for rw, _, x in dis if not x], [c for _, c, x in dis if not x]),
                ),
                shape=(n_rows, n_corpus),
                dtype=np.float32,
            )
            neg = dc @ f.matrix
            if extra_rows is not None and any(x for _, _, x in dis):
                de = sp.csr_matrix(
                    (
                        [v for v, (_, _, x) in zip(vals, dis, strict=True) if x],
                        ([rw for rw, _, x in dis if x], [c for _, c, x in dis if x]),
                    ),
                    shape=(n_rows, n_extra),
                    dtype=np.float32,
                )
                neg = neg + de @ extra_rows
            prof = prof - cfg.dislike_weight * normalize(sp.csr_matrix(neg))
        return sp.csr_matrix(prof, dtype=np.float32), owner

    def _interests(self, p: _Plan, f: _Fitted, extra_rows: sp.csr_matrix | None) -> list[list[int]]:
        cfg = self.config
        n = len(p.liked)
        m = min(cfg.max_interests, n // max(1, cfg.likes_per_interest))
        if m <= 1:
            p.group_sizes = [n]
            return [list(range(n))]
        vecs = self._liked_rows(p, f, extra_rows)
        labels = _spherical_kmeans(vecs, m)
        groups = [[int(i) for i in np.flatnonzero(labels == c)] for c in range(m)]
        groups = [g for g in groups if g]
        p.group_sizes = [len(g) for g in groups]
        return groups

    @staticmethod
    def _liked_rows(p: _Plan, f: _Fitted, extra_rows: sp.csr_matrix | None) -> sp.csr_matrix:
        rows = [
            f.matrix[r] if in_corpus or extra_rows is None else extra_rows[r]
            for _, in_corpus, r, _ in p.liked
        ]
        return sp.vstack(rows).tocsr()

    # -------------------------------------------------------------- selection
    def _select(
        self,
        fb: Feedback,
        p: _Plan,
        scores: np.ndarray | None,
        cands: list[Doc],
        cand_pos: Mapping[str, int],
        xc: sp.csr_matrix,
        dups: Mapping[int, list[int]],
        trending: np.ndarray,
        kw_mask: Any,
        au_mask: Any,
        k: int,
        explain: bool,
        f: _Fitted,
        extra_rows: sp.csr_matrix | None,
        titles: Mapping[str, str],
    ) -> list[Recommendation]:
        cfg = self.config
        n = len(cands)
        blocked = np.zeros(n, dtype=bool)
        for i in [lk.doc_id for lk in fb.likes] + list(fb.dislikes) + list(fb.exclude):
            j = cand_pos.get(i)
            if j is not None:
                blocked[j] = True
        muted = np.zeros(n, dtype=bool)
        for w in fb.muted_keywords:
            muted |= kw_mask(w)
        for a in fb.muted_authors:
            muted |= au_mask(a)
        follow_bonus = np.zeros(n, dtype=np.float32)
        follow_reason: dict[int, str] = {}
        for a in fb.authors:
            hit = au_mask(a)
            follow_bonus[hit] = np.maximum(follow_bonus[hit], cfg.author_boost)
            for hj in np.flatnonzero(hit):
                follow_reason.setdefault(int(hj), f"By {a.strip()}, whom you follow")
        for w in fb.keywords:
            hit = kw_mask(w)
            follow_bonus[hit] += cfg.keyword_boost
            for hj in np.flatnonzero(hit):
                follow_reason.setdefault(int(hj), f"Matches your keyword “{w.strip()}”")
        has_profile = scores is not None and scores.shape[0] > 0

        if has_profile:
            assert scores is not None
            per_interest = scores
            base = per_interest.max(axis=0)
        else:
            per_interest = None
            base = np.zeros(n, dtype=np.float32)
        total = base + follow_bonus
        if cfg.mute_penalty is None:
            blocked |= muted
        else:
            total = total - cfg.mute_penalty * muted
        if not has_profile:
            # follows only: matched papers (ordered by trending among equals); then trending
            eligible = np.flatnonzero((follow_bonus > 0) & ~blocked)
            tr_rank = np.empty(n, dtype=np.int64)
            tr_rank[trending] = np.arange(n)
            order = eligible[np.lexsort((tr_rank[eligible], -follow_bonus[eligible]))]
            rest = [int(j) for j in trending if not blocked[j] and follow_bonus[j] <= 0]
            picks = self._greedy(list(map(int, order)) + rest, dups, k, None, None, None, xc)
            recs = []
            for j in picks:
                if follow_bonus[j] > 0:
                    s = float(min(1.0, follow_bonus[j]))
                    recs.append(Recommendation(cands[j].id, s, "followed", follow_reason[j]))
                else:
                    recs.append(Recommendation(cands[j].id, 0.0, "trending", "Trending today"))
            return recs

        pool_size = min(n, max(4 * k, k + 50))
        masked = np.where(blocked, -np.inf, total)
        if pool_size < n:
            pool = np.argpartition(-masked, pool_size - 1)[:pool_size]
        else:
            pool = np.arange(n)
        pool = pool[np.argsort(-masked[pool], kind="stable")]
        pool = pool[np.isfinite(masked[pool])]
        groups = None
        if per_interest is not None and per_interest.shape[0] > 1:
            groups = (per_interest[:, pool] + follow_bonus[pool]).astype(np.float32)
        picks = self._greedy([int(j) for j in pool], dups, k, groups, p.group_sizes, masked, xc)
        if not explain:
            return [
                Recommendation(
                    cands[j].id,
                    float(np.clip(masked[j], 0.0, 1.0)),
                    "followed" if follow_bonus[j] > 0 else "similar",
                    "",
                )
                for j in picks
            ]
        return self._explain(
            picks, p, cands, xc, masked, follow_bonus, follow_reason, f, extra_rows, titles
        )

    def _greedy(
        self,
        order: list[int],
        dups: Mapping[int, list[int]],
        k: int,
        groups: np.ndarray | None,
        group_sizes: list[int] | None,
        scores: np.ndarray | None,
        xc: sp.csr_matrix,
    ) -> list[int]:
        """Pick k from `order` (best first): skip near-duplicates of earlier picks; with
        interests, each interest gets its proportional share; optional MMR."""
        cfg = self.config
        taken: set[int] = set()
        shadow: set[int] = set()  # near-duplicates of something picked
        picks: list[int] = []
        use_mmr = cfg.mmr_lambda < 1.0 and scores is not None
        if groups is None and not use_mmr:
            for j in order:
                if j in shadow:
                    continue
                picks.append(j)
                shadow.update(dups.get(j, ()))
                if len(picks) >= k:
                    break
            return picks
        pos = {j: i for i, j in enumerate(order)}
        if groups is not None and group_sizes is not None:
            share = np.asarray(group_sizes, dtype=np.float64)
            share /= share.sum()
            lists = [
                [order[i] for i in np.argsort(-groups[g], kind="stable")] for g in range(len(share))
            ]
            ptr = [0] * len(share)
            got = np.zeros(len(share))
            while len(picks) < k:
                deficit = share * (len(picks) + 1) - got
                progressed = False
                for g in np.argsort(-deficit, kind="stable"):
                    lst = lists[g]
                    while ptr[g] < len(lst) and (lst[ptr[g]] in taken or lst[ptr[g]] in shadow):
                        ptr[g] += 1
                    if ptr[g] < len(lst):
                        j = lst[ptr[g]]
                        picks.append(j)
                        taken.add(j)
                        shadow.update(dups.get(j, ()))
                        got[g] += 1
                        progressed = True
                        break
                if not progressed:
                    break
            del pos
            return picks
        # MMR over the pool
        assert scores is not None
        pool = [j for j in order]
        rel = np.array([scores[j] for j in pool], dtype=np.float64)
        vecs = xc[pool]
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

    def _explain(
        self,
        picks: list[int],
        p: _Plan,
        cands: list[Doc],
        xc: sp.csr_matrix,
        scores: np.ndarray,
        follow_bonus: np.ndarray,
        follow_reason: Mapping[int, str],
        f: _Fitted,
        extra_rows: sp.csr_matrix | None,
        titles: Mapping[str, str],
    ) -> list[Recommendation]:
        cfg = self.config
        if not picks:
            return []
        liked_vecs = self._liked_rows(p, f, extra_rows)
        pv = xc[picks]
        sims = np.asarray((pv @ liked_vecs.T).todense())
        best = sims.argmax(axis=1)
        overlap = pv.multiply(liked_vecs[best]).tocsr()
        recs: list[Recommendation] = []
        for r, j in enumerate(picks):
            liked_id = p.liked[int(best[r])][0]
            liked_doc_title = titles.get(liked_id) or f.titles[f.index[liked_id]]
            row = overlap.getrow(r)
            shared = _readable_terms(row, f, cfg.reason_terms)
            title = _shorten(liked_doc_title, cfg.reason_title_chars)
            if shared:
                sim_reason = f"Close to “{title}” you liked — shared: {', '.join(shared)}"
            else:
                sim_reason = f"Close to “{title}” you liked — read by people with similar libraries"
            kind: Kind = "similar"
            reason = sim_reason
            if follow_bonus[j] > 0:
                kind = "followed"
                reason = f"{follow_reason[j]} · also close to “{title}” you liked"
            recs.append(
                Recommendation(
                    doc_id=cands[j].id,
                    score=float(np.clip(scores[j], 0.0, 1.0)),
                    kind=kind,
                    reason=reason,
                    closest_liked_id=liked_id,
                    shared_terms=tuple(shared),
                )
            )
        return recs


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    m = m.tocsr()
    m.sort_indices()
    rows, cols, vals = [], [], []
    indptr, indices, data = m.indptr, m.indices, m.data
    for r in range(m.shape[0]):
        a, b = indptr[r], indptr[r + 1]
        sel = np.argpartition(-data[a:b], k - 1)[:k] + a if b - a > k else np.arange(a, b)
        rows.append(np.full(len(sel), r))
        cols.append(indices[sel])
        vals.append(data[sel])
    if not rows:
        return m
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape
    )


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


def _readable_terms(row: sp.csr_matrix, f: _Fitted, limit: int) -> list[str]:
    """Top shared word terms of an elementwise product row; a bigram hides its words."""
    if row.nnz == 0 or limit <= 0:
        return []
    order = np.argsort(-row.data)
    chosen: list[str] = []
    for i in order:
        col = int(row.indices[i])
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


def _zscore(s: np.ndarray) -> np.ndarray:
    mu = s.mean(axis=1, keepdims=True)
    sd = s.std(axis=1, keepdims=True)
    return np.asarray((s - mu) / (sd + 1e-9), dtype=np.float32)
