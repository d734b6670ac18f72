"""Terms worth naming in an explanation: never the filler of academic prose
(`academic_stopwords.txt`: "furthermore", "general", "users" …) nor author columns; shared
terms with bigrams first; labels of interests (a reader's, or a global topic's) from the terms
their liked papers have in common.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from recommender.config import RecommenderConfig
from recommender.features import _doc_text, _fold
from recommender.state import _Fitted
from recommender.types import Doc

MIN_TERM_CHARS = 3  # shorter words ("ab", "iv") say nothing
LABEL_WORDS = 2  # an interest is named by its two best words, or the bigram they make
PHRASE_WORDS = 6  # bigrams that continue each other are named as one phrase of at most this


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


class _TermTable(NamedTuple):
    """A model's terms as explanations use them, computed once per model."""

    names: list[str]  # every column's term as a Python string
    ok: np.ndarray  # per column: may be named (a word column that passes `_meaningful`)
    pairs: list[frozenset[str] | None]  # per column: a bigram's words (None: a single word)
    bigram: np.ndarray  # per column: a bigram


_TABLES: dict[int, tuple[np.ndarray, _TermTable]] = {}  # id(terms) → table


def _term_table(f: _Fitted) -> _TermTable:
    """The model's terms as Python strings, which columns may be named, and the words of each
    bigram: computed once per model, not per explanation."""
    hit = _TABLES.get(id(f.terms))
    if hit is not None and hit[0] is f.terms:
        return hit[1]
    names = [str(t) for t in f.terms]
    ok = np.zeros(len(names), dtype=bool)
    ok[: f.n_word_features] = [_meaningful(t) for t in names[: f.n_word_features]]
    pairs = [frozenset(t.split()) if " " in t else None for t in names]
    if len(_TABLES) >= 4:  # a process holds one model, two while a refit replaces it
        _TABLES.clear()
    table = _TermTable(names, ok, pairs, np.asarray([p is not None for p in pairs], dtype=bool))
    _TABLES[id(f.terms)] = (f.terms, table)
    return table


def _readable_terms(
    cols: np.ndarray, vals: np.ndarray, f: _Fitted, limit: int, *, bigrams_first: bool = True
) -> list[str]:
    """The `limit` terms of (column, weight) pairs worth naming, heaviest first; bigrams before
    single words (`bigrams_first`; else by weight alone, a bigram replacing its words). Author
    columns, filler words and short words are never named."""
    if len(cols) == 0 or limit <= 0:
        return []
    table = _term_table(f)
    ordered = cols[np.argsort(-vals, kind="stable")]
    named = ordered[table.ok[ordered]].tolist()
    if bigrams_first:
        return _bigrams_first(named, table, limit)
    return _by_weight(iter([table.names[c] for c in named]), limit)


def _readable_terms_of_rows(m: sp.csr_matrix, f: _Fitted, limit: int) -> list[list[str]]:
    """`_readable_terms` of every row of `m` (columns × weights, sorted indices), bigrams
    first: the rows' terms are ordered and filtered in one pass, not row by row; a row's
    single words past its first `limit` are dropped there (`_bigrams_first` never names
    them), and a row without a bigram is its first single words."""
    n = m.shape[0]
    if m.nnz == 0 or limit <= 0:
        return [[] for _ in range(n)]
    table = _term_table(f)
    named = np.flatnonzero(table.ok[m.indices])
    row = np.repeat(np.arange(n), np.diff(m.indptr))[named]
    data = m.data[named]
    # by row, then heaviest first; equal weights keep their column order (stable sorts)
    if data.dtype == np.float32 and not (np.signbit(data).any() or np.isnan(data).any()):
        # the bits of a non-negative float32 order as its value: one sort of a single key
        order = np.argsort((row.astype(np.int64) << 32) - data.view(np.int32), kind="stable")
    else:
        order = np.lexsort((-data, row))
    cols, row = m.indices[named[order]], row[order]
    single = ~table.bigram[cols]
    seen = np.cumsum(single)  # single words up to each entry (inclusive)
    bounds = np.searchsorted(row, np.arange(n + 1))
    before = np.concatenate([[0], seen])[bounds[:-1]]  # single words before each row
    keep = ~single | (seen - before[row] <= limit)
    cols, row = cols[keep], row[keep]
    bigrams = np.bincount(row[~single[keep]], minlength=n).tolist()
    bounds = np.searchsorted(row, np.arange(n + 1)).tolist()
    terms = cols.tolist()
    names = list(map(table.names.__getitem__, terms))
    return [
        _bigrams_first(terms[a:z], table, limit) if b else names[a:z]
        for a, z, b in zip(bounds[:-1], bounds[1:], bigrams, strict=True)
    ]


