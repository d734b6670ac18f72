"""A paper's identity: the one place that decides whether two records are the same paper.

A stored paper's key is ``arxiv:<id without version>`` (``arxiv:2503.01785``,
``arxiv:astro-ph/0601001``), else ``doi:<lower-cased doi>``, else ``guid:<guid or link>``.
Parsing feeds and finding a paper named on the command line both go through here, so
``math.GT/0309136``, ``arXiv:math/0309136v2`` and ``https://arxiv.org/abs/math/0309136`` are the
same paper everywhere.

Across sources a paper is linked by, in this order: its key or arXiv id, its DOI, its
normalised title (`same_paper`). A journal item that only has a DOI and the arXiv record that
names the same DOI are one paper; so are a DOI-less journal item and the arXiv record with the
same title and a shared author. Two different arXiv ids, or two different DOIs, are never one
paper, and two records with neither (blog posts) are linked only by their key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from anyascii import anyascii

# New-style ids (0704.0001 … 2503.01785, 4 or 5 digits after the dot) and old-style ids
# (astro-ph/0601001, math.GT/0309136 — the ".GT" subject class is not part of the identifier).
ID_PATTERN = r"\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[a-z]{2})?/\d{7}"
# An arXiv id inside a URL, an OAI guid or a citation: arxiv.org/abs/…, oai:arXiv.org:…, arXiv:…
_ARXIV_REF = re.compile(
    rf"arxiv(?:\.org)?(?:/abs|/pdf|/html)?[:/]\s*({ID_PATTERN})(?:v(\d+))?(?!\d)", re.I
)
_BARE_ID = re.compile(rf"({ID_PATTERN})(?:v(\d+))?", re.I)
_KEY = re.compile(r"(arxiv|doi|guid):.+", re.I)


def canonical_id(arxiv_id: str) -> str:
    """The id without version or subject class: ``math.GT/0309136`` → ``math/0309136``."""
    if "/" in arxiv_id:  # old style: keep the archive, drop an optional subject class
        archive, number = arxiv_id.split("/", 1)
        return f"{archive.split('.', 1)[0].lower()}/{number}"
    return arxiv_id


def find_arxiv_ref(*candidates: object) -> tuple[str, int | None] | None:
    """(canonical id, version) of the first arXiv reference (URL, ``arXiv:…``, OAI guid)
    among `candidates`."""
    for candidate in candidates:
        if isinstance(candidate, str) and (m := _ARXIV_REF.search(candidate)):
            return canonical_id(m.group(1)), int(m.group(2)) if m.group(2) else None
    return None


def bare_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """(canonical id, version) when `text` is exactly an arXiv id, with or without version."""
    m = _BARE_ID.fullmatch(text.strip())
    if m is None:
        return None
    return canonical_id(m.group(1)), int(m.group(2)) if m.group(2) else None


# In free text (a pasted list, a BibTeX field): a bare id stands alone (not inside a longer
# number, path or DOI); arXiv's own DOIs (10.48550/arXiv.2401.01234) name an id too.
_BARE_IN_TEXT = re.compile(rf"(?<![\w./-])({ID_PATTERN})(?:v(\d+))?(?![\w/-])", re.I)
_ARXIV_DOI = re.compile(rf"10\.48550/arxiv\.({ID_PATTERN})(?:v(\d+))?(?!\d)", re.I)
_FIRST_NEW_STYLE = 704  # 0704.0001: the first new-style id (April 2007)
_FIVE_DIGITS_FROM = 1501  # from January 2015 the number has 5 digits


def plausible_id(arxiv_id: str) -> bool:
    """Whether a new-style id names a month arXiv had (0704 …) with the right number of
    digits (4 until 1412, 5 from 1501); old-style ids are taken as they are."""
    if "/" in arxiv_id:
        return True
    yymm, _, number = arxiv_id.partition(".")
    month = int(yymm[2:])
    if not 1 <= month <= 12 or int(yymm) < _FIRST_NEW_STYLE:
        return False
    return len(number) == (5 if int(yymm) >= _FIVE_DIGITS_FROM else 4)


def arxiv_ids_in(text: str) -> list[str]:
    """The canonical arXiv ids named in `text`, in order, each once: URLs (abs, pdf, html),
    ``arXiv:…``, arXiv DOIs and bare ids (a bare new-style id only when it is plausible, so
    ``1234.5678`` in prose is no paper); versions are dropped."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_ARXIV_REF, _ARXIV_DOI):
        for m in pattern.finditer(text):
            found.append((m.start(), canonical_id(m.group(1))))
            taken.append(m.span(1))
    for m in _BARE_IN_TEXT.finditer(text):
        if any(start <= m.start(1) < end for start, end in taken):
            continue
        if plausible_id(m.group(1)):
            found.append((m.start(), canonical_id(m.group(1))))
    return list(dict.fromkeys(arxiv_id for _, arxiv_id in sorted(found)))


