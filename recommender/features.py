"""Stage 1, text features: a paper's title + abstract → TF-IDF row, hstacked with a
smaller-weight author block, rows L2-normalised; and the name helper that matches authors.

`_fit_features` learns the vocabularies on the corpus (the start of `Recommender.fit`),
`_vectorize` turns any docs into rows of the same space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from anyascii import anyascii
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommender.config import RecommenderConfig
from recommender.state import _Fitted
from recommender.types import Doc


def _doc_text(doc: Doc, use_abstract: bool) -> str:
    if use_abstract and doc.abstract:
        return f"{doc.title}. {doc.abstract}"
    return doc.title


def _fold(text: str) -> str:
    """`text` without accents (NFKD, combining marks dropped), in lower case. ASCII text is
    only lowered: it has nothing to decompose (most titles and abstracts; the character loop
    took 60 ms for a day's 3,000 candidates)."""
    if text.isascii():
        return text.lower()
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


# LaTeX as arXiv titles and abstracts write it, read for matching keywords (`_keyword_fold`):
# an accent command on its letter (Schr\"odinger, Schr{\"o}dinger, \'{e}, \c c), a command with
# an argument (\emph{…}, \mathrm{…}: its text stays), a command alone (\gamma: its name, a word)
_LATEX_ACCENT = re.compile(r"\\[\"'`^~=.uvHckrbd]\s*(?:\{\s*([A-Za-z])\s*\}|([A-Za-z]))")
_LATEX_ARGUMENT = re.compile(r"\\[A-Za-z]+\*?\s*(?=\{)")
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)")
_LATEX_PUNCTUATION = re.compile(r"[{}$]")
# a Greek letter as its name, as LaTeX writes it ($\gamma$-ray, γ-ray: "gamma-ray")
_GREEK = str.maketrans(dict(zip(
    "αβγδεζηθικλμνξοπρσςτυφχψωϵϑϕϖϱϰ",
    ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
     "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "sigma", "tau", "upsilon",
     "phi", "chi", "psi", "omega", "epsilon", "theta", "phi", "pi", "rho", "kappa"],
    strict=True,
)))  # fmt: skip


def _keyword_fold(text: str) -> str:
    """`text` folded for matching a followed or muted keyword: LaTeX read as the digest shows
    it (an accented letter as that letter, `$\\gamma$` as γ, braces and `$` left out), then
    `_fold`, and a Greek letter as its name (γ → "gamma"), so that "Schrödinger" matches
    "Schr\\"odinger" and "γ-ray", "gamma-ray" and "$\\gamma$-ray" are one key."""
    if "\\" in text or "$" in text or "{" in text:
        text = _LATEX_ACCENT.sub(lambda m: m.group(1) or m.group(2), text)
        text = _LATEX_ARGUMENT.sub(" ", text)
        text = _LATEX_COMMAND.sub(r" \1 ", text).replace("\\", " ")
        text = _LATEX_PUNCTUATION.sub("", text)
    folded = _fold(text)
    return folded if folded.isascii() else folded.translate(_GREEK)


def _name_fold(name: str) -> str:
    """`_fold`, then the letters it leaves (ø, ł, ß, þ: they have no accent to take off) and
    Cyrillic or Greek ones in Latin letters (`anyascii`: "Røgen" → "rogen", "Иванов" →
    "ivanov"): an author's key is made of a–z and digits, and those letters were dropped
    ("rgen"), so a name typed on an ASCII keyboard missed its author."""
    folded = _fold(name)
    return folded if folded.isascii() else anyascii(folded).lower()


_SUFFIX = re.compile(r"(?:^|\s)(?:jr|sr|ii|iii|iv)\b\.?\s*$")  # "Jr.", "III" ending a name

# words that begin a surname ("Del Maestro", "de Gennes", "van der Waals", "Le Cun")
_SURNAME_PARTICLES = frozenset({
    "da", "das", "de", "degli", "del", "della", "den", "der", "des", "di", "do", "dos", "du",
    "la", "le", "st", "ten", "ter", "van", "von", "zu",
})  # fmt: skip


def _surname_key(name: str) -> tuple[str, str]:
    """(surname, first initial): the key an author token is made of, the surname whole
    ("Le Cun" and "LeCun" are "lecun", "van den Oord, Aaron" and "Aaron van den Oord"
    "vandenoord"; `_surname_keys`)."""
    keys, initial = _surname_keys(name)
    return keys[-1], initial


