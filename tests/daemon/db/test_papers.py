"""One paper, one row: arXiv id, DOI and normalised title link the records of different sources;
a later source fills what an earlier one lacked and never overwrites better data with worse.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from daemon.app import App
from daemon.db.models import Paper
from daemon.ingest.parse import PaperIn, parse_feed
from tests.daemon.conftest import BOTH_BACKENDS, FEEDS, NOW

pytestmark = BOTH_BACKENDS

API_1111 = FEEDS / "arxiv-api" / "2016-10-09_api_id_list_1111.2011v2.xml"
RSS1_HEP = FEEDS / "arxiv-rss" / "rss1_hep-ex_collaboration_constructed.xml"
HF = FEEDS / "hf" / "daily_papers_2025-03-04.json"
RSS2 = FEEDS / "arxiv-rss" / "rss2_math.OC_constructed.xml"

# A journal's Atom feed (PRISM metadata, as APS and others publish): the journal version of
# arXiv:1111.2011, known by its DOI only, with a title typeset differently.
JOURNAL = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">
  <title>Phys. Rev. B: recently published</title>
  <entry>
    <id>tag:journals.example.org,2012:PhysRevB.85.115117</id>
    <link href="https://journals.example.org/prb/abstract/10.1103/PhysRevB.85.115117"/>
    <title>Quantum criticality for extended nodes on a Bethe lattice
      in the large connectivity limit</title>
    <prism:doi>10.1103/PhysRevB.85.115117</prism:doi>
    <published>2012-03-15T10:00:00Z</published>
    <author><name>James M. Murray</name></author>
    <category term="Condensed Matter"/>
  </entry>
</feed>
"""


def _papers(app: App) -> list[Paper]:
    with Session(app.store.engine) as s:
        return list(s.exec(select(Paper).order_by(Paper.id)).all())  # type: ignore[arg-type]


def _one(path: Path, key: str) -> PaperIn:
    return next(p for p in parse_feed(path.read_bytes(), url=str(path)).papers if p.key == key)


def _paper(key: str, title: str, **fields: object) -> PaperIn:
    values: dict[str, object] = {
        "key": key,
        "title": title,
        "abstract": "",
        "authors": (),
        "url": "https://example.org/" + key,
        "published": None,
    }
    return PaperIn(**(values | fields))  # type: ignore[arg-type]


# --- DOI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("journal_first", [True, False], ids=["journal first", "arxiv first"])
def test_a_doi_only_journal_item_and_the_arxiv_record_are_one_paper(
    app_factory: Callable[..., App], journal_first: bool
) -> None:
    app = app_factory()
    (journal,) = parse_feed(JOURNAL, url="https://journals.example.org/prb.atom").papers
    (arxiv,) = parse_feed(API_1111.read_bytes(), url="https://export.arxiv.org/api").papers
    assert journal.key == "doi:10.1103/physrevb.85.115117" and journal.arxiv_id is None
    first, second = (journal, arxiv) if journal_first else (arxiv, journal)
    assert app.store.papers.upsert([first], None, NOW) == (1, 0)
    assert app.store.papers.upsert([second], None, NOW) == (0, 1)
    (row,) = _papers(app)
    assert row.key == "arxiv:1111.2011"  # the most specific key it was seen with
    assert (row.arxiv_id, row.doi, row.version) == ("1111.2011", "10.1103/physrevb.85.115117", 2)
    assert row.url == "https://arxiv.org/abs/1111.2011"
    assert set(row.categories) == {"cond-mat.str-el", "cond-mat.stat-mech", "Condensed Matter"}
    assert row.abstract.startswith("Theoretical description of anisotropic systems")
    assert len(row.authors) == 3  # the arXiv list, longer than the journal item's one name
    assert app.store.papers.find("1111.2011").id == row.id
    assert app.store.papers.find("10.1103/PhysRevB.85.115117").id == row.id
    # as a person pastes it: the DOI's link (QA: "no stored paper matches")
    for ref in ("https://doi.org/10.1103/PhysRevB.85.115117", "doi:10.1103/physrevb.85.115117"):
        assert app.store.papers.find(ref).id == row.id, ref
    assert [
        p.id for p in app.store.papers.search("https://doi.org/10.1103/PhysRevB.85.115117")
    ] == [row.id]


