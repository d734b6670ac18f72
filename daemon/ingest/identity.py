"""A paper's identity: arXiv ids in every form they come in, canonicalised in one place.

A stored paper's key is ``arxiv:<id without version>`` (``arxiv:2503.01785``,
``arxiv:astro-ph/0601001``), else ``doi:<lower-cased doi>``, else ``guid:<guid or link>``.
Parsing feeds and finding a paper named on the command line both go through here, so
``math.GT/0309136``, ``arXiv:math/0309136v2`` and ``https://arxiv.org/abs/math/0309136`` are the
same paper everywhere.
"""

from __future__ import annotations

import re

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


def paper_keys(ref: str) -> list[str]:
    """The keys a reference given by a person may mean, most specific first: a key as it is,
    an arXiv id (bare, ``arXiv:…`` or a URL, any version), a DOI."""
    ref = ref.strip()
    keys: list[str] = []
    if _KEY.fullmatch(ref):
        scheme, _, rest = ref.partition(":")
        scheme = scheme.lower()
        if scheme == "arxiv" and (found := bare_arxiv_id(rest)):
            keys.append(f"arxiv:{found[0]}")
        keys.append(f"{scheme}:{rest.lower() if scheme == 'doi' else rest}")
    found = bare_arxiv_id(ref) or find_arxiv_ref(ref)
    if found:
        keys.append(f"arxiv:{found[0]}")
    keys.append(f"doi:{ref.lower()}")
    return list(dict.fromkeys(keys))