def _bigrams_first(cols: list[int], table: _TermTable, limit: int) -> list[str]:
    """Of the nameable columns `cols` (heaviest first): bigrams first, then the single words
    that no chosen bigram holds. Bigrams that continue each other are one phrase ("quantum
    monte", "monte carlo", "carlo simulations" → "quantum monte carlo simulations", at most
    `PHRASE_WORDS` words), where they read as fragments before ("shared: carlo simulations,
    quantum monte"); another bigram sharing a word with one seen is not named."""
    names = table.names
    phrases: list[list[str]] = []  # in the order of their heaviest bigram
    seen: set[str] = set()  # the words of the bigrams seen
    words: list[str] = []
    for c in cols:
        if table.pairs[c] is None:
            if len(words) < limit:
                words.append(names[c])
            continue
        first, second = names[c].split()
        if first == second:
            continue
        _join(phrases, seen, first, second)
    named: list[str] = []
    held: set[str] = set()
    for p in phrases:
        if _acronym(p[-1], p[:-1]):
            p = p[:-1]
        elif _abbreviated_tail(p[-1], p[:-1]):
            if len(p) == 2:  # "models llms": the words before it are not in the model
                continue
            p = p[:-1]
        named.append(" ".join(p))
        held.update(p)
    return (named + [w for w in words if w not in held])[:limit]


def _join(phrases: list[list[str]], held: set[str], first: str, second: str) -> None:
    """Add the bigram "first second" to `phrases` (`held`: the words of the bigrams seen so
    far): the end of one and the start of another join, it extends the phrase it continues,
    or it starts a phrase of its own when it shares no word with those seen. A word is in one
    phrase at most; a phrase is not made longer than `PHRASE_WORDS` (the bigram is left out,
    and a later one that touches it too, so no fragment of a long phrase is named)."""
    ends = next((p for p in phrases if p[-1] == first), None)
    starts = next((p for p in phrases if p[0] == second), None)
    if ends is not None and starts is not None and ends is not starts:
        if len(ends) + len(starts) <= PHRASE_WORDS and not set(ends) & set(starts):
            ends.extend(starts)
            phrases.remove(starts)
    elif ends is not None:
        if len(ends) < PHRASE_WORDS and second not in held:
            ends.append(second)
    elif starts is not None:
        if len(starts) < PHRASE_WORDS and first not in held:
            starts.insert(0, first)
    elif first not in held and second not in held:
        phrases.append([first, second])
    held.update((first, second))


def _acronym(word: str, phrase: list[str]) -> bool:
    """Whether `word` abbreviates the end of `phrase` ("metamorphic testing (MT)", "large
    language models (LLMs)"): the phrase names it already."""
    letters = _initials(word)
    n = len(letters)
    return 1 < n <= len(phrase) and letters == "".join(w[0] for w in phrase[-n:])


def _initials(word: str) -> str:
    """The initials an abbreviation stands for: its letters, a plural's "s" left out ("llms")."""
    return word[:-1] if word.endswith("s") and len(word) > 2 else word


def _abbreviated_tail(word: str, phrase: list[str]) -> bool:
    """Whether `word` abbreviates more words than `phrase` holds, of which the phrase is the
    end: "models llms" of "large language models (LLMs)", "relations mrs" of "metamorphic
    relations (MRs)" — a fragment, named as "models llms" before. The abbreviation has no
    vowel: "test set", "review evidence core", "network analysis dna" are no such fragment."""
    letters = _initials(word)
    n, k = len(letters), len(phrase)
    if not 1 < n <= 6 or k >= n or letters[-k:] != "".join(w[0] for w in phrase):
        return False
    return not set(letters) & set("aeiouy")  # "review evidence core" is no "(RE)"


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


# ---- terms as the paper writes them