def test_records_of_one_batch_are_linked_too(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    (journal,) = parse_feed(JOURNAL, url="https://journals.example.org/prb.atom").papers
    (arxiv,) = parse_feed(API_1111.read_bytes(), url="https://export.arxiv.org/api").papers
    assert app.store.papers.upsert([journal, arxiv], None, NOW) == (1, 1)
    assert [p.key for p in _papers(app)] == ["arxiv:1111.2011"]


def test_two_arxiv_ids_with_the_same_doi_stay_two_papers(app_factory: Callable[..., App]) -> None:
    app = app_factory()
    a = _paper("arxiv:2501.00001", "First paper of two", arxiv_id="2501.00001", doi="10.1/x")
    b = _paper("arxiv:2501.00002", "Second paper of two", arxiv_id="2501.00002", doi="10.1/x")
    assert app.store.papers.upsert([a], None, NOW) == (1, 0)
    assert app.store.papers.upsert([b], None, NOW) == (1, 0)
    assert len(_papers(app)) == 2


# --- normalised title ---------------------------------------------------------------------------

TITLE = "Attention Is All You Need: Transformers for Sequence Transduction"


def test_a_doi_less_item_with_the_same_title_and_an_author_joins_the_arxiv_paper(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    arxiv = _paper(
        "arxiv:1706.03762",
        TITLE,
        arxiv_id="1706.03762",
        authors=("Ashish Vaswani", "Noam Shazeer"),
        url="https://arxiv.org/abs/1706.03762",
    )
    blogged = _paper(
        "guid:https://proceedings.example.org/paper/7181",
        "attention is all you need — transformers for sequence transduction",
        authors=("A. Vaswani",),
        abstract="The dominant sequence transduction models…",
        published=datetime(2017, 12, 4, tzinfo=UTC),
    )
    app.store.papers.upsert([arxiv], None, NOW)
    assert app.store.papers.upsert([blogged], None, NOW) == (0, 1)
    (row,) = _papers(app)
    assert row.key == "arxiv:1706.03762"
    assert row.title == TITLE  # the first title stays
    assert row.abstract == "The dominant sequence transduction models…"  # filled
    assert row.published_at == datetime(2017, 12, 4, tzinfo=UTC)  # filled
    assert row.authors == ["Ashish Vaswani", "Noam Shazeer"]  # not replaced by a shorter list


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (_paper("guid:p/1", TITLE, authors=("Someone Else",)), "no shared author"),
        (_paper("doi:10.2/y", TITLE, doi="10.2/y", arxiv_id=None), "its DOI differs"),
        (_paper("arxiv:1801.00001", TITLE, arxiv_id="1801.00001"), "another arXiv id"),
    ],
)
def test_the_same_title_alone_does_not_link_different_papers(
    app_factory: Callable[..., App], other: PaperIn, why: str
) -> None:
    app = app_factory()
    first = _paper(
        "arxiv:1706.03762", TITLE, arxiv_id="1706.03762", doi="10.1/z", authors=("A. Vaswani",)
    )
    app.store.papers.upsert([first], None, NOW)
    assert app.store.papers.upsert([other], None, NOW) == (1, 0), why


