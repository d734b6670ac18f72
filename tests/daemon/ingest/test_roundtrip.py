"""For any text, a plain-text field round-trips parse → store → email (text and HTML), Slack and
the feedback page: intact, and escaped wherever it is markup. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

import markupsafe
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.db.rows import PaperRow
from daemon.ingest.parse import ParsedFeed, parse_feed
from daemon.ingest.text import NAME_MAX, TITLE_MAX, is_name, plain_text
from daemon.web.pages import make_web
from notifications.digest import Digest, Pick
from notifications.render import readable, render_email, render_slack, shorten_abstract, wrap
from notifications.transports.base import message_bytes
from tests.daemon.conftest import BOTH_BACKENDS, NOW
from tests.daemon.ingest.helpers import repaired_as_mojibake
from tests.notifications.factories import html_of

pytestmark = BOTH_BACKENDS

# Any character at all (controls, NUL, lone surrogates, quotes, RTL marks, emoji), mixed with
# the pieces that feed text is full of and that markup readers mistake for markup.
PIECES = st.sampled_from([
    "<think>", "</think>", "<eos>", "<s>", "<script>", "</script>", "<style>", "<b>", "</p>",
    "<!--", "-->", "<![CDATA[", "]]>", "a<b", "c>d", "&", "&amp;", "&lt;", "&#60;", "&nbsp;",
    "$\\alpha<\\beta$", "\\&", "|", "*", "`", "<https://x.test|y>", "<@U123>", "\"", "'",
])  # fmt: skip
ANY_TEXT = st.lists(
    st.one_of(PIECES, st.text(alphabet=st.characters(exclude_categories=()), max_size=12)),
    min_size=1,
    max_size=10,
).map("".join)
# XML 1.0 has no C0 controls or surrogates; C1 controls it allows, but feedparser reads them as
# the windows-1252 characters they almost always are ("\x80" → "€"), so they are not sent.
_XML_ILLEGAL = {*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)}
_XML_ILLEGAL |= {0xFFFE, 0xFFFF}


def _xml_legal(text: str) -> str:
    """What an XML document can carry of `text`."""
    return "".join(c for c in text if ord(c) not in _XML_ILLEGAL and not 0xD800 <= ord(c) < 0xE000)


def _hf_feed(arxiv_id: str, title: str, abstract: str, author: str) -> ParsedFeed:
    paper = {"id": arxiv_id, "title": title, "summary": abstract, "authors": [{"name": author}]}
    return parse_feed(json.dumps([{"paper": paper}]).encode(), url="https://hf.test/daily")


def _api_feed(arxiv_id: str, title: str, abstract: str, author: str) -> ParsedFeed:
    """An arXiv API (Atom) response: title, summary and name are Atom text constructs."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>q</title><entry><id>http://arxiv.org/abs/{arxiv_id}v1</id>"
        f"<title>{xml_escape(title)}</title><summary>{xml_escape(abstract)}</summary>"
        f"<author><name>{xml_escape(author)}</name></author></entry></feed>"
    )
    return parse_feed(xml.encode(), url="https://export.arxiv.test/api")


def _digest(row: PaperRow, app: App, user_id: int) -> Digest:
    pick = Pick(
        paper_key=row.key,
        title=row.title,
        url=row.url,
        authors=row.authors,
        abstract=row.abstract,
        score=0.5,
        reason="because",
        like_url=app.links.feedback_url("like", user_id, row.id),
        dislike_url=app.links.feedback_url("dislike", user_id, row.id),
    )
    return Digest(
        digest_id=1,
        period=date(2026, 11, 27),
        recipient_name="Ada",
        picks=(pick,),
        unsubscribe_url=app.links.unsubscribe_url(user_id),
        one_click_unsubscribe_url=app.links.unsubscribe_url(user_id),
    )


def _slack_label(text: str) -> str:
    """A link label in mrkdwn: ``& < >`` escaped, a ``|`` (which would end it) and the
    formatting characters (``*`` ``~`` backtick, ``_`` but within a word) as look-alikes."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark, alike in zip("|*~`", "∣∗∼ˋ", strict=True):
        text = text.replace(mark, alike)
    return re.sub(r"(?<![^\W_])_|_(?![^\W_])", "ˍ", text)


def test_any_plain_text_round_trips_to_every_output_escaped_and_intact(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    user = app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@example.org"})
    assert user.id is not None
    user_id = user.id
    numbers = itertools.count(1)
    client = TestClient(make_web(app))

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ANY_TEXT, ANY_TEXT, ANY_TEXT, st.sampled_from(["hf", "arxiv-api"]))
    @example("$", "<think>", "<think>", "hf")  # found by CI: a lone "$" reads as nothing
    def round_trip(title: str, abstract: str, author: str, source: str) -> None:
        arxiv_id = f"2501.{next(numbers):05d}"
        if source == "arxiv-api":
            title, abstract, author = _xml_legal(title), _xml_legal(abstract), _xml_legal(author)
            assume(not any(map(repaired_as_mojibake, (title, abstract, author))))
            feed = _api_feed(arxiv_id, title, abstract, author)
        else:
            feed = _hf_feed(arxiv_id, title, abstract, author)
        expected = plain_text(title, TITLE_MAX)
        assume(expected)  # a title of nothing but spaces is skipped, rightly
        # parse: the text as it is, only spaces collapsed and controls removed
        (paper,) = feed.papers
        assert paper.title == expected
        name = plain_text(author, NAME_MAX)
        assert paper.authors == ((name,) if is_name(name) else ())  # "et al." is nobody
        # store
        app.store.papers.upsert([paper], None, NOW)
        row = app.store.papers.find(arxiv_id)
        assert (row.title, row.abstract, row.authors) == (
            paper.title,
            paper.abstract,
            paper.authors,
        )
        digest = _digest(row, app, user_id)
        # email: the text part holds the text itself, the HTML part its escaped form
        rendered = render_email(
            digest, sender="pw@example.org", recipient="ada@example.org", message_id_domain="x"
        )
        message = message_from_bytes(message_bytes(rendered.message), policy=policy.default)
        assert isinstance(message, EmailMessage)  # as a mail client reads the bytes sent
        text_part = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        assert text_part is not None and html_part is not None
        text = text_part.get_content().replace("\r\n", "\n")  # lines end as a reader shows them
        html = html_of(html_part)
        # LaTeX as Unicode ("$\\alpha<\\beta$" → "α<β"); nothing readable left ("$"): untitled
        shown = readable(expected) or "(untitled)"
        assert f"1. {wrap(shown, 72, '   ')}\n" in text  # within 78 columns (RFC 5322)
        assert str(markupsafe.escape(shown)) in html
        short = shorten_abstract(readable(row.abstract))
        if short:
            assert str(markupsafe.escape(short)) in html
        for name in row.authors:
            assert str(markupsafe.escape(name)) in html
        # Slack: "&", "<", ">" escaped, nothing of the title can open a link or a mention
        (payload,) = render_slack(digest, webhook_url="https://hooks.slack.test/x").payloads
        section = payload["blocks"][1]["text"]["text"]
        label = _slack_label(shown)
        if len(label) < 299:
            assert f"|{label}>*" in section
        else:  # Slack's label limit: cut, never inside an entity
            assert f"|{label[:200]}" in section and "…>*" in section
        assert section.count("<") == 1 and section.count(">") == 1  # the title's link only
        # the feedback page
        page = client.get(urlsplit(app.links.feedback_url("like", user_id, row.id)).path)
        assert page.status_code == 200
        assert str(markupsafe.escape(shown)) in page.text  # titles shown as the digest does

    try:
        round_trip()
    finally:
        client.close()