def paper_keys(ref: str) -> list[str]:
    """The keys a reference given by a person may mean, most specific first: a key as it is,
    an arXiv id (bare, ``arXiv:…``, a URL or arXiv's DOI ``10.48550/arXiv.…``, any version), a
    DOI."""
    ref = ref.strip()
    keys: list[str] = []
    if _KEY.fullmatch(ref):
        scheme, _, rest = ref.partition(":")
        scheme = scheme.lower()
        if scheme == "arxiv" and (found := bare_arxiv_id(rest)):
            keys.append(f"arxiv:{found[0]}")
        keys.append(f"{scheme}:{rest.lower() if scheme == 'doi' else rest}")
    found = bare_arxiv_id(ref) or find_arxiv_ref(ref)
    doi = canonical_doi(ref)
    if found:
        keys.append(f"arxiv:{found[0]}")
    elif doi and (m := _ARXIV_DOI.fullmatch(doi)):  # arXiv's own DOI names its paper
        keys.append(f"arxiv:{canonical_id(m.group(1))}")
    keys.append(f"doi:{doi or ref.lower()}")  # https://doi.org/10.… too
    return list(dict.fromkeys(keys))


# --- DOIs -------------------------------------------------------------------------------------

# "10.<registrant>/<suffix>": the suffix may hold almost anything but white space.
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*|info:doi/)", re.I)
_DOI_URL = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|info:doi/|doi:)", re.I)
# A publisher's page named by its DOI: …/doi/10.1021/…, …/doi/abs/10.1126/… (the Atypon sites:
# ACS, Wiley, Science, Taylor & Francis, SAGE, ACM), link.springer.com/[article/]10.1007/….
_DOI_PAGE = re.compile(
    r"^https?://(?:[^/?#]+/(?:[^?#]*/)?doi(?:/(?:abs|full|pdf|epdf|epub|reader))?"
    r"|link\.springer\.com(?:/(?:article|chapter))?)/(10\.\d{4,9}/[^?#]+)",
    re.I,
)
DOI_MAX = 300


def canonical_doi(text: object) -> str | None:
    """``https://doi.org/10.1103/PhysRevB.85`` / ``doi:10.1103/…`` / ``info:doi/10.1103/…`` /
    ``10.1103/…`` → the DOI in lower case (DOIs are case-insensitive); None when `text` is no
    DOI. Of several DOIs separated by white space (arXiv's ``arxiv:doi`` may list two), the
    first. A doi.org link's query and fragment are no part of it (``?af=R``: a feed's mark)."""
    if not isinstance(text, str):
        return None
    text = re.sub(r"^(doi:)\s+", r"\1", text.strip(), flags=re.I)  # "doi: 10.1000/x"
    first = text.split()[0] if text else ""
    if _DOI_URL.match(first) and first[:4].lower() == "http":
        first = re.split(r"[?#]", first, maxsplit=1)[0]
    candidate = unquote(_DOI_PREFIX.sub("", first))
    if not _DOI.fullmatch(candidate) or len(candidate) > DOI_MAX:
        return None
    return candidate.rstrip(".,;").lower()


def find_doi(fields: Iterable[object], urls: Iterable[object] = ()) -> str | None:
    """The first DOI among fields that hold one (``prism:doi``, ``arxiv:doi``,
    ``dc:identifier``), else among `urls` (guid, links) that are ``doi.org`` links or
    ``info:doi/`` or ``doi:`` ids,
    else among `urls` that are a publisher's page named by its DOI (``…/doi/10.1021/…``)."""
    for value in fields:
        if doi := canonical_doi(value):
            return doi
    links = [u.strip() for u in urls if isinstance(u, str)]
    for url in links:
        if _DOI_URL.match(url) and (doi := canonical_doi(url)):
            return doi
    for url in links:
        if (m := _DOI_PAGE.match(url)) and (doi := canonical_doi(m.group(1))):
            return doi
    return None


# --- keys -------------------------------------------------------------------------------------

GUID_MAX = 1_000
_KEY_RANK = {"arxiv": 3, "doi": 2}  # anything else (guid:) ranks 1


def paper_key(arxiv_id: str | None, doi: str | None, guid: str) -> str:
    """The key of a paper: ``arxiv:<id>``, else ``doi:<doi>``, else ``guid:<guid or link>``
    (a guid longer than 1,000 characters is replaced by its SHA-256)."""
    if arxiv_id:
        return f"arxiv:{arxiv_id}"
    if doi:
        return f"doi:{doi}"
    if len(guid) > GUID_MAX:
        guid = "sha256:" + hashlib.sha256(guid.encode("utf-8", "replace")).hexdigest()
    return f"guid:{guid}"