def test_blog_posts_and_short_titles_are_never_linked_by_title(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    posts = [
        _paper("guid:blog/1", "Weekly reading group notes and papers"),
        _paper("guid:blog/2", "Weekly reading group notes and papers"),
        _paper("arxiv:2501.00010", "Editorial", arxiv_id="2501.00010"),
        _paper("guid:journal/ed", "Editorial"),
    ]
    assert app.store.papers.upsert(posts, None, NOW) == (4, 0)


# --- a later source fills in, never worse -------------------------------------------------------


def test_the_api_fills_what_the_rss1_listing_lacked(app_factory: Callable[..., App]) -> None:
    """The old RSS 1.0 listing names two of 900 authors; the API record has them all."""
    app = app_factory()
    listing = _one(RSS1_HEP, "arxiv:2107.03419")
    full = replace(
        listing,
        authors=("LHCb collaboration", *(f"Author {i}" for i in range(910))),
        categories=("hep-ex", "hep-ph"),
        published=datetime(2021, 7, 7, 17, 0, tzinfo=UTC),
        doi="10.1103/PhysRevLett.128.162001".lower(),
        abstract="",
    )
    app.store.papers.upsert([listing], None, NOW)
    app.store.papers.upsert([full], None, NOW)
    (row,) = _papers(app)
    assert len(row.authors) == 911
    assert row.categories == ["hep-ex", "hep-ph"]
    assert row.published_at == listing.published  # a date already known is kept
    assert row.doi == "10.1103/physrevlett.128.162001"
    assert row.abstract == listing.abstract  # an empty abstract never erases one


def test_hugging_face_fills_upvotes_and_arxiv_fills_categories(
    app_factory: Callable[..., App],
) -> None:
    app = app_factory()
    hf = _one(HF, "arxiv:2503.01785")
    rss = _one(RSS2, "arxiv:2503.01785")
    app.store.papers.upsert([hf], None, NOW)
    app.store.papers.upsert([rss], None, NOW)
    app.store.papers.upsert([replace(hf, upvotes=3, version=None)], None, NOW)  # an older count
    (row,) = _papers(app)
    assert row.upvotes == hf.upvotes == 24  # the larger count stays
    assert row.categories == list(rss.categories)
    assert row.version == rss.version


def test_a_paper_from_a_library_becomes_news_when_a_feed_brings_it(
    app_factory: Callable[..., App],
) -> None:
    # stored from a file's own fields (arXiv not asked: over an import's limit, or down) it is
    # no news; today's listing then brought it and it reached no digest (second read)
    from datetime import timedelta

    from daemon.db.models import ChannelKind

    app = app_factory()
    ada = app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
    from_file = PaperIn(
        key="arxiv:2611.00001",
        title="A paper of today's listing",
        abstract="",
        authors=("A. Author",),
        url="https://arxiv.org/abs/2611.00001",
        published=None,
        arxiv_id="2611.00001",
    )
    imported_at = NOW - timedelta(days=3)
    app.store.papers.like_library(ada.id, [], [from_file], imported_at)
    (row,) = _papers(app)
    assert not row.is_news and row.feed_id is None
    feed = app.store.feeds.add("arxiv", "https://rss.arxiv.org/rss/cs", NOW)
    listed = replace(from_file, abstract="Its abstract.", published=NOW)
    assert app.store.papers.upsert([listed], feed.id, NOW) == (0, 1)
    (row,) = _papers(app)
    assert (row.is_news, row.feed_id, row.abstract) == (True, feed.id, "Its abstract.")
    window = app.store.papers.window(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert [p.key for p in window] == ["arxiv:2611.00001"]
    # a second feed bringing it changes nothing: it is a feed's paper now
    other = app.store.feeds.add("hf", "https://huggingface.co/api/daily_papers", NOW)
    later = NOW + timedelta(days=1)
    app.store.papers.upsert([listed], other.id, later)
    (row,) = _papers(app)
    assert row.feed_id == feed.id and row.first_seen_at == NOW


def test_a_feed_replaces_the_text_a_library_file_gave_its_paper(
    app_factory: Callable[..., App],
) -> None:
    # a subscriber's upload names an arXiv id not stored yet (tomorrow's, or one over the
    # import's limit of arXiv requests) with a title and abstract of their own; when the
    # listing brings the paper it goes to every subscriber as news: with the listing's text,
    # not the file's ("URGENT: your account expires, log in at …")
    from datetime import timedelta

    from daemon.db.models import ChannelKind

    app = app_factory()
    eve = app.store.people.add("eve", NOW, channels={ChannelKind.EMAIL: "eve@lab.example"})
    planted = PaperIn(
        key="arxiv:2611.00002",
        title="URGENT: your lab account expires today, log in at https://evil.example",
        abstract="Reset your password at https://evil.example/login now.",
        authors=("IT Support",) * 40,
        url="https://arxiv.org/abs/2611.00002",
        published=datetime(2026, 1, 1, tzinfo=UTC),
        arxiv_id="2611.00002",
    )
    app.store.papers.like_library(eve.id, [], [planted], NOW - timedelta(days=1))
    feed = app.store.feeds.add("arxiv", "https://rss.arxiv.org/rss/cs", NOW)
    listed = replace(
        planted,
        title="Sparse attention for long documents",
        abstract="",
        authors=("A. Author", "B. Author"),
        published=NOW,
    )
    app.store.papers.upsert([listed], feed.id, NOW)
    (row,) = _papers(app)
    assert row.is_news and row.feed_id == feed.id
    assert row.title == "Sparse attention for long documents"
    assert row.abstract == ""
    assert row.authors == ["A. Author", "B. Author"]
    assert row.published_at == NOW
