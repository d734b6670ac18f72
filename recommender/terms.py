"""Terms worth naming in an explanation: never the filler of academic prose
(`academic_stopwords.txt`: "furthermore", "general", "users" …) nor author columns; shared
terms with bigrams first; labels of interests (a reader's, or a global topic's) from the terms
their liked papers have in common.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib import resources

import numpy as np
import scipy.sparse as sp

from recommender.state import _Fitted

MIN_TERM_CHARS = 3  # shorter words ("ab", "iv") say nothing
LABEL_WORDS = 2  # an interest is named by its two best words, or the bigram they make


@functools.cache
def academic_stopwords() -> frozenset[str]:
    """The words an explanation never names (`recommender/academic_stopwords.txt`)."""
    text = resources.files("recommender").joinpath("academic_stopwords.txt").read_text("utf-8")
    return frozenset(
        w for line in text.splitlines() if (w := line.split("#", 1)[0].strip().lower())
    )


@functools.lru_cache(maxsize=65536)
def _meaningful(term: str) -> bool:
    """Whether a term may be named: a word that is neither filler nor too short; a bigram with
    at least one such word ("language models" yes, "proposed method" no)."""
    stop = academic_stopwords()
    words = term.split()
    good = [w for w in words if w not in stop and len(w) >= MIN_TERM_CHARS and not w.isdigit()]
    return bool(good) if len(words) > 1 else len(good) == 1


_TABLES: dict[int, tuple[np.ndarray, list[str], np.ndarray]] = {}  # id(terms) → table


def _term_table(f: _Fitted) -> tuple[list[str], np.ndarray]:
    """The model's terms as Python strings, and which columns may be named (word columns
    that pass `_meaningful`): computed once per model, not per explanation."""
    hit = _TABLES.get(id(f.terms))
    if hit is not None and hit[0] is f.terms:
        return hit[1], hit[2]
    names = [str(t) for t in f.terms]
    ok = np.zeros(len(names), dtype=bool)
    ok[: f.n_word_features] = [_meaningful(t) for t in names[: f.n_word_features]]
    if len(_TABLES) >= 4:  # a process holds one model, two while a refit replaces it
        _TABLES.clear()
    _TABLES[id(f.terms)] = (f.terms, names, ok)
    return names, ok


def _readable_terms(
    cols: np.ndarray, vals: np.ndarray, f: _Fitted, limit: int, *, bigrams_first: bool = True
) -> list[str]:
    """The `limit` terms of (column, weight) pairs worth naming, heaviest first; bigrams before
    single words (`bigrams_first`; else by weight alone, a bigram replacing its words). Author
    columns, filler words and short words are never named."""
    if len(cols) == 0 or limit <= 0:
        return []
    names, ok = _term_table(f)
    ordered = cols[np.argsort(-vals, kind="stable")]
    named = iter([names[c] for c in ordered[ok[ordered]].tolist()])
    return _bigrams_first(named, limit) if bigrams_first else _by_weight(named, limit)


def _bigrams_first(terms: Iterator[str], limit: int) -> list[str]:
    """Bigrams first (two sharing a word are not both named), then the single words that no
    chosen bigram holds."""
    bigrams: list[str] = []
    words: list[str] = []
    for term in terms:
        if " " in term:
            pair = set(term.split())
            if not any(pair & set(b.split()) for b in bigrams):
                bigrams.append(term)
                if len(bigrams) >= limit:
                    break
        elif len(words) < limit:
            words.append(term)
    held = {w for b in bigrams for w in b.split()}
    return (bigrams + [w for w in words if w not in held])[:limit]


def _by_weight(terms: Iterator[str], limit: int) -> list[str]:
    """By weight alone; a bigram replaces its words when both are chosen."""
    chosen: list[str] = []
    for term in terms:
        pair = set(term.split())
        if any(pair <= set(c.split()) or set(c.split()) <= pair for c in chosen):
            if len(pair) > 1:
                chosen = [c for c in chosen if not set(c.split()) <= pair] + [term]
            continue
        chosen.append(term)
        if len(chosen) >= limit:
            break
    return chosen


def _label(cols: np.ndarray, scores: np.ndarray, f: _Fitted) -> str:
    """An interest's name from its terms' scores: its two best words, or the bigram of its
    that they make ("protein folding"), else "a and b"; "" when nothing can be named."""
    order = np.argsort(-scores, kind="stable")
    words: list[str] = []
    for c in cols[order]:
        if c < f.n_word_features and " " not in (t := str(f.terms[c])) and _meaningful(t):
            if any(t.rstrip("s") == w.rstrip("s") for w in words):  # "microrna", "micrornas"
                continue
            words.append(t)
            if len(words) >= LABEL_WORDS:
                break
    if len(words) < 2:
        return "".join(words)
    both = set(words)
    for c in cols[order]:
        if c < f.n_word_features and set(str(f.terms[c]).split()) == both:
            return str(f.terms[c])
    return " and ".join(words)


def _group_label(rows: sp.csr_matrix, f: _Fitted) -> str:
    """The name of a reader's interest from its liked papers' TF-IDF rows: words in more of its
    papers first, then by weight."""
    total = sp.csr_matrix(rows.sum(axis=0))
    present = sp.csr_matrix((rows > 0).astype(np.float64).sum(axis=0))
    weight = total.data / (total.data.max() + 1.0) if total.nnz else total.data
    return _label(total.indices, present.toarray().ravel()[total.indices] + weight, f)


def _topic_labels(f: _Fitted, liked_topic: np.ndarray, n_topics: int) -> list[str]:
    """The name of every global interest topic (`liked_topic`: the topic of each liked paper
    of the fit, in corpus-row order): terms heavy in the topic's papers and specific to them
    (the topic's share of the papers holding the term)."""
    assert f.factor_row is not None
    x = f.matrix[np.flatnonzero(f.factor_row >= 0)][:, : f.n_word_features].tocsr()
    n = x.shape[0]
    onehot = sp.csr_matrix((np.ones(n), (liked_topic, np.arange(n))), shape=(n_topics, n))
    weight = (onehot @ x).tocsr()
    present = (onehot @ (x > 0).astype(np.float64)).tocsr()
    df = np.asarray((x > 0).sum(axis=0), dtype=np.float64).ravel()
    share = present @ sp.diags(1.0 / np.maximum(df, 1.0))  # the topic's share of the term
    score = weight.multiply(share).tocsr()
    score.sort_indices()
    return [
        _label(score.indices[a:z], score.data[a:z], f)
        for a, z in zip(score.indptr[:-1], score.indptr[1:], strict=True)
    ]
