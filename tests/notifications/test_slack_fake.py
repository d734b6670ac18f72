"""Digests posted to a fake of Slack: a real HTTP server on loopback that refuses a payload as
Slack does (400 ``invalid_blocks``) when it breaks a Block Kit limit or its mrkdwn, and keeps
what it accepted. Feed text full of mrkdwn (``*``, ``_``, ``~``, backticks, ``| < > &``) and
digests too big for one message must still arrive, each title a whole bold link."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from notifications.render import render_slack
from tests.notifications.factories import (
    SECRET_PATH,
    FakeClock,
    make_digest,
    make_pick,
    slack_transport,
)

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks)
MAX_BLOCKS, MAX_SECTION, MAX_HEADER, MAX_CONTEXT_ELEMENTS, MAX_URL = 50, 3000, 150, 10, 3000
LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>")


def slack_refuses(payload: dict[str, Any]) -> str | None:
    """Why Slack would refuse `payload` (None: accepted): a limit broken, or mrkdwn whose
    links are not whole (a ``<`` or ``>`` outside one, a ``|`` in a label)."""
    blocks = payload.get("blocks", [])
    if not payload.get("text") or not 1 <= len(blocks) <= MAX_BLOCKS:
        return f"{len(blocks)} blocks"
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        if block["type"] == "header" and not 1 <= len(text) <= MAX_HEADER:
            return f"header of {len(text)}"
        elements = [e["text"] for e in block.get("elements", [])]
        if block["type"] == "context" and not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
            return f"{len(elements)} context elements"
        for mrkdwn in [text] if block["type"] == "section" else elements:
            if len(mrkdwn) > MAX_SECTION:
                return f"text of {len(mrkdwn)}"
            links = LINK.findall(mrkdwn)
            if any(len(url) > MAX_URL or "|" in label for url, label in links):
                return "a link too long or cut"
            if "<" in LINK.sub("", mrkdwn) or ">" in LINK.sub("", mrkdwn):
                return "a link not closed"
    return None


@dataclass
class FakeSlack:
    url: str = ""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    """A fake of Slack's incoming webhooks on 127.0.0.1 (a free port)."""
    slack = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            problem = slack_refuses(payload)
            if problem is None:
                slack.accepted.append(payload)
            else:
                slack.refused.append(problem)
            body = b"ok" if problem is None else b"invalid_blocks"
            self.send_response(200 if problem is None else 400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    slack.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield slack
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


# what feed text may hold that mrkdwn reads as markup
MARKUP = "A* search for `x_i` | P(a|b) <b>&amp; ~2x faster and ~30% smaller, *not* _slow_"


def feed_markup(text: str) -> list[str]:
    """The mrkdwn formatting left in a section once ours is taken out (the bold title link,
    the bold cue): a ``*``, ``~`` or backtick anywhere, an ``_`` not within a word."""
    ours = re.sub(r"^\*<[^<>|]*\|[^<>]*>\*$|\*Strong match\*", "", text, flags=re.M)
    return re.findall(r"[*~`]|(?<![^\W_])_|_(?![^\W_])", ours)


def test_feed_text_full_of_mrkdwn_reaches_slack_as_text(http: httpx.Client) -> None:
    reason = f"close to your like “{MARKUP}”"
    pick = make_pick(1, title=MARKUP, authors=("O*Neil", "_Ann_"), abstract=MARKUP, reason=reason)
    with fake_slack() as slack, slack_transport(http, FakeClock()) as transport:
        transport.send(render_slack(make_digest((pick,)), webhook_url=slack.url))
    assert slack.refused == []
    (section,) = [b["text"]["text"] for b in slack.accepted[0]["blocks"] if b["type"] == "section"]
    title = section.splitlines()[0]
    assert title == (
        "*<https://arxiv.org/abs/2611.00001|A∗ search for ˋx_iˋ ∣ P(a∣b) &lt;b&gt;&amp;amp; "
        "∼2x faster and ∼30% smaller, ∗not∗ ˍslowˍ>*"
    )
    assert feed_markup(section) == []
    assert "O∗Neil, ˍAnnˍ" in section


def test_a_digest_of_many_long_picks_is_accepted_whole(http: httpx.Client) -> None:
    picks = tuple(
        make_pick(i, title="T" * 400, abstract="&<> " * 400, authors=("Ö" * 200,) * 5)
        for i in range(1, 121)
    )
    with fake_slack() as slack, slack_transport(http, FakeClock()) as transport:
        out = render_slack(make_digest(picks), webhook_url=slack.url)
        transport.send(out)
    assert slack.refused == [] and len(slack.accepted) == len(out.payloads) > 1
    links = "".join(json.dumps(p) for p in slack.accepted)
    assert all(links.count(f"abs/2611.{i:05d}|") == 1 for i in range(1, 121))


@pytest.mark.parametrize("shift", range(0, 40, 3))
def test_a_pick_too_long_for_one_section_is_cut_between_entities_and_links(
    http: httpx.Client, shift: int
) -> None:
    # very long URLs leave no room for the abstract: the section was then cut at 3,000
    # characters wherever that fell, within an entity ("&am…") or a link ("<https://doi…")
    pick = make_pick(
        1,
        url="https://example.org/p?" + "a" * 950,
        title="T&" * 200,
        authors=("&" * 100,) * 3,
        doi="10.1000/" + "x" * (900 + shift),
        reason="<&>" * 200,
        abstract="a " * 500,
    )
    with fake_slack() as slack, slack_transport(http, FakeClock()) as transport:
        transport.send(render_slack(make_digest((pick,)), webhook_url=slack.url))
    assert slack.refused == []
    (section,) = [b["text"]["text"] for b in slack.accepted[0]["blocks"] if b["type"] == "section"]
    assert len(section) <= MAX_SECTION
    assert re.search(r"&[a-z]*…", section) is None, section[-40:]
    assert "<" not in LINK.sub("", section) and section.startswith("*<https://example.org/p?")
