"""Feed text → the text we store: plain text stays text, HTML becomes text, every field capped.

Two kinds of field, decided by the source and never guessed from the words:

* **plain text** (Hugging Face JSON, Atom ``type="text"`` — the arXiv API —, RSS titles that
  feedparser does not take for HTML, arXiv RSS 2.0 abstracts): kept as it is. ``<think>``,
  ``a<b and c>d`` and ``Detecting <script> injection`` are words, escaped on output by every
  template, never stripped as markup. Only what no text can hold is removed (control
  characters, lone surrogates, NUL — PostgreSQL refuses it) and whitespace is collapsed.
* **HTML** (Atom ``type="html"``/``"xhtml"``, RSS descriptions, the old arXiv RSS 1.0 feed): read
  once as HTML, as a browser would show it (``&lt;b&gt;`` is the text ``<b>``, never a tag), tags
  dropped with a space where they separate words, ``<script>``/``<style>`` contents dropped. A
  ``<`` that does not start a real HTML tag (``$y(u)<y(v)$``, ``<think>``, ``a<b and c>d``) and a
  ``<script>`` that is never closed are text, so no words are lost after them.

LaTeX (``$\\alpha<\\beta$``, ``\\&``) and characters from entities (``&eacute;`` → é) survive both.
"""

from __future__ import annotations

import html
import re

import nh3

# Caps, in characters (hostile feeds can send megabytes in one field). Real values are far
# below: arXiv titles are < 300, abstracts <= 1,920, the largest collaborations ~3,000 authors.
TITLE_MAX = 1_000
ABSTRACT_MAX = 20_000
NAME_MAX = 300  # one author
AUTHORS_MAX = 5_000  # number of authors kept
CATEGORY_MAX = 64  # one category or tag
CATEGORIES_MAX = 50
URL_MAX = 2_000
DOI_MAX = 300
FEED_TITLE_MAX = 300
ELLIPSIS = "…"
RAW_FACTOR = 8  # a field's raw text (markup, runs of spaces) is read up to 8 × its cap

_WS = re.compile(r"\s+")
# What no stored text may hold: C0/C1 controls (whitespace among them becomes a space), lone
# surrogates (JSON "\ud800" decodes to one; it cannot be encoded as UTF-8) and U+FFFE/U+FFFF.
_UNTEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

# --- HTML -------------------------------------------------------------------------------------

# Element names of HTML (those ammonia knows, the dangerous ones, and the old presentational
# ones). A "<" followed by anything else is text.
_HTML_ELEMENTS = frozenset(nh3.ALLOWED_TAGS) | {
    "address", "applet", "audio", "base", "basefont", "big", "blink", "body", "button",
    "canvas", "dialog", "embed", "fieldset", "font", "form", "frame", "frameset", "head",
    "html", "iframe", "input", "label", "legend", "link", "main", "marquee", "math", "menu",
    "meta", "meter", "nobr", "noembed", "noframes", "noscript", "object", "optgroup", "option",
    "output", "param", "picture", "plaintext", "progress", "script", "section", "select",
    "slot", "source", "style", "svg", "template", "textarea", "tfoot", "title", "track",
    "video", "xmp",
}  # fmt: skip
# MathML (journal feeds: APS, Elsevier): its tags go before the sanitizer (which drops foreign
# elements with their text), its text stays: <msup><mi>x</mi><mn>2</mn></msup> → "x2"
_MATHML = frozenset({
    "maction", "math", "menclose", "merror", "mfenced", "mfrac", "mi", "mmultiscripts", "mn",
    "mo", "mover", "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace",
    "msqrt", "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder",
    "munderover", "none", "semantics",
})  # fmt: skip
_HTML_ELEMENTS |= _MATHML | {"annotation", "annotation-xml"}
# Attributes that are complete without a value; `<b and c>` has none of them, so it is text.
_BOOLEAN_ATTRIBUTES = frozenset({
    "allowfullscreen", "async", "autofocus", "autoplay", "checked", "compact", "controls",
    "default", "defer", "disabled", "formnovalidate", "hidden", "inert", "ismap", "itemscope",
    "loop", "multiple", "muted", "nohref", "noshade", "novalidate", "nowrap", "open",
    "playsinline", "readonly", "required", "reversed", "selected",
})  # fmt: skip
_TAG = re.compile(
    r"<(/?)((?:[A-Za-z][A-Za-z0-9-]*:)?[A-Za-z][A-Za-z0-9-]*)"  # name, maybe prefixed (mml:)
    r"((?:\s+[^\s\"'<>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)"  # attributes
    r"\s*/?>"
)
_ATTRIBUTE = re.compile(r"([^\s\"'<>/=]+)(\s*=)?")
_ATTRIBUTE_VALUE = re.compile(r"\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+)")
# Elements that never hold anything, or whose end tag may be left out (so they do not nest).
_FLAT = frozenset({
    "area", "base", "br", "col", "colgroup", "dd", "dt", "embed", "hr", "img", "input", "li",
    "link", "meta", "option", "optgroup", "p", "param", "rb", "rp", "rt", "rtc", "source",
    "tbody", "td", "tfoot", "th", "thead", "tr", "track", "wbr",
})  # fmt: skip
MAX_HTML_DEPTH = 500  # nh3 (html5ever) is quadratic in nesting: 20,000 levels take seconds


class NestingError(ValueError):
    """An HTML field nested deeper than `MAX_HTML_DEPTH`: no feed needs that."""