# what may stand between two words of a phrase: spaces; or, with no space around it, a hyphen
# or an en dash ("ChIP-seq", "Hartree–Fock", LaTeX's "Hartree--Fock"), a slash, an apostrophe
# ("Alzheimer's"); nothing ("$\Lambda$CDM": LaTeX's "$" is not read, `_gap`). Anything else
# ("." "," "(" a quote, a spaced dash …) ends a phrase: the vectorizer's bigram "models llms"
# of "language models (LLMs)", "generation test" of "… code generation. Test …", "folding
# speed" of "folding 'speed limit'" or "networks survey" of "networks - a survey" is none.
_JOINER = re.compile(r"\s+|[\-\u2010-\u2013]{1,2}|[/'\u2019]|")
_POSSESSIVE = re.compile(r"['\u2019]\s+")  # after a plural: "users' preferences"
# a word: a run of word characters and of the combining marks of decomposed (NFD) text, which
# `\w` does not match ("Poincare\u0301 map" was two words and a gap; the vectorizer takes the
# marks off: "poincare map")
_RUN = re.compile(r"\w[\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]*")
_HYPHEN = re.compile(r"[\-\u2010-\u2013]{1,2}")  # as `_JOINER`: "Hartree–Fock theory" too
_HYPHENS = re.compile(r"[\s\-\u2010-\u2013]+")  # the words of a term named (`_surfaces`)
GAP_WORDS = 2  # words the vectorizer skips ("of", "the", "3d") that a phrase may hold


class _Words(NamedTuple):
    """A paper's text as runs of word characters: each run's token as the vectorizer reads it
    (None: a stop word, or a run it takes no token from), where the run is, and the positions
    of every token."""

    text: str
    tokens: list[str | None]
    spans: list[tuple[int, int]]
    where: dict[str, list[int]]


def _words(doc: Doc, cfg: RecommenderConfig) -> _Words:
    text = _doc_text(doc, cfg.use_abstract)  # as the vectorizer read it
    if doc.title.isupper():  # it would name every term in capitals ("DEEP LEARNING"): read in
        # lower case, after the abstract ("RNA polymerase" there, not "rna polymerase")
        abstract = doc.abstract if cfg.use_abstract else ""
        text = f"{abstract}. {doc.title.lower()}" if abstract else doc.title.lower()
    pattern = re.compile(cfg.token_pattern)
    stop = ENGLISH_STOP_WORDS if cfg.stop_words == "english" else frozenset()
    tokens: list[str | None] = []
    spans: list[tuple[int, int]] = []
    where: dict[str, list[int]] = {}
    for m in _RUN.finditer(text):
        found = pattern.findall(_fold(m.group()))
        token = found[0] if len(found) == 1 and found[0] not in stop else None
        if token is not None:
            where.setdefault(token, []).append(len(tokens))
        tokens.append(token)
        spans.append(m.span())
    return _Words(text, tokens, spans, where)


def _surface(words: _Words, term: str, *, joined_as_is: bool = True) -> str | None:
    """`term` as the paper writes it: the first place its words follow each other, with at
    most `GAP_WORDS` skipped words between two of them and nothing but spaces, or a hyphen,
    slash or apostrophe, around those (`_JOINER`: "communities of practice", "ChIP-seq data",
    "next-generation"…). A word keeps its capitals when it has some after its first letter
    ("RNA", "LLMs"), else it is in lower case. None for a bigram found only across the end of
    a phrase or sentence; `term` itself when its words are not found in order (another
    tokenizer; a phrase the explanation joined from bigrams: None with `joined_as_is` False)."""
    parts = term.split()
    tokens, spans, text = words.tokens, words.spans, words.text
    broken = False
    found: tuple[int, int] | None = None  # the first place in a compound
    cut: tuple[int, int] | None = None  # the first place in a compound too long to name
    for start in words.where.get(parts[0], ()):
        at, ok = start, True
        for part in parts[1:]:
            nxt = at + 1
            while nxt < len(tokens) and tokens[nxt] is None and nxt - at <= GAP_WORDS:
                nxt += 1
            if nxt >= len(tokens) or tokens[nxt] != part:
                ok = False
                break
            if not all(_joins(text, spans, i) for i in range(at, nxt)):
                ok, broken = False, True
                break
            at = nxt
        if ok:
            compound = _compound(text, spans, start, at)
            if compound == (start, at):  # the term stands whole here
                return _shown(text, spans, start, at)
            found, cut = found or compound, cut or (start, at)
    place = found or cut  # the first compound, else the first place (in one too long to name)
    if place is not None:
        return _shown(text, spans, *place)
    if len(parts) > 2 and not joined_as_is:
        return None
    return None if broken and len(parts) == 2 else term