def _surname_keys(name: str) -> tuple[tuple[str, ...], str]:
    """(keys, first initial) of "Last, First", "First Last" or PubMed's "Last FM": the keys of
    the surname are its last word (a key alone since the name is often written without the
    particles before it: "Amaral" is "Nunes Amaral"), then, if particles ("le", "van der")
    stand before that word, the surname written as one word, as "LeCun" is written ("Le Cun"
    → "cun", "lecun"). A particle joins the surname only after a given name or in the
    surname's part: "Le Song" and "Song, Le" are Song, "Oord, Aaron van den" is van den Oord.
    A comma form's whole surname was the key once ("Del Maestro, Adrian" → "delmaestro" where
    "Adrian Del Maestro" gave "maestro"): a library's BibTeX and arXiv named two people. A
    suffix ("Jr.", "III") ending a part is left out: "S. James Gates, Jr." is no "Last,
    First". A name in Chinese, Japanese or Korean (`_east_asian`) is its own key, whole."""
    if _east_asian(name):
        return (_east_asian_key(name),), ""
    words = name.split()
    if "," not in name and len(words) > 1 and _initials(words[-1]):  # "Smith J", "LeCun Y"
        name = f"{' '.join(words[:-1])}, {words[-1]}"
    parts = [p for p in (_SUFFIX.sub("", p) for p in _name_fold(name).split(",")) if p.strip()]
    if len(parts) > 1:  # "Last, First" or BibTeX's "Last, Jr, First"
        given = parts[-1].split()
        cut = len(given) - min(_particles_before(given, len(given)), len(given) - 1)
        surname, first = given[cut:] + parts[0].split(), " ".join(given[:cut])
        lead = _particles_before(surname, len(surname) - 1)
    else:
        surname = " ".join(parts).split()
        first = " ".join(surname[:-1])
        lead = min(_particles_before(surname, len(surname) - 1), len(surname) - 2)
    if not surname:
        return ("",), ""
    first = _NOT_GIVEN.sub(" ", first).strip()
    last = _NOT_KEY.sub("", surname[-1])
    if lead > 0:
        return (last, _NOT_KEY.sub("", "".join(surname[-1 - lead :]))), first[:1]
    return (last,), first[:1]


_NOT_GIVEN = re.compile(r"[^a-z ]+")
_NOT_KEY = re.compile(r"[^a-z0-9]+")


def _particles_before(words: list[str], end: int) -> int:
    """How many of `words[:end]`, counted back from `end`, are surname particles."""
    n = 0
    while n < end and words[end - 1 - n].strip(".") in _SURNAME_PARTICLES:
        n += 1
    return n


_INITIALS = re.compile(r"[A-Z]{1,3}")
_VOWELS = frozenset("AEIOU")


def _initials(word: str) -> bool:
    """Whether the last word of a name without a comma is PubMed's initials ("Smith J",
    "Denker JS"): capitals without a full stop, one, or two or three with no vowel. A surname
    in capitals has one ("Lie XU"), as have "II" and "III"; PubMed initials with a vowel
    ("Smith AE") are read as a surname, as before."""
    return bool(_INITIALS.fullmatch(word)) and (len(word) == 1 or not _VOWELS & set(word))


def _followed_author_key(name: str) -> tuple[tuple[str, ...], str]:
    """The keys of a followed or muted author (`_surname_keys`): a name of surname particles
    and a last word ("Del Maestro", "van der Waals") is a surname alone, matched whatever the
    initial (as "Maestro" is), not a given name "Del" with the initial d."""
    keys, initial = _surname_keys(name)
    if initial and "," not in name:
        words = _name_fold(name).split()
        if len(words) > 1 and _particles_before(words, len(words) - 1) == len(words) - 1:
            return (keys[0], _NOT_KEY.sub("", "".join(words))), ""
    return keys, initial


def _east_asian(name: str) -> bool:
    """Whether `name` is written in Chinese, Japanese or Korean (张三, 山田 太郎, 김철수): wide
    characters (East Asian Width W or F) and no Latin letter."""
    return (
        not name.isascii()
        and any(unicodedata.east_asian_width(c) in "WF" for c in name)
        and not re.search(r"[A-Za-z]", name)
    )


