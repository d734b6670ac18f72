"""Feed bytes → UTF-8 XML that is safe to hand to an XML parser, or a `ParseError`.

Before any XML parser sees a byte:

1. **Encoding**: the document is decoded the way feedparser would (RFC 3023: HTTP charset, XML
   declaration, byte-order mark), except that a document that says nothing is tried as UTF-8 and
   then guessed by `chardet` rather than read as ISO-8859-1, so legacy encodings without a correct
   declaration (KOI8-R, EUC-JP, Big5, windows-1255 …) are not mojibake. The result is re-encoded
   as UTF-8 with a matching declaration: the checks below and the parser read the same text.
2. **No entity declarations**: ``<!ENTITY`` anywhere outside comments and CDATA sections is
   refused. A billion-laughs feed (entities that expand to gigabytes, on one line or many) is
   rejected in milliseconds instead of expanded; the predefined entities (``&amp;`` …) and
   character references need no declaration and still work.
3. **A feed, not a document that mentions one**: the root element must be ``rss``, ``feed``
   (Atom) or ``rdf:RDF`` (RSS 1.0), after nothing but an XML declaration, comments, processing
   instructions and a DOCTYPE. A web page or a manual that quotes an Atom example is refused.
4. **HTML's named entities** (``&eacute;``, ``&nbsp;``, which RSS 0.91's DTD declared) outside
   CDATA sections and comments become character references, and an ``&`` that starts no
   reference ("Q&A") becomes ``&amp;``, so they do not break the XML.
"""

from __future__ import annotations

import html
import html.entities
import re
from urllib.parse import urljoin

from feedparser.encodings import convert_to_utf8

from daemon.errors import ParseError
from daemon.ingest.text import URL_MAX

FEED_ROOTS = frozenset({"rss", "feed", "rdf"})  # local names, case-insensitive

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?\?>")
_PROLOG_ITEM = re.compile(
    rb"\s+|<\?.*?\?>|<!--.*?-->|<!doctype(?:[^\[>\"']|\"[^\"]*\"|'[^']*')*(?:\[.*?\]\s*)?>",
    re.S | re.I,
)
_ROOT = re.compile(rb"<((?:[A-Za-z_][-\w.]*:)?([A-Za-z_][-\w.]*))")
# HTTP media types that say "this is not XML" (feedparser reads them anyway).
_NOT_XML = ("text/html", "application/json", "text/plain", "application/pdf", "image/")
_UTF = ("utf-8", "utf-16", "utf-32", "utf_8", "utf8", "u8")


def safe_xml(content: bytes, url: str, content_type: str | None) -> bytes:
    """`content` as UTF-8 bytes with an XML declaration saying so, checked as described above."""
    data = _to_utf8(content, content_type)
    body = _DECLARATION.sub(b"", data, count=1)  # feedparser's ("utf-8")
    body = _DECLARATION.sub(b"", body, count=1).lstrip()  # the document's, after white space
    _check_root(body, url, content_type)
    problem = _check_markup(body)
    if problem == "entity":
        raise ParseError(
            f"{url or '<no url>'}: refused: the document declares XML entities "
            "(<!ENTITY …>), which no feed needs and which can expand to gigabytes "
            "(a 'billion laughs' attack); ask the publisher to remove the DTD"
        )
    if problem == "depth":
        raise ParseError(
            f"{url or '<no url>'}: refused: elements nested more than {MAX_DEPTH} deep, "
            "which no feed needs; check that the URL points to a feed"
        )
    return b"<?xml version='1.0' encoding='utf-8'?>\n" + _html_entities(body)


# &eacute; &nbsp; &mdash;: HTML's named entities, which RSS 0.91's DTD declared and hand-made
# feeds still write; XML knows five. The parser stopped at the first one and the rest was read
# by feedparser's loose parser, with "the feed's XML is broken" logged at every ingest.
_NAMED = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_NAMED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_LITERAL = re.compile(rb"<!\[CDATA\[|<!--")  # text taken as it is, to its _CLOSING
# "Q&A", "R&D", "?a=1&b=2" written unescaped: an "&" that starts no reference is one "&" (the
# parser stopped there too, and feedparser's loose parser made "Q&A" "Q&A;")
_BARE_AMPERSAND = re.compile(rb"&(?!#[0-9]+;|#[xX][0-9A-Fa-f]+;|[A-Za-z_][\w.-]*;)")


def _html_entities(body: bytes) -> bytes:
    """HTML's named entities outside CDATA sections and comments, as character references,
    and a bare "&" there as "&amp;". One pass: each section's end is looked for once (an
    unclosed one runs to the end)."""
    if b"&" not in body:
        return body

    def reference(m: re.Match[bytes]) -> bytes:
        if m.group(1) in _XML_NAMED:
            return m.group(0)
        code = html.entities.name2codepoint.get(m.group(1).decode("ascii"))
        return b"&#%d;" % code if code else m.group(0)

    def text(part: bytes) -> bytes:
        return _BARE_AMPERSAND.sub(b"&amp;", _NAMED.sub(reference, part))

    parts, pos = [], 0
    while (literal := _LITERAL.search(body, pos)) is not None:
        closing = _CLOSING[body[literal.start() : literal.start() + 4]]
        end = body.find(closing, literal.end())
        end = len(body) if end == -1 else end + len(closing)
        parts += [text(body[pos : literal.start()]), body[literal.start() : end]]
        pos = end
    parts.append(text(body[pos:]))
    return b"".join(parts)


