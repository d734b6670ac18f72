"""What one `rank` call shares between its users: the candidates (in id order) and their
feature rows and factors, the table of liked/disliked docs the call refers to (`_Items`),
and per-call caches (near-duplicates, trending order, keyword and author matches).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recommender.exact import RIGHT_BITS, on_grid
from recommender.explain import _shorten
from recommender.features import _doc_text, _followed_author_key, _keyword_fold, _surname_keys
from recommender.interests import _topic_sims
from recommender.selection import _enough_text, _near_duplicates, _trending_order
from recommender.state import _Fitted
from recommender.terms import _Words
from recommender.types import Doc, Feedback

if TYPE_CHECKING:
    from recommender.engine import Recommender


@dataclass(frozen=True)
class _Items:
    """Liked/disliked docs referenced in one rank call: text rows and factor rows."""

    ids: list[str]
    text: sp.csr_matrix
    fac: np.ndarray | None  # learned factors (predicted for a doc liked after the fit)
    topic_sim: np.ndarray | None = None  # slots × interest topics: cosine to each topic
    # factors predicted from the text (None: not needed): the model's table of them (one row
    # per paper liked at fit time), read in place, no table made per call: slot s's row is
    # `pred_row[s]`, or its row of `fac` where that is −1 (a paper without learned factors:
    # those in `fac` are predicted)
    pred: np.ndarray | None = None
    pred_row: np.ndarray | None = None


class Candidates:
    """Papers to rank, prepared once for a fitted model: in id order, with their feature rows
    and, on demand, their predicted factors, near-duplicates, trending order and keyword and
    author matches. Make one with `Recommender.candidates(docs)` and pass it to every `rank`
    call of the day (the daemon ranks its subscribers in batches against the same papers)."""

    def __init__(self, rec: Recommender, f: _Fitted, docs: Sequence[Doc]) -> None:
        self.rec = rec
        self.fitted = f  # the model state these rows and factors belong to
        # in id order: equal scores break by id, whatever order they came in
        self.cands = sorted({d.id: d for d in docs}.values(), key=lambda d: d.id)
        self.cand_ids = [d.id for d in self.cands]
        self.cand_pos = {d: i for i, d in enumerate(self.cand_ids)}
        self.xc = rec.vectorize(self.cands)
        self._xc_t: sp.csr_matrix | None = None
        self._qc: np.ndarray | None = None
        self._dups: dict[int, list[int]] | None = None
        self._trending: np.ndarray | None = None
        self._texts: list[str] | None = None
        self._kw: dict[str, np.ndarray] = {}
        self._au: dict[str, np.ndarray] = {}
        self._runs: dict[str, np.ndarray] | None = None  # `_run_index`
        self._by_last: dict[str, list[tuple[int, str]]] | None = None  # `author_mask`
        # shortened titles of corpus docs named by explanations, by (doc id, length limit):
        # the same liked papers are named in many digests of the day
        self._short_titles: dict[tuple[str, int], str] = {}
        # shared terms as each candidate writes them (`terms._surfaces`), and its words
        self.surfaces: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self.words: dict[int, _Words] = {}
        # liked, disliked papers → the candidates that are another record of them
        # (`selection._near_known`): the same papers are liked by many subscribers
        self.records: dict[str, np.ndarray] = {}
        self._long_mask: np.ndarray | None = None
        self._long: tuple[np.ndarray, sp.csr_matrix] | None = None

    def __len__(self) -> int:
        return len(self.cands)

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

    def long(self) -> np.ndarray:
        """Per candidate: its text has enough terms to tell another record of it by text."""
        if self._long_mask is None:
            self._long_mask = _enough_text(self.xc)
        return self._long_mask

    def long_rows(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """The positions of the candidates with enough text (`long`) and their feature rows,
        transposed (features × those candidates)."""
        if self._long is None:
            cols = np.flatnonzero(self.long())
            self._long = (cols, self.xc[cols].T.tocsr())
        return self._long

    def trending(self) -> np.ndarray:
        if self._trending is None:
            self._trending = _trending_order(self.cands)
        return self._trending

    def keyword_mask(self, word: str) -> np.ndarray:
        """Candidates whose title or abstract holds `word` as a whole word (folded): where the
        folded key stands with no letter a–z or digit right before or after it. Spaces and
        hyphens between words are alike (`_separated`): "self-supervised" matches "self
        supervised" and the other way round.

        Each run of a–z and digits in the key then stands whole in the text too, so only the
        candidates holding every one of those runs (an index of the day's candidates, made
        once) are searched; a key that is one run is answered by the index alone. A new
        keyword costs its matches, not a search of every text (12 ms for 3,000 candidates):
        100,000 subscribers follow keywords of their own."""
        key = _separated(_keyword_fold(word)).strip()
        mask = self._kw.get(key)
        if mask is not None:
            return mask
        runs = set(_RUN.findall(key))
        held: np.ndarray  # the candidates that may match: those holding every run of the key
        if runs:
            index = self._run_index()
            held = functools.reduce(np.intersect1d, [index.get(r, _NONE) for r in runs])
        else:  # nothing of a–z or digits to look up ("αβ"): every text is searched
            held = np.arange(len(self.cands)) if key else _NONE
        mask = np.zeros(len(self.cands), dtype=bool)
        if _RUN.fullmatch(key):  # one run: every candidate holding it matches
            mask[held] = True
        else:
            pat = _keyword(key)
            mask[[i for i in held.tolist() if pat.search(self._text(i))]] = True
        _keep(self._kw, key, mask)
        return mask

    def author_mask(self, name: str) -> np.ndarray:
        """Candidates by the author `name` (a key of the surname in common, "lecun" of "Le Cun"
        and "LeCun", and the initial when both have one; a surname of several words alone,
        "Del Maestro", has none: `_surname_keys`, `_followed_author_key`):
        looked up by last name in an index of the day's candidates' authors, made once."""
        mask = self._au.get(name)
        if mask is not None:
            return mask
        mask = np.zeros(len(self.cands), dtype=bool)
        keys, initial = _followed_author_key(name)
        if keys[0]:
            if self._by_last is None:  # every candidate's authors, folded once
                self._by_last = {}
                for i, d in enumerate(self.cands):
                    for a_keys, a_init in map(_surname_keys, d.authors):
                        for key in a_keys:
                            self._by_last.setdefault(key, []).append((i, a_init))
            hits = [
                i
                for key in keys
                for i, a_init in self._by_last.get(key, ())
                if not initial or not a_init or a_init == initial
            ]
            mask[hits] = True
        _keep(self._au, name, mask)
        return mask

    def _text(self, i: int) -> str:
        if self._texts is None:
            self._texts = [_separated(_keyword_fold(_doc_text(d, True))) for d in self.cands]
        return self._texts[i]

    def _run_index(self) -> dict[str, np.ndarray]:
        """Every run of a–z and digits in the candidates' folded texts → the candidates that
        hold it (ascending)."""
        if self._runs is None:
            where: defaultdict[str, list[int]] = defaultdict(list)
            for i in range(len(self.cands)):
                for run in set(_RUN.findall(self._text(i))):
                    where[run].append(i)
            self._runs = {r: np.asarray(ids, dtype=np.int64) for r, ids in where.items()}
        return self._runs


_RUN = re.compile(r"[a-z0-9]+")
_NONE = np.empty(0, dtype=np.int64)  # no candidate
MASKS_KEPT = 5_000  # keyword masks, and author masks, kept per day's candidates (3 kB each)


def _keep(masks: dict[str, np.ndarray], key: str, mask: np.ndarray) -> None:
    """Keep `mask` for the next lookup of `key`, dropping the oldest kept when MASKS_KEPT are
    (15 MB at 3,000 candidates; 100,000 subscribers may follow tens of thousands of keywords,
    and a lookup again costs microseconds)."""
    if len(masks) >= MASKS_KEPT:
        del masks[next(iter(masks))]
    masks[key] = mask


# what separates the words of a term: white space and hyphens, dashes (‐ ‑ ‒ –)
_SEPARATOR = re.compile(r"[\s\-\u2010-\u2013]+")


def _separated(text: str) -> str:
    """`text` with every run of white space and hyphens as one space: "self-supervised",
    "self supervised" and "self - supervised" are one key."""
    return _SEPARATOR.sub(" ", text)


def _keyword(key: str) -> re.Pattern[str]:
    """`key` (folded) as a whole word: no letter a–z or digit right before or after it."""
    return re.compile(r"(?<![a-z0-9])" + re.escape(key) + r"(?![a-z0-9])")


class _Context:
    """What one rank call shares between its users: the prepared candidates, and the table of
    the liked and disliked docs its users refer to."""

    def __init__(
        self, rec: Recommender, f: _Fitted, cands: Candidates, known: Mapping[str, Doc]
    ) -> None:
        self.rec = rec
        self.f = f
        self.candidates = cands
        self.cands = cands.cands
        self.cand_ids = cands.cand_ids
        self.cand_pos = cands.cand_pos
        self.xc = cands.xc
        self.known = known
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
            assert f.factors is not None
            assert f.factor_row is not None and f.singular is not None
            dense = self.rec._arrays()
            frow = np.where(rows >= 0, f.factor_row[np.maximum(rows, 0)], -1)
            true = frow >= 0
            # one gather each (no zeroed table filled in), the learned factors converted from
            # the state's float16 rows (no float64 copy of them all): the rows of papers without
            # learned factors are overwritten below
            fac = f.factors[np.maximum(frow, 0)].astype(np.float64)
            predicted = np.flatnonzero(~true)
            if len(predicted):  # liked after the fit, or never liked at fit time: predicted
                scale = f.singular**self.rec.config.cf_singular_power
                fac[predicted] = self.rec.predicted_factors(text[predicted]) / scale
            # the profiles also lean on the text's factors: the model's table, read in place
            # (not 86 MB gathered for every 1,000 subscribers), and `fac` for the predicted
            pred = dense.predicted
            pred_row = None if pred is None else frow
            topic_sim = None
            if dense.topic_sims is not None and len(rows):
                # exact products, row by row: the fitted rows' are computed once per model
                topic_sim = np.empty((len(rows), dense.topic_sims.shape[1]), dtype=np.float32)
                topic_sim[true] = dense.topic_sims[frow[true]]
                if len(predicted):
                    topic_sim[predicted] = _topic_sims(fac[predicted], f)
            return _Items([*self.slots], text, fac, topic_sim, pred, pred_row)
        return _Items([*self.slots], text, fac)

    def short_titles(self, doc_ids: Sequence[str], limit: int) -> dict[str, str]:
        """The title of each doc, shortened to `limit` characters (`_shorten`): those of corpus
        docs kept for every rank call against the same candidates."""
        cache = self.candidates._short_titles
        index = self.f.index
        out: dict[str, str] = {}
        for doc_id in doc_ids:
            if doc_id in out:
                continue
            key = (doc_id, limit)
            title = cache.get(key)
            if title is None:
                title = _shorten(self.title(doc_id), limit)
                if doc_id in index:
                    cache[key] = title
            out[doc_id] = title
        return out

    def title(self, doc_id: str) -> str:
        row = self.f.index.get(doc_id)
        if row is not None:
            return self.f.titles[row]
        doc = self.known.get(doc_id)
        if doc is None and doc_id in self.cand_pos:
            doc = self.cands[self.cand_pos[doc_id]]
        return doc.title if doc is not None else doc_id

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

    @property
    def xc_t(self) -> sp.csr_matrix:
        return self.candidates.xc_t

    def cand_factors(self) -> np.ndarray:
        return self.candidates.cand_factors()

    def duplicates(self) -> dict[int, list[int]]:
        return self.candidates.duplicates()

    def trending(self) -> np.ndarray:
        return self.candidates.trending()

    def keyword_mask(self, word: str) -> np.ndarray:
        return self.candidates.keyword_mask(word)

    def author_mask(self, name: str) -> np.ndarray:
        return self.candidates.author_mask(name)
