"""Helpers for the ingest tests: a hostile feed, and which texts feedparser repairs."""

from __future__ import annotations


def billion_laughs(size: int, *, one_line: bool = True) -> bytes:
    """A feed whose one entity is referenced over and over: ~80× amplification per reference,
    under expat's limit, so without a guard a 0.5 MB feed expands to ~40 MB of text (and
    feedparser needs ~1 GB and several seconds to digest it; 2 MB took 24 s and 3.5 GB)."""
    sep = "" if one_line else "\n"
    head = (
        f'<?xml version="1.0"?>{sep}<!DOCTYPE rss [{sep}<!ENTITY a "{"lol " * 60}">{sep}]>{sep}'
        '<rss version="2.0"><channel><title>t</title><item><title>x</title>'
        "<link>https://x.test/1</link><description>"
    )
    tail = "</description></item></channel></rss>"
    return (head + "&a;" * ((size - len(head) - len(tail)) // 3) + tail).encode()


def repaired_as_mojibake(text: str) -> bool:
    """Whether feedparser takes `text` for UTF-8 encoded twice and repairs it (its mixin.py:
    text of Latin-1 characters only whose bytes are valid UTF-8, "Ã©" → "é"). Such a string
    does not come back as it went in; test_parse.py's
    `test_feedparser_repairs_utf8_encoded_twice` pins it."""
    try:
        return text.encode("iso-8859-1").decode("utf-8") != text
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False
