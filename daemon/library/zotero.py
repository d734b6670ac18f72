"""A Zotero library through the Zotero web API (pyzotero) → entries.

`read_zotero` asks for every top-level item of a user's or group's library (or of one
collection), page by page; `zotero_entry` maps one item's ``data`` to an `Entry` (pure: the
tests feed it recorded items). Notes and attachments are no papers and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.library.read import Entry, Library, LibraryError, Problem, make_entry

SKIPPED_TYPES = frozenset({"attachment", "note", "annotation"})


@dataclass(frozen=True)
class ZoteroSource:
    """Which Zotero library: a user's (the numeric user id) or a group's, optionally one
    collection (its key, e.g. ``ABCD2345``); the API key (secret) when it is not public."""

    library_id: str
    api_key: str | None = None
    collection: str | None = None
    group: bool = False

    def __repr__(self) -> str:  # the key never shows in logs or tracebacks
        return (
            f"ZoteroSource(library_id={self.library_id!r}, collection={self.collection!r}, "
            f"group={self.group})"
        )


def read_zotero(source: ZoteroSource, *, endpoint: str) -> Library:
    """Every top-level item of the library (or collection) at the Zotero API `endpoint`."""
    from pyzotero import zotero

    kind = "group" if source.group else "user"
    name = f"Zotero {kind} library {source.library_id}" + (
        f", collection {source.collection}" if source.collection else ""
    )
    try:
        client = zotero.Zotero(source.library_id, kind, source.api_key)
        client.endpoint = endpoint.rstrip("/")
        first = (
            client.collection_items_top(source.collection, limit=100)
            if source.collection
            else client.top(limit=100)
        )
        items: list[Any] = client.everything(first)
    except Exception as e:  # pyzotero's errors (HTTP status, network) have no common base
        raise LibraryError(f"{name}: cannot be read ({_why(e)}); {_ZOTERO_HELP}") from None
    if not isinstance(items, list):
        raise LibraryError(
            f"{name}: the answer is not a list of items (is ingest.zotero_api_url the Zotero "
            "web API?)"
        )
    library = Library("zotero")
    for n, item in enumerate(items, 1):
        data = item.get("data") if isinstance(item, dict) else None
        key = item.get("key") if isinstance(item, dict) else None
        where = f"item {key}" if isinstance(key, str) else f"item {n}"
        if not isinstance(data, dict):
            library.problems.append(Problem(where, "no data"))
            continue
        if data.get("itemType") in SKIPPED_TYPES:
            continue
        entry = zotero_entry(where, data)
        if isinstance(entry, Problem):
            library.problems.append(entry)
        else:
            library.entries.append(entry)
    return library


_ZOTERO_HELP = (
    "check --zotero-library (the number in the library's web address, or on "
    "zotero.org/settings/keys: 'Your userID for use in API calls'), --zotero-group for a group "
    "library, and --zotero-key (a key that may read this library)"
)


def _why(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def zotero_entry(where: str, data: Mapping[str, Any]) -> Entry | Problem:
    """One item's ``data``: title, creators (authors; editors when there is no author),
    ``abstractNote``, ``DOI``, ``url``, ``date``, and the arXiv id in ``archiveID``
    (``arXiv:2401.01234``), ``extra``, ``publicationTitle`` or the URL."""
    creators = [c for c in data.get("creators") or [] if isinstance(c, dict)]
    authors = [c for c in creators if c.get("creatorType", "author") == "author"] or creators
    names = []
    for c in authors:
        name = c.get("name")
        if not isinstance(name, str) or not name:
            parts = (c.get("firstName"), c.get("lastName"))
            name = " ".join(p for p in parts if isinstance(p, str) and p)
        names.append(name)
    extra = _text(data.get("extra"))
    doi_lines = [line[4:] for line in extra.splitlines() if line.lower().startswith("doi:")]
    return make_entry(
        where,
        title=_text(data.get("title")),
        authors=names,
        id_fields=[
            data.get("archiveID"),
            data.get("number"),
            extra,
            data.get("publicationTitle"),
            data.get("reportNumber"),
        ],
        doi_fields=[data.get("DOI"), *doi_lines],
        urls=[data.get("url")],
        abstract=_text(data.get("abstractNote")),
        year=data.get("date"),
    )
