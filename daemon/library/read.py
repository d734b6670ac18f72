"""A library file → entries: pure functions of the file's bytes, no database, no network.

Formats (`detect_format` tells them apart from the bytes; `--format` overrides it):

* ``arxiv`` — any text naming arXiv papers: ids old and new (``hep-th/9901001``,
  ``2401.01234v2``), ``arXiv:…``, arxiv.org abs/pdf/html URLs, arXiv DOIs; one entry per id,
  a line that names none is reported (``#`` starts a comment line).
* ``bibtex`` — BibTeX (bibtexparser 1.x, ``@string`` macros expanded); the arXiv id is read
  from ``eprint``/``arxivid``, the URL, an arXiv DOI, ``journal``/``volume`` (dblp's
  ``CoRR abs/…``) or ``note``; LaTeX in titles, abstracts and names becomes Unicode text
  (pylatexenc).
* ``ris`` — RIS (rispy), one record from ``TY`` to ``ER``.
* ``csl-json`` — CSL JSON, as Zotero, Mendeley and citation.js export it.
* ``csv`` — a table with a header row naming a ``Title`` column (Zotero's, Google Scholar's,
  Paperpile's CSV export; Python's csv module), one entry per row.

An entry that cannot be read is a `Problem` naming its line or citation key and why; the other
entries are read. A file in which nothing can be read is a `LibraryError` saying what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import PaperwireError
from daemon.ingest.identity import arxiv_ids_in, bare_arxiv_id, canonical_doi, find_doi
from daemon.ingest.text import (
    ABSTRACT_MAX,
    AUTHORS_MAX,
    NAME_MAX,
    RAW_FACTOR,
    TITLE_MAX,
    URL_MAX,
    plain_text,
)
from notifications.latex import converter

FORMATS = ("arxiv", "bibtex", "ris", "csl-json", "csv")
MAX_ENTRIES = 100_000  # entries read from one file
MAX_BYTES = 50_000_000


class LibraryError(PaperwireError):
    """A library file (or the Zotero library) cannot be read at all."""


@dataclass(frozen=True)
class Entry:
    """One paper of a library, as the file describes it (text fields plain, capped)."""

    where: str  # "line 12", "entry vaswani2017 (line 40)", "item 3 (ABCD1234)"
    arxiv_id: str | None = None  # canonical: no version
    doi: str | None = None  # lower case
    title: str = ""
    abstract: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    url: str = ""


@dataclass(frozen=True)
class Problem:
    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


@dataclass
class Library:
    """What a file holds: its format, the entries read, and the entries that could not be."""

    format: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # entries that are no paper of the library, said why: a BibTeX volume (@proceedings,
    # @book) that other entries name in their crossref field
    skipped: list[Problem] = field(default_factory=list)


WHAT_TO_DO = (
    "export the library as BibTeX, RIS or CSL JSON (Zotero: File → Export Library…; Mendeley: "
    "File → Export), or give a text file of arXiv ids, URLs or DOIs, one per line"
)


def read_library(data: bytes, *, name: str, fmt: str | None = None) -> Library:
    """The entries of a library file. `name` names the file in messages; `fmt` is one of
    `FORMATS` (None: detected). Raises `LibraryError` when the file cannot be read at all."""
    if len(data) > MAX_BYTES:
        raise LibraryError(f"{name}: larger than {MAX_BYTES // 1_000_000} MB; split it")
    text = _decode(data, name)
    if not text.strip():  # an export of an empty collection, or the wrong file
        raise LibraryError(f"{name}: the file is empty; {WHAT_TO_DO}")
    fmt = fmt or detect_format(text)
    readers: dict[str, Callable[[str, str], Library]] = {
        "arxiv": read_arxiv_list,
        "bibtex": read_bibtex,
        "ris": read_ris,
        "csl-json": read_csl_json,
        "csv": read_csv,
    }
    if fmt not in readers:
        raise LibraryError(f"--format {fmt!r}: give one of {', '.join(FORMATS)}")
    library = readers[fmt](text, name)
    if not library.entries and not library.problems and not library.skipped:
        raise LibraryError(f"{name}: no paper found in this {_FORMAT_NAMES[fmt]}; {WHAT_TO_DO}")
    if not library.entries and fmt == "arxiv":
        raise LibraryError(
            f"{name}: found no arXiv id, DOI, BibTeX entry, RIS record or CSL JSON item "
            f"(first problem: {library.problems[0]}); {WHAT_TO_DO}"
        )
    if len(library.entries) > MAX_ENTRIES:
        raise LibraryError(f"{name}: more than {MAX_ENTRIES} entries; split the file")
    return library


_FORMAT_NAMES = {
    "arxiv": "list of arXiv ids",
    "bibtex": "BibTeX file",
    "ris": "RIS file",
    "csl-json": "CSL JSON file",
    "csv": "CSV file",
}
_BIBTEX_START = re.compile(r"^[ \t]*@[ \t]*([A-Za-z]+)[ \t]*[{(][ \t]*([^,\s{}()]*)", re.M)
_JSON_START = re.compile(r"\s*(?:\[\s*[\[{\]]|\{\s*[\"}])")
_RIS_TAG = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")
# "TY - JOUR": one space before the dash (a download copied from the browser, which shows two
# spaces as one; Zotero reads it), written back with two for rispy
_RIS_TAG_ONE_SPACE = re.compile(r"^([A-Z][A-Z0-9]) -( |$)", re.M)
_RIS_START = re.compile(r"^TY {1,2}-", re.M)


def detect_format(text: str) -> str:
    """The format of a library file's text: JSON (a list of objects, an object) →
    ``csl-json``; a first line of comma-, semicolon- or tab-separated column names with
    ``Title`` among them → ``csv``; an ``@type{`` line →
    ``bibtex``; a ``TY  -`` line → ``ris``; anything else → ``arxiv`` (a list of ids)."""
    if _JSON_START.match(text):  # "[1] arXiv:2401.01234" is a numbered list, not JSON
        return "csl-json"
    if _csv_header(text) is not None:
        return "csv"
    if _BIBTEX_START.search(text):
        return "bibtex"
    if _RIS_START.search(text):
        return "ris"
    return "arxiv"


def _decode(data: bytes, name: str) -> str:
    """The text of a library file: UTF-8 or UTF-16 (with a BOM, or ASCII-looking UTF-16 as
    Windows tools write it), else Windows-1252; a binary file is refused."""
    boms = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
    for bom, encoding in boms:  # before the NUL test: UTF-16 is full of NULs
        if data.startswith(bom):
            return data.decode(encoding, errors="replace").lstrip("\ufeff")
    head = data[:4096]
    pairs = list(zip(head[0::2], head[1::2], strict=False))
    whole_nul = any(a == 0 and b == 0 for a, b in pairs)  # U+0000: no text has it
    for encoding, high in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
        # UTF-16 of a library's ASCII syntax: NUL high bytes, one in two at least (CJK titles
        # have none; 一 is 00 4E in LE, so a NUL low byte alone is no sign of anything)
        if len(head) >= 8 and not whole_nul and high.count(0) * 2 >= len(high):
            return data.decode(encoding, errors="replace")
    if data.startswith(b"%PDF") or data.startswith(b"PK\x03\x04") or b"\x00" in head:
        raise LibraryError(
            f"{name}: this is a binary file (a PDF, a zip, …), not a library; {WHAT_TO_DO}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # old BibTeX files: Latin-1 / Windows


# ---- shared: one entry from its fields ----------------------------------------------------------


def make_entry(
    where: str,
    *,
    title: str,
    authors: Iterable[str],
    id_fields: Sequence[object] = (),
    doi_fields: Sequence[object] = (),
    urls: Sequence[object] = (),
    abstract: str = "",
    year: object = None,
) -> Entry | Problem:
    """An entry from the fields of a record (plain text already), or the problem with it.
    The arXiv id is the first found among `id_fields`, the URLs and an arXiv DOI."""
    arxiv_id = _arxiv_id(id_fields, urls, doi_fields)
    doi = find_doi(doi_fields, urls)
    if doi and doi.startswith("10.48550/arxiv."):
        doi = None  # arXiv's own DOI: the id says it all
    title = plain_text(_unmarked(title), TITLE_MAX)
    if not (title or arxiv_id or doi):
        return Problem(where, "no title, arXiv id or DOI: nothing to find the paper by")
    url = next((u for u in (_clean_url(x) for x in urls) if u), "")
    names = [n for n in (plain_text(a, NAME_MAX) for a in authors) if n and n != "others"]
    return Entry(
        where=where,
        arxiv_id=arxiv_id,
        doi=doi,
        title=title,
        abstract=plain_text(_unmarked(abstract), ABSTRACT_MAX),
        authors=tuple(names[:AUTHORS_MAX]),
        year=_year(year),
        url=url,
    )


# Zotero's rich text in titles (also in its CSL JSON and RIS): "<i>E. coli</i>",
# "CO<sub>2</sub>", '<span class="nocase">iPhone</span>'; JATS markup in abstracts fetched
# from Crossref: "<jats:title>Abstract</jats:title><jats:p>…</jats:p>"
_RICH_TEXT = re.compile(
    r"</?(?:i|b|sc|sub|sup)>|<span\b[^<>]*>|</span>"
    r"|</?jats:(?:italic|bold|sc|sub|sup|monospace|underline)\b[^<>]*>",  # inside words
    re.I,
)
_JATS = re.compile(r"</?jats:[A-Za-z-]+\b[^<>]*>")


def _unmarked(text: str) -> str:
    """`text` without Zotero's rich-text tags (their text kept) and JATS tags."""
    if "<" not in text:
        return text
    return _JATS.sub(" ", _RICH_TEXT.sub("", text))


def _arxiv_id(
    id_fields: Sequence[object], urls: Sequence[object], doi_fields: Sequence[object]
) -> str | None:
    for value in (*id_fields, *urls, *doi_fields):
        if not isinstance(value, str) or not value.strip():
            continue
        text = value.strip()
        text = re.sub(r"^(?:abs/|arxiv:\s*)", "", text, flags=re.I)  # dblp: CoRR abs/1706.03762
        found = bare_arxiv_id(text)
        if found:
            return found[0]
        ids = arxiv_ids_in(value)
        if ids:
            return ids[0]
    return None


def _clean_url(value: object) -> str:
    if not isinstance(value, str):
        return ""
    url = "".join(value.split())
    return url if url.startswith(("http://", "https://")) and len(url) <= URL_MAX else ""


def _year(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1000 <= value <= 2999 else None
    if isinstance(value, str) and (m := re.search(r"(?<!\d)([12]\d{3})(?!\d)", value)):
        return int(m.group(1))
    return None


def _person(name: str) -> str:
    """ "Last, First" (and "Last, Jr, First") → "First Last"; anything else as it is."""
    parts = [p.strip() for p in name.split(",")]
    if len(parts) == 2 and parts[1]:
        return f"{parts[1]} {parts[0]}"
    if len(parts) == 3 and parts[2]:
        return f"{parts[2]} {parts[0]} {parts[1]}"
    return " ".join(name.split())


# ---- a list of arXiv ids ------------------------------------------------------------------------


def read_arxiv_list(text: str, name: str = "") -> Library:
    """One entry per arXiv id named anywhere in the text, else per DOI of a line; lines that
    name neither are problems."""
    library = Library("arxiv")
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        ids = arxiv_ids_in(line)
        if not ids:  # a DOI (`10.1038/…`, `doi:…`, a doi.org link): matched when stored
            dois = dict.fromkeys(
                d for t in stripped.split() if (d := canonical_doi(t.strip("<>()[]\"'")))
            )
            library.entries.extend(Entry(where=f"line {n}", doi=d) for d in dois)
            if not dois:
                shown = stripped if len(stripped) <= 60 else stripped[:59] + "…"
                library.problems.append(Problem(f"line {n}", f"no arXiv id or DOI in {shown!r}"))
        library.entries.extend(Entry(where=f"line {n}", arxiv_id=i) for i in ids)
    return library


# ---- BibTeX -------------------------------------------------------------------------------------

_NOT_ENTRIES = {"comment", "string", "preamble"}
_INHERITED = ("year", "date")  # what an entry takes from its crossref volume when it has neither


def read_bibtex(text: str, name: str = "") -> Library:
    """The entries of a BibTeX file. The whole file is parsed once; an entry the parser left
    out (an unbalanced brace, a missing comma) is parsed again on its own, and reported with
    its line when it still cannot be read."""
    starts: list[tuple[int, int, str, str]] = []  # (offset, line, type, key)
    line, counted = 1, 0
    for m in _BIBTEX_START.finditer(text):
        line += text.count("\n", counted, m.start())
        counted = m.start()
        starts.append((m.start(), line, m.group(1).lower(), m.group(2)))
    macros = "".join(
        text[start : _next_start(starts, i, len(text))]
        for i, (start, _, kind, _) in enumerate(starts)
        if kind == "string"
    )
    parsed = _parse_bibtex(text)
    by_key: dict[str, list[dict[str, str]]] = {}
    for record in parsed:
        by_key.setdefault(record.get("ID", ""), []).append(record)
    # crossref: an entry takes the fields it lacks from the volume it names, as BibTeX does;
    # the volume is only there for its entries (keys compared without case, as BibTeX does)
    volumes = {r["ID"].casefold(): r for r in parsed if r.get("ID")}
    named = {r["crossref"].strip().casefold() for r in parsed if r.get("crossref", "").strip()}
    library = Library("bibtex")
    for i, (start, line, kind, key) in enumerate(starts):
        if kind in _NOT_ENTRIES:
            continue
        where = f"entry {key} (line {line})" if key else f"entry at line {line}"
        if key.casefold() in named:
            why = "a volume other entries name in their crossref field: they are imported, not it"
            library.skipped.append(Problem(where, why))
            continue
        records = by_key.get(key)
        chunk = text[start : _next_start(starts, i, len(text))]
        early = _closed_early(chunk)
        if early is not None:  # bibtexparser read the fields after it as a comment
            at, fields = early
            if records:
                records.pop(0)
            brace_line = line + chunk.count("\n", 0, at)
            library.problems.append(Problem(where, (
                f"cannot be read whole: the '}}' on line {brace_line} closes the entry before "
                f"its fields {', '.join(fields)}: remove that brace"
            )))  # fmt: skip
            continue
        if records:
            record = records.pop(0)
        else:
            again = _parse_bibtex(macros + chunk)
            if not again or not key:
                library.problems.append(Problem(where, _bibtex_trouble(chunk, key)))
                continue
            record = again[0]
        volume = volumes.get(record.get("crossref", "").strip().casefold())
        if volume is not None and not any(record.get(k) for k in _INHERITED):
            record = {k: v for k, v in volume.items() if k in _INHERITED} | record
        library_entry = _bibtex_entry(where, record)
        if isinstance(library_entry, Problem):
            library.problems.append(library_entry)
        else:
            library.entries.append(library_entry)
    return library


_OPENING = re.compile(r"@\s*\w+\s*([{(])")
_FIELD_AFTER = re.compile(r",\s*([A-Za-z][\w-]*)\s*=")


def _closed_early(chunk: str) -> tuple[int, list[str]] | None:
    """Where a stray '}' closes an entry (`title = {A}},`) before fields that follow it, and
    their names; None for an entry that ends where it should. Text after an entry's end that
    does not go on with ", field =" is a comment, as BibTeX reads it."""
    m = _OPENING.match(chunk)
    if m is None or m.group(1) == "(":
        return None
    depth, i = 0, m.start(1)
    while i < len(chunk):
        c = chunk[i]
        if c == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth == 0:
            break
        i += 1
    rest = chunk[i + 1 :]
    if not rest.lstrip().startswith(","):
        return None
    fields = list(dict.fromkeys(f.lower() for f in _FIELD_AFTER.findall(rest)))
    return (i, fields) if fields else None


def _next_start(starts: Sequence[tuple[int, int, str, str]], i: int, end: int) -> int:
    return starts[i + 1][0] if i + 1 < len(starts) else end


def _parse_bibtex(text: str) -> list[dict[str, str]]:
    import logging

    import bibtexparser
    from bibtexparser.bparser import BibTexParser

    parser = BibTexParser(common_strings=True, ignore_nonstandard_types=False)
    # a macro the file does not define (`journal = IEEE_J_PROC`, from IEEEabrv.bib) is empty,
    # as BibTeX reads it (with a warning), instead of bibtexparser's UndefinedString, which
    # failed the whole entry
    parser.bib_database.strings = _Macros(parser.bib_database.strings)
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)  # it logs every skipped entry
    try:
        entries: list[dict[str, str]] = bibtexparser.loads(text, parser=parser).entries
    except Exception:  # pyparsing's errors are its own; the caller reports the entry
        return []
    return entries


class _Macros(dict[str, str]):
    """The @string macros of a file; one it does not define is empty."""

    def __missing__(self, name: str) -> str:
        return ""


def _bibtex_trouble(chunk: str, key: str) -> str:
    if not key:
        return "no citation key (write @article{key, …)"
    depth = 0
    for c in chunk:
        depth += {"{": 1, "}": -1}.get(c, 0)
    if depth > 0:
        return f"cannot be read: {depth} unclosed brace(s)"
    if depth < 0:
        return f"cannot be read: {-depth} brace(s) closed that were never opened"
    if chunk.count('"') % 2:
        return "cannot be read: an unclosed quote"
    return "cannot be read: check the commas between fields and the field = {value} syntax"


_BARE_PERCENT = re.compile(r"(?<!\\)%")


def latex_text(value: str) -> str:
    """LaTeX → Unicode text: ``Schr\\"{o}dinger`` → Schrödinger, ``{BERT}`` → BERT,
    ``$\\alpha$`` → α; text that is no valid LaTeX loses only its braces."""
    if not any(c in value for c in "\\{}$~%"):
        return value
    value = _BARE_PERCENT.sub(r"\\%", value)  # "50% of": a per cent sign, not a comment
    try:
        return str(converter().latex_to_text(value))
    except Exception:  # pylatexenc is tolerant; anything it still cannot read stays text
        return value.replace("{", "").replace("}", "")


_AND = re.compile(r"\s+and\s+", re.I)


def bibtex_names(value: str) -> list[str]:
    """The people of a BibTeX name list ("Last, First and First Last and {Org and Co}")."""
    names: list[str] = []
    depth, piece = 0, list[str]()
    i = 0
    while i < len(value):
        c = value[i]
        depth += {"{": 1, "}": -1}.get(c, 0)
        m = _AND.match(value, i) if depth == 0 and c.isspace() else None
        if m:
            names.append("".join(piece))
            piece, i = [], m.end()
            continue
        piece.append(c)
        i += 1
    names.append("".join(piece))
    return [_person(latex_text(n.strip())) for n in names if n.strip()]


def _bibtex_entry(where: str, record: Mapping[str, str]) -> Entry | Problem:
    f = {k.lower(): v for k, v in record.items()}
    prefix = (f.get("archiveprefix") or f.get("eprinttype") or "arxiv").lower()
    eprint = f.get("eprint") if prefix == "arxiv" else None
    return make_entry(
        where,
        # cut before the LaTeX is read (it takes ~35 µs a character): what lies further
        # would be cut from the text anyway
        title=latex_text(f.get("title", "")[: TITLE_MAX * RAW_FACTOR]),
        authors=bibtex_names(f.get("author", "")),
        id_fields=[
            eprint,
            f.get("arxivid"),
            f.get("arxiv"),
            f.get("journal"),
            f.get("volume"),
            f.get("note"),
            f.get("howpublished"),
        ],
        doi_fields=[f.get("doi")],
        urls=[f.get("url")],
        abstract=latex_text(f.get("abstract", "")[: ABSTRACT_MAX * RAW_FACTOR]),
        year=f.get("year") or f.get("date"),
    )


# ---- RIS ----------------------------------------------------------------------------------------


def read_ris(text: str, name: str = "") -> Library:
    """The records of a RIS file, each from its ``TY`` line to its ``ER`` line."""
    library = Library("ris")
    if not re.search(r"^TY  - ", text, re.M):  # every tag with one space before the dash
        text = _RIS_TAG_ONE_SPACE.sub(r"\1  -\2", text)
    record: list[str] = []
    first = 0
    for n, line in enumerate(text.splitlines(), 1):
        m = _RIS_TAG.match(line.rstrip())
        tag = m.group(1) if m else None
        if tag == "TY":
            if record:
                why = f"no ER line before the next record (line {n}): the record is cut short"
                library.problems.append(Problem(f"record at line {first}", why))
            record, first = [line], n
        elif record:
            record.append(line)
            if tag == "ER":
                library_entry = _ris_entry(f"record at line {first}", "\n".join(record) + "\n")
                if isinstance(library_entry, Problem):
                    library.problems.append(library_entry)
                else:
                    library.entries.append(library_entry)
                record = []
    if record:
        library.problems.append(
            Problem(f"record at line {first}", "no ER line: the record is cut short")
        )
    return library


def _ris_entry(where: str, record: str) -> Entry | Problem:
    import rispy

    try:
        parsed = rispy.loads(record)
    except Exception as e:  # rispy raises plain IOError/ValueError for a bad tag or order
        return Problem(where, f"cannot be read ({e})")
    if not parsed:
        return Problem(where, "cannot be read")
    r: dict[str, Any] = parsed[0]
    # the journal ("arXiv preprint arXiv:…") is in JO, T2, JF (RefWorks, Google Scholar), JA
    # or J2, the series in T3, a chapter's book in BT (rispy: unknown_tag)
    unknown = r.get("unknown_tag") or {}
    notes = [
        *(r.get(k) for k in ("journal_name", "secondary_title", "alternate_title3")),
        *(r.get(k) for k in ("alternate_title2", "alternate_title1", "tertiary_title")),
        *unknown.get("BT", []),
        # N1 (and M1) hold Zotero's and Mendeley's "arXiv:2608.17253 [cs]" but also the
        # user's notes, which cite other papers: a note names the record only when it starts
        # with an id
        *(n for n in (*r.get("notes", []), r.get("note")) if _starts_with_arxiv_id(n)),
    ]
    return make_entry(
        where,
        title=str(r.get("title") or r.get("primary_title") or r.get("translated_title") or ""),
        authors=[_ris_person(a) for a in [*r.get("authors", []), *r.get("first_authors", [])]],
        id_fields=notes,
        doi_fields=[r.get("doi"), r.get("type_of_work")],  # M3: older EndNote's DOI
        urls=list(r.get("urls", [])),
        abstract=str(r.get("abstract") or r.get("notes_abstract") or ""),
        year=r.get("year") or r.get("publication_year") or r.get("date"),
    )


_NOTE_START = re.compile(r"^\s*(?:<[^<>]*>\s*)*(?:arxiv\s*:?\s*)?([^\s,;<]+)", re.I)


def _starts_with_arxiv_id(note: object) -> bool:
    """Whether a note starts with an arXiv id ("arXiv:2608.17253 [cs]", "arXiv: 1706.03762",
    "<p>1706.03762v2</p>"), as an id field does, not merely cites one."""
    m = _NOTE_START.match(note) if isinstance(note, str) else None
    return m is not None and bare_arxiv_id(m.group(1)) is not None


def _ris_person(name: str) -> str:
    """RIS's "Last, First, Suffix" (its suffix last, where BibTeX has it in the middle) →
    "First Last Suffix"."""
    parts = [p.strip() for p in name.split(",")]
    if len(parts) == 3 and parts[1] and parts[2]:
        return f"{parts[1]} {parts[0]} {parts[2]}"
    return _person(name)


# ---- CSL JSON -----------------------------------------------------------------------------------


def read_csl_json(text: str, name: str = "") -> Library:
    """The items of a CSL JSON file (a list of items, or ``{"items": [...]}``)."""
    try:
        data = json.loads(text)
    except RecursionError:  # [[[[…: a bug page before
        raise LibraryError(
            f"{name}: its JSON is nested too deeply to be a CSL JSON export; {WHAT_TO_DO}"
        ) from None
    except json.JSONDecodeError as e:
        raise LibraryError(
            f"{name}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {WHAT_TO_DO}"
        ) from None
    items = data.get("items") if isinstance(data, dict) else data
    if isinstance(data, dict) and items is None and ("title" in data or "DOI" in data):
        items = [data]  # one item on its own
    if not isinstance(items, list):
        raise LibraryError(f"{name}: JSON, but not a list of CSL items; {WHAT_TO_DO}")
    library = Library("csl-json")
    for n, item in enumerate(items, 1):
        label = item.get("id") if isinstance(item, dict) else None
        where = f"item {n}" + (f" ({label})" if isinstance(label, str | int) else "")
        if not isinstance(item, dict):
            library.problems.append(Problem(where, "not a JSON object"))
            continue
        library_entry = csl_entry(where, item)
        if isinstance(library_entry, Problem):
            library.problems.append(library_entry)
        else:
            library.entries.append(library_entry)
    return library


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# a CSL name's parts in reading order ("Johannes Diderik" "van der" "Waals", "Jr.")
_CSL_NAME = ("given", "dropping-particle", "non-dropping-particle", "family", "suffix")


def csl_entry(where: str, item: Mapping[str, Any]) -> Entry | Problem:
    """One CSL item: ``title``, ``author`` (``family``/``given`` or ``literal``), ``DOI``,
    ``URL``, ``abstract``, ``issued``, and the arXiv id in ``number``, ``archive_location``,
    ``note``, ``container-title`` or the URL."""
    authors = []
    for a in item.get("author") or []:
        if isinstance(a, dict):
            literal = _text(a.get("literal"))
            full = " ".join(x for x in (_text(a.get(p)).strip() for p in _CSL_NAME) if x)
            authors.append(literal or full)
    issued = item.get("issued")
    year: object = None
    if isinstance(issued, dict):
        parts = issued.get("date-parts")
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
            year = parts[0][0]
            year = int(year) if isinstance(year, str) and year.isdigit() else year
        else:
            year = issued.get("raw") or issued.get("literal")
    ids = [item.get(k) for k in ("number", "archive_location", "note", "container-title")]
    return make_entry(
        where,
        title=_text(item.get("title")),
        authors=authors,
        id_fields=ids,
        doi_fields=[item.get("DOI"), item.get("doi")],
        urls=[item.get("URL")],
        abstract=_text(item.get("abstract")),
        year=year,
    )


# ---- CSV ----------------------------------------------------------------------------------------

# column names (compared without case) → what they hold, as Zotero ("Author", "Publication
# Year", "Abstract Note", "Extra"), Google Scholar ("Authors", "Publication", "Year") and
# Paperpile ("Authors", "Journal", "arXiv ID", "URLs") name them
_CSV_TITLE = ("title",)
_CSV_AUTHORS = ("author", "authors", "creators")
_CSV_YEAR = ("publication year", "year", "date", "issued")
_CSV_DOI = ("doi",)
_CSV_URL = ("url", "urls", "link", "links")
_CSV_ABSTRACT = ("abstract note", "abstract")
# where an arXiv id is the paper's own: not the abstract or the notes, which cite others
_CSV_IDS = (
    "arxiv id",
    "arxiv",
    "eprint",
    "archive id",
    "archive location",
    "extra",
    "number",
    "publication title",
    "publication",
    "journal",
)
_CSV_LABEL = ("key", "citation key", "citationkey", "id", "item id")
_CSV_DELIMITERS = ",;\t"


def _csv_header(text: str) -> tuple[str, list[str]] | None:
    """(delimiter, column names) of a CSV library's first line, None when it is no header
    naming a title column and at least one other."""
    import csv

    first = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    for delimiter in _CSV_DELIMITERS:
        if delimiter not in first:
            continue
        names = [n.strip().casefold() for n in next(csv.reader([first], delimiter=delimiter))]
        if "title" in names and len(names) >= 2:
            return delimiter, names
    return None


def read_csv(text: str, name: str = "") -> Library:
    """The rows of a CSV library, one entry each, by the column names of its header row; a
    row is named by its number as a spreadsheet shows it (the header is row 1) and its key."""
    import csv
    import io

    library = Library("csv")
    header = _csv_header(text)
    if header is None:
        raise LibraryError(
            f"{name}: its first line names no Title column, as a CSV library's header does; "
            f"{WHAT_TO_DO}"
        )
    delimiter, names = header
    reader = csv.reader(io.StringIO(text.lstrip("\r\n"), newline=""), delimiter=delimiter)
    next(reader)
    for n, cells in enumerate(reader, 2):
        if not any(c.strip() for c in cells):
            continue
        row: dict[str, str] = {}
        for column, cell in zip(names, cells, strict=False):
            row.setdefault(column, cell.strip())

        def first(columns: Sequence[str], row: dict[str, str] = row) -> str:
            return next((row[c] for c in columns if row.get(c)), "")

        label = first(_CSV_LABEL)
        where = f"row {n}" + (f" ({label})" if label else "")
        urls = [u for u in re.split(r"[\s;]+", first(_CSV_URL)) if u]
        library_entry = make_entry(
            where,
            title=first(_CSV_TITLE),
            authors=_csv_names(first(_CSV_AUTHORS)),
            id_fields=[row.get(c) for c in _CSV_IDS],
            doi_fields=[first(_CSV_DOI)],
            urls=urls,
            abstract=first(_CSV_ABSTRACT),
            year=first(_CSV_YEAR),
        )
        if isinstance(library_entry, Problem):
            library.problems.append(library_entry)
        else:
            library.entries.append(library_entry)
    return library


def _csv_names(value: str) -> list[str]:
    """The people of a CSV cell: "Last, First; Last, First" (Zotero) or "A Vaswani, N Shazeer"
    (Google Scholar: names with a space between commas)."""
    if ";" in value:
        return [_person(n) for n in value.split(";") if n.strip()]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) > 1 and all(" " in p for p in parts):
        return parts
    return [_person(value)] if value.strip() else []