def _compound(
    text: str, spans: list[tuple[int, int]], start: int, at: int
) -> tuple[int, int] | None:
    """The words `start`…`at` and those hyphenated to them on either side, the compound whole:
    "next-generation sequencing" (the bigram "generation sequencing"), "peer-to-peer systems"
    (not "to-peer systems"), "sparse pre-training" ("sparse pre"), "trade-off" ("trade").
    None when that adds more than `GAP_WORDS` + 1 words ("state-of-the-art" of "art" adds 3):
    no compound is cut ("Llama-3-Physician-8B-Instruct" is not named "Llama-3-Physician-8B")."""
    first, last = start, at
    while first and _HYPHEN.fullmatch(_gap(text, spans, first - 1)):
        first -= 1
    while last + 1 < len(spans) and _HYPHEN.fullmatch(_gap(text, spans, last)):
        last += 1
    if start - first + last - at > GAP_WORDS + 1:
        return None
    return first, last


def _shown(text: str, spans: list[tuple[int, int]], first: int, last: int) -> str:
    """The words `first`…`last` as the paper writes them (`_cased`), LaTeX's "$" left out."""
    shown = text[spans[first][0] : spans[last][1]].replace("$", "")
    return " ".join(_RUN.sub(_cased, shown).split())


def _gap(text: str, spans: list[tuple[int, int]], i: int) -> str:
    """What stands between the words `i` and `i + 1`, LaTeX's math delimiters left out: the
    vectorizer reads "$\\gamma$-ray" as "gamma ray" (named "gamma-ray")."""
    return text[spans[i][1] : spans[i + 1][0]].replace("$", "")


def _joins(text: str, spans: list[tuple[int, int]], i: int) -> bool:
    """Whether the words `i` and `i + 1` may be of one phrase (`_JOINER`)."""
    gap = _gap(text, spans, i)
    if _JOINER.fullmatch(gap):
        return True
    return _POSSESSIVE.fullmatch(gap) is not None and text[spans[i][1] - 1] in "sS"


def _cased(m: re.Match[str]) -> str:
    run = m.group()
    return run if any(c.isupper() for c in run[1:]) else run.lower()


MAX_SURFACES = 500_000  # picks' terms remembered for the day's rank calls


def _surfaces(
    cache: dict[tuple[Any, ...], tuple[str, ...]],
    texts: dict[int, _Words],
    doc: Doc,
    key: tuple[Any, ...],
    cfg: RecommenderConfig,
) -> tuple[str, ...]:
    """The terms `key[1:]` shared by the pick `doc` (candidate `key[0]`) and a liked paper,
    each as `doc` writes it (`_surface`), those that are no phrase of its text left out;
    remembered in `cache` under `key`. `cache` and `texts` (each candidate's `_words`): the
    candidates' own, for every rank call of the day (the same pick has the same terms in
    many digests)."""
    j = key[0]
    words = texts.get(j)
    if words is None:
        words = texts[j] = _words(doc, cfg)
    out: list[str] = []
    for term in key[1:]:
        parts = term.split()
        shown = _surface(words, term, joined_as_is=False)
        # a phrase joined from bigrams that the pick does not write whole ("generation
        # sequencing data" of "next-generation sequencing … amounts of sequencing data"): its
        # longest parts the pick writes whole, not words it never writes together
        named = [shown] if shown is not None or len(parts) < 3 else _written_parts(words, parts)
        for s in named:
            if s is not None and s not in out:
                out.append(s)
    out = out[: max(cfg.reason_terms, len(key) - 1)]
    # a term that another term now shows whole ("ChIP" and "ChIP-seq" of "ChIP-seq data",
    # "pre-training" of "sparse pre-training")
    split = [f" {' '.join(_HYPHENS.split(t.lower()))} " for t in out]
    out = [t for t, a in zip(out, split, strict=True) if not any(a != b and a in b for b in split)]
    if len(cache) >= MAX_SURFACES:
        cache.clear()
    cache[key] = found = tuple(out)
    return found


def _written_parts(words: _Words, parts: list[str]) -> list[str | None]:
    """The phrase `parts` (joined from bigrams, not written whole by the paper) as the longest
    runs of it the paper writes whole, each as written, from the first word on; each run
    begins at the last word of the one before, so every bigram of the phrase is in one
    ("personal information management systems" → "personal information management",
    "management systems"); None for a bigram the paper writes only across a phrase's end."""
    out: list[str | None] = []
    i = 0
    while i < len(parts) - 1:
        j = len(parts)
        shown = None
        while j > i + 1:
            shown = _surface(words, " ".join(parts[i:j]), joined_as_is=False)
            if shown is not None or j == i + 2:
                break
            j -= 1
        out.append(shown)
        i = j - 1
    return out