def key_rank(key: str) -> int:
    """How specific a key is: arXiv (3) > DOI (2) > guid (1). A stored paper takes the most
    specific key it has been seen with."""
    return _KEY_RANK.get(key.partition(":")[0].lower(), 1)


# --- titles -----------------------------------------------------------------------------------

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_NON_WORD = re.compile(r"[\W_]+")
TITLE_KEY_MIN_WORDS = 4
TITLE_KEY_MIN_CHARS = 20


def title_key(title: str) -> str | None:
    """A title folded for matching (case, accents, punctuation, LaTeX commands and spacing
    dropped): ``"Schrödinger's  Cat: a $\\mathbb{Z}$-Study"`` → ``"schrodinger s cat a z study"``.

    None for titles too short to identify a paper ("Editorial", "Reply to comments"): those
    never link two records. Stored in ``paper.title_key``; changing this function needs a
    migration that recomputes that column.
    """
    folded = _NON_WORD.sub(" ", _folded(_LATEX_COMMAND.sub(" ", title))).strip()
    if len(folded) < TITLE_KEY_MIN_CHARS or folded.count(" ") + 1 < TITLE_KEY_MIN_WORDS:
        return None
    return folded[:500]


def _folded(text: str) -> str:
    """Case-folded, compatibility-decomposed, accents dropped: the base of matching keys."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _surnames(authors: Sequence[str]) -> set[str]:
    """Each author's surname keys, in Latin letters (`anyascii`: "Røgen" as the "Rogen" of an
    ASCII BibTeX): its last word and that word joined to the one or two before it, so that a
    surname written apart is the one written together ("Y. Le Cun" and "Le Cun, Y." share
    "lecun" with "Yann LeCun"; a join that is no surname, "johnsmith", meets nothing). Of
    "Last, First" the part before the comma ("S. James Gates, Jr." is Gates either way), of
    PubMed's "Smith J" the words before the initials (the recommender reads names alike,
    recommender/features.py `_surname_keys`; ingest does not import it)."""
    names: set[str] = set()
    for name in authors:
        words = name.split()
        if "," not in name and len(words) > 1 and _pubmed_initials(words[-1]):
            name = " ".join(words[:-1])
        folded = _folded(name.split(",", 1)[0] if "," in name else name)
        if not folded.isascii():
            folded = anyascii(folded).lower()
        words = _NON_WORD.sub(" ", folded).split()
        names.update("".join(words[-k:]) for k in range(1, min(3, len(words)) + 1))
    return names


def _pubmed_initials(word: str) -> bool:
    """PubMed's initials ending a name ("Smith J", "Denker JS"): one capital, or two or three
    with no vowel ("Lie XU" is Xu)."""
    return re.fullmatch(r"[A-Z]{1,3}", word) is not None and (
        len(word) == 1 or not set(word) & set("AEIOU")
    )


# --- one paper? ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What identifies a record of a paper, from a feed or from the database."""

    key: str
    arxiv_id: str | None
    doi: str | None
    title_key: str | None
    authors: tuple[str, ...] = ()


LINK_KEY, LINK_DOI, LINK_TITLE = 3, 2, 1  # how strongly two records are linked


def same_paper(a: Identity, b: Identity) -> int:
    """How `a` and `b` are the same paper: `LINK_KEY` (key or arXiv id), `LINK_DOI`,
    `LINK_TITLE` (normalised title and, when both name authors, a shared surname), or 0."""
    if a.key == b.key:
        return LINK_KEY
    if a.arxiv_id and b.arxiv_id:  # both on arXiv: the id decides alone
        return LINK_KEY if a.arxiv_id == b.arxiv_id else 0
    if a.doi and b.doi:  # both have a DOI: it decides alone
        return LINK_DOI if a.doi == b.doi else 0
    if not (a.arxiv_id or a.doi or b.arxiv_id or b.doi):  # two blog posts: only their keys
        return 0
    if a.title_key is None or a.title_key != b.title_key:
        return 0
    if a.authors and b.authors and not (_surnames(a.authors) & _surnames(b.authors)):
        return 0
    return LINK_TITLE


def best_match(record: Identity, candidates: Sequence[Identity]) -> int | None:
    """The index of the candidate that is the same paper as `record`, most strongly linked
    (the first among equals), or None."""
    best: tuple[int, int] | None = None
    for i, candidate in enumerate(candidates):
        strength = same_paper(record, candidate)
        if strength and (best is None or strength > best[0]):
            best = (strength, i)
    return best[1] if best else None