MAX_DEPTH = 500  # element nesting (a feed is ~5 deep; inline XHTML adds a few dozen at most)
# A start or end tag, quotes respected (">" is allowed in XML attribute values).
_TAG = re.compile(rb"<(/?)[A-Za-z_][^\s/>]*(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")


_CLOSING = {b"<!--": b"-->", b"<![C": b"]]>"}  # comments and CDATA sections are skipped whole


def _check_markup(body: bytes) -> str | None:
    """One linear pass: "entity" for an entity declaration outside comments and CDATA
    sections, "depth" for elements nested deeper than `MAX_DEPTH`, else None."""
    depth = pos = 0
    while True:
        at = body.find(b"<!", pos)
        for m in _TAG.finditer(body, pos, len(body) if at == -1 else at):
            if m.group(1):
                depth = max(depth - 1, 0)
            elif not m.group(2):
                depth += 1
                if depth > MAX_DEPTH:
                    return "depth"
        if at == -1:
            return None
        if body[at + 2 : at + 8].lower() == b"entity":
            return "entity"
        closing = _CLOSING.get(body[at : at + 4])
        if closing is None:  # <!DOCTYPE …>, or a declaration inside its internal subset
            pos = at + 2
            continue
        end = body.find(closing, at + 4)
        if end == -1:  # an unclosed comment or section: nothing after it is markup
            return None
        pos = end + len(closing)


def _to_utf8(content: bytes, content_type: str | None) -> bytes:
    # feedparser's own detection, given no headers when the server sent no Content-Type: then
    # an undeclared document is tried as UTF-8 and guessed by chardet (ISO-8859-1 otherwise).
    headers = {"content-type": content_type} if content_type else {}
    result: dict[str, object] = {}
    data: bytes = convert_to_utf8(headers, content, result)
    encoding = str(result.get("encoding") or "").lower()
    if not encoding.startswith(_UTF) and _is_utf8_text(content):
        # Declared (or defaulted to) a legacy encoding but valid UTF-8 with non-ASCII
        # characters: UTF-8 mislabelled; read as declared it would be mojibake ("Ã©").
        utf8: bytes = convert_to_utf8(
            {"content-type": "application/xml; charset=utf-8"}, content, {}
        )
        return utf8
    if not encoding:  # no encoding decoded it: not text at all
        return content.decode("utf-8", "replace").encode("utf-8")
    return data


def _is_utf8_text(content: bytes) -> bool:
    if content.isascii():
        return False
    try:
        content.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_root(body: bytes, url: str, content_type: str | None) -> None:
    pos = 0
    while (m := _PROLOG_ITEM.match(body, pos)) is not None and m.end() > pos:
        pos = m.end()
    root = _ROOT.match(body, pos)
    if root is not None and root.group(2).decode("ascii", "replace").lower() in FEED_ROOTS:
        return
    if root is not None:
        what = f"its root element is <{root.group(1).decode('utf-8', 'replace')}>"
    elif pos >= len(body):
        what = "it is empty"
    elif url.startswith("file:"):  # a local file's first bytes are not the console's to show
        what = "it is not XML"
    else:
        start = body[pos : pos + 40].decode("utf-8", "replace")
        what = f"it is not XML (it starts with {start!r})"
    served = f" (served as {content_type})" if content_type else ""
    hint = (
        "the server says it is not XML: "
        if content_type and content_type.lower().startswith(_NOT_XML)
        else ""
    )
    feeds = feed_links(body, url)
    check = (
        f"the page names its feed {feeds[0]}: add that URL instead"
        if len(feeds) == 1
        else f"the page names its feeds {', '.join(feeds)}: add one of those instead"
        if feeds
        else "check that the URL points to a feed and not to a web page, a document or an "
        "error page"
    )
    raise ParseError(f"{url or '<no url>'}: not an RSS/Atom feed{served}: {what}; {hint}{check}")


# <link rel="alternate" type="application/rss+xml" href="…">: how a web page names its feeds
_LINK = re.compile(rb"<link\b[^<>]*>", re.I)  # [^<>]: linear, however many "<link" there are
_ATTRIBUTE = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_FEED_TYPES = (b"application/rss+xml", b"application/atom+xml", b"application/rdf+xml")
FEED_LINKS_MAX = 3
_HEAD_BYTES = 200_000  # the <head> of any page


def feed_links(page: bytes, url: str) -> list[str]:
    """The feeds an HTML page names with <link rel="alternate" type="application/rss+xml"
    href="…"> (or Atom, RDF), as absolute URLs, in order, at most `FEED_LINKS_MAX`."""
    found: list[str] = []
    for tag in _LINK.findall(page[:_HEAD_BYTES]):
        attrs = {
            m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or b""
            for m in _ATTRIBUTE.finditer(tag)
        }
        rel = attrs.get(b"rel", b"").lower().split()
        kind = attrs.get(b"type", b"").lower().split(b";")[0].strip()
        href = html.unescape(attrs.get(b"href", b"").decode("utf-8", "replace")).strip()
        if b"alternate" in rel and kind in _FEED_TYPES and href:
            link = urljoin(url, href) if url else href
            # longer than any link is kept (URL_MAX): it would fill the error, the log, the page
            long = len(link) > URL_MAX
            if link.startswith(("http://", "https://")) and not long and link not in found:
                found.append(link)
    return found[:FEED_LINKS_MAX]