# Elements whose whole content is dropped; left unclosed, they would swallow the rest.
# (a MathML annotation repeats the formula in TeX or another markup: dropped with its content)
_DROPPED_CONTENT = ("script", "style", "annotation", "annotation-xml")
# Elements that separate words: a space where they start or end ("<p>a</p><p>b</p>" → "a b").
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hgroup", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})  # fmt: skip


def plain_text(value: object, limit: int) -> str:
    """A plain-text field as stored: its words as they are, whitespace collapsed, capped."""
    if not isinstance(value, str):
        return ""
    value = value[: limit * RAW_FACTOR]  # whatever lies further is cut anyway
    return cap(_WS.sub(" ", _UNTEXT.sub(" ", value)).strip(), limit)


def html_text(value: object, limit: int) -> str:
    """An HTML field → the text a browser would show (one level of markup), capped.

    Raises `NestingError` for elements nested deeper than `MAX_HTML_DEPTH`."""
    if not isinstance(value, str):
        return ""
    if "<" not in value and "&" not in value:
        return plain_text(value, limit)
    marked = _mark_tags(_UNTEXT.sub(" ", value[: limit * RAW_FACTOR]))
    text = html.unescape(nh3.clean(marked, tags=set(), clean_content_tags=set(_DROPPED_CONTENT)))
    return cap(_WS.sub(" ", _UNTEXT.sub(" ", text)).strip(), limit)


def looks_like_markup(value: str) -> bool:
    """True when `value` holds at least one real HTML tag (by the rules of `html_text`)."""
    return any(_is_tag(m) for m in _TAG.finditer(value))


def reads_as_html(value: str, limit: int) -> bool:
    """Whether a field of no declared kind (an RSS title) is HTML: feedparser's guess (a
    closing tag, and every tag one of HTML's), with a "<" that opens no tag counted as text,
    as `html_text` reads it. feedparser took "x<y" for a tag "<y", so "<i>p</i>-values for
    x<y" stayed text and showed its tags. A field without a closing tag of HTML ("<think> …
    </think>", "Detecting <script> injection") or with a "<" that looks like a tag and is
    none ("<think>", "a<b and c>") stays text."""
    tags = list(_TAG.finditer(value[: limit * RAW_FACTOR]))
    return any(m.group(1) and _is_tag(m) for m in tags) and all(_is_tag(m) for m in tags)


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, + "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS) + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= limit // 2 else cut[:-1]
    return cut.rstrip() + ELLIPSIS


def _name(m: re.Match[str]) -> str:
    """A tag's name in lower case, without its namespace prefix (JATS and Crossref write
    MathML as <mml:math>)."""
    return m.group(2).lower().rpartition(":")[2]


def _is_tag(m: re.Match[str]) -> bool:
    if _name(m) not in _HTML_ELEMENTS:
        return False
    attributes = m.group(3)
    if not attributes.strip():
        return True
    if m.group(1):  # a closing tag has no attributes
        return False
    pos = 0
    while (a := _ATTRIBUTE.search(attributes, pos)) is not None:
        pos = a.end()
        if a.group(2):
            value = _ATTRIBUTE_VALUE.match(attributes, a.start(2))
            pos = value.end() if value else pos
        elif a.group(1).lower() not in _BOOLEAN_ATTRIBUTES:
            return False
    return True


def _mark_tags(value: str) -> str:
    """Escape every "<" that does not open a real tag or comment; add a space at block tags."""
    out: list[str] = []
    pos = 0
    lower = value.lower()
    last_close = {name: lower.rfind(f"</{name}") for name in _DROPPED_CONTENT}
    depth = 0
    while (lt := value.find("<", pos)) != -1:
        out.append(value[pos:lt])
        m = _TAG.match(value, lt)
        if m is not None and _is_tag(m) and _closed(m, last_close):
            name = _name(m)
            if name not in _MATHML:
                out.append(f" {m.group(0)} " if name in _BLOCKS else m.group(0))
            pos = m.end()
            if name not in _FLAT and not m.group(0).endswith("/>"):
                depth = max(depth - 1, 0) if m.group(1) else depth + 1
                if depth > MAX_HTML_DEPTH:
                    raise NestingError(f"HTML nested more than {MAX_HTML_DEPTH} elements deep")
        elif value.startswith("<!--", lt) and (end := value.find("-->", lt + 4)) != -1:
            pos = end + 3  # a comment: dropped
        else:
            out.append("&lt;")
            pos = lt + 1
    out.append(value[pos:])
    return "".join(out)


def _closed(m: re.Match[str], last_close: dict[str, int]) -> bool:
    """A `<script>` or `<style>` counts as a tag only when it is closed later on."""
    name = _name(m)
    if m.group(1) or name not in _DROPPED_CONTENT or m.group(0).endswith("/>"):
        return True
    return last_close[name] >= m.end()


# --- names --------------------------------------------------------------------------------------

# arXiv's listing of a truncated author list: "et al. (909 additional authors not shown)"
_ET_AL = re.compile(
    r"^(?:and\s+)?et\.?\s*al\.?(?:\s*\(\s*\d+\s+additional\s+authors?\s+not\s+shown\s*\))?$",
    re.I,
)


def is_name(text: str) -> bool:
    """False for the pieces of an author list that are no person: "et al. (9 … not shown)"."""
    return bool(text) and not _ET_AL.match(text)
