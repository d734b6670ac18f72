"""Feed text: plain text stays text, HTML becomes text without losing words, LaTeX and entities
survive, every field is capped. Through `parse_feed` with the issue's own examples, and as
properties of the two readers."""

from __future__ import annotations

import html
import json

from hypothesis import given
from hypothesis import strategies as st

from daemon.ingest.parse import parse_feed
from daemon.ingest.text import (
    ABSTRACT_MAX,
    AUTHORS_MAX,
    NAME_MAX,
    TITLE_MAX,
    cap,
    html_text,
    plain_text,
)

URL = "https://feeds.test/feed"


def _hf(title: str, summary: str = "", authors: tuple[str, ...] = ("A. Author",)) -> bytes:
    paper = {
        "id": "2503.01785",
        "title": title,
        "summary": summary,
        "authors": [{"name": n} for n in authors],
        "upvotes": 3,
        "publishedAt": "2025-03-03T18:16:32.000Z",
    }
    return json.dumps([{"paper": paper, "title": title}]).encode()


def _api_entry(title_xml: str, summary_xml: str = "An abstract.") -> bytes:
    """An arXiv API (Atom) response with one entry; `title_xml` is XML text (escaped)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>arXiv Query</title><entry><id>http://arxiv.org/abs/2501.00001v1</id>"
        "<published>2025-01-01T00:00:00Z</published>"
        f"<title>{title_xml}</title><summary>{summary_xml}</summary>"
        "<author><name>A. Author</name></author></entry></feed>"
    ).encode()


# --- plain text stays text ---------------------------------------------------------------------


def test_llm_tokens_and_inequalities_in_plain_text_survive() -> None:
    (paper,) = parse_feed(
        _hf("Thinking in <think> tags until <eos>", "if a<b and c>d then <s> is a token"),
        url=URL,
    ).papers
    assert paper.title == "Thinking in <think> tags until <eos>"
    assert paper.abstract == "if a<b and c>d then <s> is a token"  # was "if ad then"


def test_an_api_title_mentioning_script_is_not_cut() -> None:
    (paper,) = parse_feed(
        _api_entry(
            "Detecting &lt;script&gt; injection in &lt;style&gt; sheets",
            "We find &lt;script&gt; and &lt;/style&gt; in $x&lt;y$ &amp; more.",
        ),
        url=URL,
    ).papers
    assert paper.title == "Detecting <script> injection in <style> sheets"  # was "Detecting"
    assert paper.abstract == "We find <script> and </style> in $x<y$ & more."


def test_rss_title_that_mentions_tags_stays_text() -> None:
    content = (
        b'<rss version="2.0"><channel><title>t</title><item><link>https://x.test/1</link>'
        b"<title>Why &lt;script&gt; tags and a&lt;b and c&gt;d break parsers</title>"
        b"</item></channel></rss>"
    )
    (paper,) = parse_feed(content, url=URL).papers
    assert paper.title == "Why <script> tags and a<b and c>d break parsers"


def test_arxiv_rss2_abstract_is_plain_text() -> None:
    content = (
        b'<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom"><channel><title>t</title>'
        b"<item><title>T</title><link>https://arxiv.org/abs/2501.00002</link>"
        b"<description>arXiv:2501.00002v1 Announce Type: new \nAbstract: if a&lt;b and c&gt;d "
        b"then &lt;eos&gt;; $\\alpha &lt; \\beta$</description>"
        b"<arxiv:announce_type>new</arxiv:announce_type></item></channel></rss>"
    )
    (paper,) = parse_feed(content, url=URL).papers
    assert paper.abstract == "if a<b and c>d then <eos>; $\\alpha < \\beta$"


def test_control_characters_nul_and_lone_surrogates_are_removed() -> None:
    (paper,) = parse_feed(_hf("A\x00B\x07C\ud800D\u0085E\tF", "x\r\ny"), url=URL).papers
    assert paper.title == "A B C D E F"
    assert paper.abstract == "x y"


# --- HTML becomes text ---------------------------------------------------------------------------


def test_html_keeps_the_words_around_tags() -> None:
    assert html_text("<p>one</p><p>two</p><br>three<li>four", 100) == "one two three four"
    assert html_text("H<sub>2</sub>O and <b>bold</b>ly", 100) == "H2O and boldly"
    assert html_text('<p onclick="x()">Our <a href="javascript:y">paper</a>.</p>', 100) == (
        "Our paper."
    )


def test_html_drops_script_and_style_content_but_not_what_follows_an_unclosed_one() -> None:
    assert html_text("a<script>alert(1)</script>b<style>p{}</style>c", 100) == "abc"
    assert html_text("Detecting <script> injection and <style> abuse", 100) == (
        "Detecting <script> injection and <style> abuse"
    )


def test_html_keeps_lone_less_than_signs_unknown_tags_and_latex() -> None:
    assert html_text("if a<b and c>d then", 100) == "if a<b and c>d then"
    assert html_text("tokens <think> and <eos>", 100) == "tokens <think> and <eos>"
    assert html_text("$y(u)<y(v)$ and $\\alpha<\\beta$", 100) == "$y(u)<y(v)$ and $\\alpha<\\beta$"


def test_html_entities_are_decoded_once() -> None:
    assert html_text("&eacute;t&eacute; &amp; &#x3B1; AT&T", 100) == "été & α AT&T"
    assert html_text("&amp;lt;b&amp;gt; stays text", 100) == "&lt;b&gt; stays text"
    assert html_text("&lt;script&gt;alert(1)&lt;/script&gt;", 100) == "<script>alert(1)</script>"


# --- caps ----------------------------------------------------------------------------------------


def test_every_field_is_capped() -> None:
    huge = "word " * 50_000
    (paper,) = parse_feed(
        _hf(huge, huge, authors=tuple(f"Author {i} {huge[:2000]}" for i in range(6_000))),
        url=URL,
    ).papers
    assert len(paper.title) <= TITLE_MAX and paper.title.endswith("…")
    assert len(paper.abstract) <= ABSTRACT_MAX and paper.abstract.endswith("…")
    assert len(paper.authors) == AUTHORS_MAX
    assert all(len(a) <= NAME_MAX for a in paper.authors)


def test_cap_cuts_at_a_word_boundary() -> None:
    assert cap("short", 10) == "short"
    assert cap("alpha beta gamma delta", 12) == "alpha beta…"
    assert cap("x" * 50, 10) == "x" * 9 + "…"


# --- properties --------------------------------------------------------------------------------

ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=400)


@given(ANY_TEXT)
def test_text_escaped_once_and_read_as_html_is_the_text(text: str) -> None:
    """HTML reading loses nothing: the HTML that shows `text` gives `text` back."""
    assert html_text(html.escape(text), 10_000) == plain_text(text, 10_000)


@given(ANY_TEXT)
def test_plain_text_keeps_every_word_and_is_idempotent(text: str) -> None:
    stored = plain_text(text, 10_000)
    assert plain_text(stored, 10_000) == stored
    cleaned = "".join(
        " " if (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF) else c
        for c in text.replace("\ufffe", " ").replace("\uffff", " ")
    )
    assert stored == " ".join(cleaned.split())


@given(ANY_TEXT, st.integers(min_value=2, max_value=500))
def test_cap_never_exceeds_its_limit(text: str, limit: int) -> None:
    assert len(cap(text, limit)) <= limit
    assert len(plain_text(text, limit)) <= limit
    assert len(html_text(text, limit)) <= limit


def test_mathml_in_a_feed_becomes_its_text() -> None:
    # journal feeds (APS, Elsevier) write formulas in MathML: its tags were shown as text
    # ("&lt;msup&gt;…" in the digest), and a TeX annotation would repeat the formula
    assert html_text("Bounds on <math><msup><mi>x</mi><mn>2</mn></msup></math> growth", 200) == (
        "Bounds on x2 growth"
    )
    semantics = (
        '<math display="inline"><semantics><mrow><mi>a</mi><mo>+</mo><mi>b</mi></mrow>'
        '<annotation encoding="application/x-tex">a+b</annotation></semantics></math> rules'
    )
    assert html_text(semantics, 200) == "a+b rules"
    assert html_text("<math><mi>x</mi><script>alert(1)</script></math>", 200) == "x"
    # with the namespace prefix JATS and Crossref write
    jats = "<mml:math><mml:msub><mml:mi>E</mml:mi><mml:mn>0</mml:mn></mml:msub></mml:math> levels"
    assert html_text(jats, 200) == "E0 levels"


def test_a_feed_cut_short_says_so() -> None:
    # it was recorded as a healthy fetch, its fault in no report (imports/feeds QA)
    from daemon.ingest.parse import BROKEN_XML

    cut = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>One paper</title><link>https://x.example/1</link></item><item><title>Tw"
    )
    parsed = parse_feed(cut, url="https://x.example/rss")
    assert [p.title for p in parsed.papers] == ["One paper"]
    assert any(s.startswith(BROKEN_XML) for s in parsed.skipped)
    whole = cut.rsplit(b"<item><title>Tw", 1)[0] + b"</channel></rss>"
    assert not any(s.startswith(BROKEN_XML) for s in parse_feed(whole, url="x").skipped)