def _east_asian_key(name: str) -> str:
    """The key of a Chinese, Japanese or Korean name: its letters, in NFKC (fullwidth forms as
    the usual ones, kana kept whole: NFKD would take the voicing mark off が), spaces and
    marks left out. Family name first and given name written together, a surname alone or a
    first initial says nothing: 张 or 李 is the family name of a hundred million people."""
    return "".join(c for c in unicodedata.normalize("NFKC", name).casefold() if c.isalnum())


def _author_tokens(doc: Doc) -> list[str]:
    out = []
    for name in doc.authors:
        last, initial = _surname_key(name)
        if last:
            out.append(f"{last}_{initial}")
    return out


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _drop_stop_words(vec: TfidfVectorizer) -> None:
    """Older scikit-learn keeps every pruned term in `stop_words_` (only for inspection)."""
    if hasattr(vec, "stop_words_"):
        delattr(vec, "stop_words_")


# `max_df` as a share prunes a word only when more papers than MAX_DF_MIN_PAPERS hold it, or
# more than half of them (MAX_DF_SMALL: a word of every paper is filler): a small install
# follows a few fields, and 0.1 of 480 papers of five fields took their names out ("protein",
# "phylogenetic", "social networks": recall@10 0.48 → 0.58 on tests/data's fields, five
# seeded coldstart splits; 0.5 and 1.0 alike there); from 10,000 papers on the share decides
# alone (on CiteULike-a's 16,980 papers it prunes nothing: 0.1, 0.3 and 1.0 give the same
# figures to the last digit)
MAX_DF_MIN_PAPERS = 1_000
MAX_DF_SMALL = 0.5


def _fit_features(docs: list[Doc], cfg: RecommenderConfig) -> _Fitted:
    """Fit the word and author vectorisers on `docs` (distinct ids, not empty): the state
    without the collaborative map."""
    texts = [_doc_text(d, cfg.use_abstract) for d in docs]
    n = len(docs)
    min_df: int | float = cfg.min_df if not isinstance(cfg.min_df, int) else min(cfg.min_df, n)
    max_df: int | float = cfg.max_df
    if isinstance(max_df, float):  # a share counts at least MAX_DF_MIN_PAPERS papers
        max_df = max(max_df, min(MAX_DF_SMALL, MAX_DF_MIN_PAPERS / n))
    if isinstance(max_df, float) and max_df * n < max(1, min_df if isinstance(min_df, int) else 1):
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
    _drop_stop_words(word_vec)
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
            _drop_stop_words(author_vec)
        except ValueError:  # no author appears often enough
            author_vec = None
    matrix = normalize(sp.hstack(blocks).tocsr()).astype(np.float32)
    matrix.indices = matrix.indices.astype(np.int32)
    matrix.indptr = matrix.indptr.astype(np.int32)
    n_words = words.shape[1]
    terms = np.array(
        list(word_vec.get_feature_names_out()) + [""] * (matrix.shape[1] - n_words),
        dtype=object,
    )
    ids = [d.id for d in docs]
    index = {d: i for i, d in enumerate(ids)}
    return _Fitted(
        word_vec, author_vec, ids, index, matrix, terms, n_words, [d.title for d in docs]
    )


def _vectorize(f: _Fitted, docs: Sequence[Doc], cfg: RecommenderConfig) -> sp.csr_matrix:
    """Feature rows (L2-normalised) for docs; fitted-corpus docs reuse their stored row."""
    if not docs:
        return sp.csr_matrix((0, f.matrix.shape[1]), dtype=np.float32)
    stored = [f.index.get(d.id) for d in docs]
    if all(s is not None for s in stored):
        return f.matrix[[s for s in stored if s is not None]]
    fresh_docs = [d for d, s in zip(docs, stored, strict=True) if s is None]
    words = f.word_vectorizer.transform([_doc_text(d, cfg.use_abstract) for d in fresh_docs])
    blocks = [normalize(words)]
    if f.author_vectorizer is not None:
        authors = f.author_vectorizer.transform([_author_tokens(d) for d in fresh_docs])
        blocks.append(normalize(authors) * cfg.author_weight)
    fresh = normalize(sp.hstack(blocks).tocsr()).astype(np.float32)
    if len(fresh_docs) == len(docs):
        return fresh
    parts = []
    it = iter(range(len(fresh_docs)))
    for s in stored:
        parts.append(f.matrix[s] if s is not None else fresh[next(it)])
    return sp.vstack(parts).tocsr()
