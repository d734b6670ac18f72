"""A library imported as likes, on SQLite and PostgreSQL: entries matched by arXiv id, DOI and
title; unknown arXiv ids fetched from a local HTTP server answering with a recorded arXiv API
response (one request per 100 ids, the interval between them kept); offline, papers stored from
the file; twice, nothing changes; a failure while storing leaves nothing behind. Also `like`
with several ids, the paper search and a Zotero library from a local server (pyzotero).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from daemon.app import App
from daemon.db.models import Feedback, Paper
from daemon.errors import NotFoundError
from daemon.ingest.arxiv import fetch_by_ids
from daemon.ingest.parse import parse_feed
from daemon.library.importer import (
    ImportReport,
    Item,
    import_library,
    import_source,
    like_papers,
)
from daemon.library.read import LibraryError, read_library
from daemon.library.zotero import ZoteroSource
from tests.daemon.conftest import BOTH_BACKENDS, FEEDS, NOW, ROOT, SettingsFactory
from tests.servers import HttpServer, closed_port_url, http_server

LIBRARY = ROOT / "tests" / "data" / "library"
API = FEEDS / "arxiv-api"
# the arXiv API's answer to id_list=0808.05394,1707.08567: 1707.08567 only (no 0808.05394)
TWO_IDS = API / "2026_recorded_id_0808.05394_1707.08567_s0_m100_42e5aa0ec3af.status200.xml"
ONE_ID = API / "2026_recorded_id_1605.08386_s0_m100_199195aa31ad.status200.xml"
NO_RESULT = API / "2026_recorded_id_0000.0000_s0_m100_8b51d9633a68.status200.xml"
API_ERROR = API / "2026_recorded_id_abc_s0_m100_b79c8dcf6bc3.status400.xml"
HF = FEEDS / "hf" / "daily_papers_2026-08-20.json"
API_1111 = API / "2016-10-09_api_id_list_1111.2011v2.xml"


@pytest.fixture
def arxiv() -> Iterator[HttpServer]:
    with http_server() as server:
        yield server


@pytest.fixture
def build(app_factory: Callable[..., App], make_settings: SettingsFactory) -> Callable[[str], App]:
    """An app whose arXiv API is at `api_url`, with the HF daily papers and arXiv:1111.2011
    (DOI 10.1103/PhysRevB.85.115117) stored and the user ada."""

    def make(api_url: str) -> App:
        app = app_factory(make_settings(ingest={"arxiv_api_url": api_url}))
        for path in (HF, API_1111):
            app.store.papers.upsert(parse_feed(path.read_bytes()).papers, None, NOW)
        app.store.people.add("ada", NOW, channels={"email": "ada@lab.example"})  # type: ignore[dict-item]
        return app

    return make


def _import(app: App, name: str, fmt: str | None = None) -> ImportReport:
    library = read_library((LIBRARY / name).read_bytes(), name=name, fmt=fmt)
    return import_library(app, "ada", library, NOW, source=name)


def _wheres(items: list[Item]) -> list[str]:
    return [i.where for i in items]


def _counts(app: App) -> tuple[int, int]:
    with Session(app.store.engine) as s:
        papers = s.exec(select(sa.func.count()).select_from(Paper)).one()
        likes = s.exec(select(sa.func.count()).select_from(Feedback)).one()
    return int(papers), int(likes)


def _paper(app: App, key: str) -> Paper:
    with Session(app.store.engine) as s:
        row = s.exec(select(Paper).where(Paper.key == key)).one()
        s.expunge(row)
        return row


@BOTH_BACKENDS
def test_bibtex_library_matches_fetches_creates_and_twice_changes_nothing(
    build: Callable[[str], App], arxiv: HttpServer
) -> None:
    app = build(arxiv.url_for("/api/query"))
    papers_before, _ = _counts(app)
    arxiv.reply(200, TWO_IDS.read_text(), {"Content-Type": "application/atom+xml"})

    report = _import(app, "zotero_export.bib")

    assert _wheres(report.matched) == [  # by DOI, by arXiv id, by title and a shared author
        "entry murray2012quantum (line 6)",
        "entry ding2026zetta (line 17)",
        "entry yang2026corl (line 26)",
    ]
    assert [i.key for i in report.matched] == [
        "arxiv:1111.2011",
        "arxiv:2608.16590",
        "arxiv:2608.17253",
    ]
    assert [(i.where, i.key) for i in report.fetched] == [
        ("entry immink2017proceedings (line 41)", "arxiv:1707.08567")
    ]
    assert [(i.where, i.key) for i in report.created] == [
        ("entry nobody2008 (line 33)", "arxiv:0808.05394"),  # arXiv has no such paper
        ("entry schrodinger1935 (line 55)", "doi:10.1007/bf01491891"),  # a DOI only
    ]
    assert report.already_liked == []
    assert [str(p) for p in report.duplicates] == [
        "entry murray2012duplicate (line 72): the same paper as entry murray2012quantum (line 6)"
    ]
    assert [str(p) for p in report.failed] == [
        "entry broken2020 (line 49): cannot be read: 2 unclosed brace(s)",
        "entry empty2021 (line 67): no title, arXiv id or DOI: nothing to find the paper by",
    ]
    # one request for both unknown ids, the recorded one
    assert [r.path for r in arxiv.requests] == [
        "/api/query?id_list=0808.05394,1707.08567&max_results=2"
    ]
    assert (report.arxiv_requests, report.arxiv_error) == (1, None)

    fetched = _paper(app, "arxiv:1707.08567")  # as arXiv has it, not as the file
    assert fetched.title.startswith("Proceedings of Workshop AEW10")
    assert len(fetched.authors) > 3 and fetched.categories == ["cs.IT"]
    assert fetched.is_news is False  # someone's library is no news for today's digests
    schrodinger = _paper(app, "doi:10.1007/bf01491891")
    assert schrodinger.title == "Die gegenwärtige Situation in der Quantenmechanik"
    assert schrodinger.authors == ["Erwin Schrödinger"]
    assert schrodinger.url == "https://doi.org/10.1007/bf01491891"
    assert schrodinger.published_at == datetime(1935, 1, 1, tzinfo=UTC)
    assert schrodinger.is_news is False
    assert _counts(app) == (papers_before + 3, 6)

    again = _import(app, "zotero_export.bib")
    assert (again.matched, again.fetched, again.created) == ([], [], [])
    assert len(again.already_liked) == 6
    assert len(arxiv.requests) == 1  # everything is stored now: arXiv is not asked again
    assert _counts(app) == (papers_before + 3, 6)


def test_offline_papers_come_from_the_file(build: Callable[[str], App]) -> None:
    app = build(closed_port_url())
    report = _import(app, "zotero_export.bib")
    assert report.fetched == []
    assert [i.key for i in report.created] == [
        "arxiv:0808.05394",
        "arxiv:1707.08567",
        "doi:10.1007/bf01491891",
    ]
    assert report.arxiv_error is not None and "arXiv could not be asked" in report.arxiv_error
    assert report.arxiv_requests == 1  # the first failure stops the lookup
    offline = _paper(app, "arxiv:1707.08567")
    assert offline.title == (
        "Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"
    )
    assert offline.authors == ["Kees A. Schouhamer Immink", "Stan Baggen", "Yanling Chen"]
    assert offline.url == "https://arxiv.org/abs/1707.08567"
    assert offline.published_at == datetime(2017, 1, 1, tzinfo=UTC)


def test_a_paper_entered_twice_keeps_the_ids_of_both_entries(build: Callable[[str], App]) -> None:
    """Google Scholar's entry (a title, no id) then arXiv's entry of the same paper: imported
    once, as the arXiv paper, not as a title with the arXiv id dropped."""
    app = build(closed_port_url())
    report = _import(app, "scholar_and_arxiv.bib")
    assert [(i.where, i.key) for i in report.created] == [
        ("entry vaswani2017attention (line 5)", "arxiv:1706.03762"),
        # the same title by other people, with a DOI: another paper
        ("entry other2020attention (line 23)", "doi:10.1000/other.2020.1"),
    ]
    assert [str(p) for p in report.duplicates] == [
        "entry vaswani2023attentionneed (line 13): the same paper as entry "
        "vaswani2017attention (line 5) (its arXiv id 1706.03762 is kept)"
    ]
    paper = _paper(app, "arxiv:1706.03762")
    assert (paper.arxiv_id, paper.url) == ("1706.03762", "https://arxiv.org/abs/1706.03762")
    assert paper.title == "Attention is all you need"


def test_offline_id_list_reports_what_it_cannot_store(build: Callable[[str], App]) -> None:
    app = build(closed_port_url())
    report = _import(app, "ids.txt")
    assert [i.key for i in report.matched] == [
        "arxiv:2608.16590",
        "arxiv:2608.17253",
        "arxiv:1111.2011",
        "arxiv:2608.18565",
    ]
    assert [p.where for p in report.not_found] == ["line 5"]
    why = report.not_found[0].why
    assert why.startswith("arXiv astro-ph/0601001 is not stored and could not be fetched: arXiv")
    assert why.endswith("the file gives no title to store it from")
    assert [p.where for p in report.unreadable] == ["line 6"]
    assert _counts(app)[1] == 4


def test_ris_then_csl_json_each_format_and_across_formats(
    build: Callable[[str], App], arxiv: HttpServer
) -> None:
    app = build(arxiv.url_for("/api/query"))
    ris = _import(app, "zotero_export.ris")
    assert [i.key for i in ris.matched] == ["arxiv:2608.17253", "arxiv:1111.2011"]
    assert [i.key for i in ris.created] == ["doi:10.1007/bf01491891"]
    assert [p.where for p in ris.failed] == ["record at line 41", "record at line 46"]
    csl = _import(app, "zotero_export.json")
    assert [i.key for i in csl.matched] == ["arxiv:2608.18565"]
    assert [i.key for i in csl.already_liked] == ["doi:10.1007/bf01491891"]  # from the RIS
    assert [i.title for i in csl.created] == ["Annual report of the Working Group on Open Science"]
    assert arxiv.requests == []  # every arXiv id was stored already
    report = _paper(app, csl.created[0].key)
    assert report.key.startswith("guid:library:annual report of the working group")


def test_a_failure_while_storing_leaves_nothing_behind(
    build: Callable[[str], App], arxiv: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build(arxiv.url_for("/api/query"))
    before = _counts(app)
    arxiv.reply(200, TWO_IDS.read_text())

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("daemon.db.papers.Feedback", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _import(app, "zotero_export.bib")
    assert _counts(app) == before  # no paper of the library stored without its like


def test_a_dislike_becomes_a_like_once(build: Callable[[str], App], arxiv: HttpServer) -> None:
    app = build(arxiv.url_for("/api/query"))
    ada = app.store.people.get("ada")
    paper = app.store.papers.find("2608.16590")
    app.store.people.set_feedback(ada.id, paper.id, -1, NOW)
    first = _import(app, "ids.txt")
    assert "arxiv:2608.16590" in [i.key for i in first.matched]
    second = _import(app, "ids.txt")
    assert "arxiv:2608.16590" in [i.key for i in second.already_liked]


def test_lookup_batches_by_100_and_keeps_the_interval(arxiv: HttpServer) -> None:
    from daemon.ingest.fetch import Throttle, make_fetcher

    fetcher = make_fetcher(
        timeout=5,
        max_bytes=10_000_000,
        user_agent="test",
        min_interval=0,
        allow_private=True,
        allow_files=False,
    )
    fetcher.throttle = Throttle(0)
    ids = [f"2401.{n:05d}" for n in range(1, 151)]
    for _ in range(2):
        arxiv.reply(200, NO_RESULT.read_text())
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    result = fetch_by_ids(
        fetcher,
        ids,
        api_url=arxiv.url_for("/api/query"),
        interval=3.0,
        sleep=sleep,
        monotonic=lambda: clock[0],
    )
    fetcher.client.close()
    batches = [r.path.split("id_list=")[1].split("&")[0].split(",") for r in arxiv.requests]
    assert [len(b) for b in batches] == [100, 50]
    assert batches[0] + batches[1] == ids
    assert slept == [3.0]  # one request every 3 seconds
    assert result.found == {} and result.requests == 2
    assert set(result.missing.values()) == {"arXiv has no paper with this id"}


def test_an_api_error_falls_back_on_the_file(
    build: Callable[[str], App], arxiv: HttpServer
) -> None:
    app = build(arxiv.url_for("/api/query"))
    arxiv.reply(400, API_ERROR.read_text())
    report = _import(app, "zotero_export.bib")
    assert report.arxiv_error is not None and "HTTP 400" in report.arxiv_error
    assert [i.key for i in report.created][:2] == ["arxiv:0808.05394", "arxiv:1707.08567"]


# ---- like with several ids ---------------------------------------------------------------------


def test_like_several_ids_fetching_the_unknown(
    build: Callable[[str], App], arxiv: HttpServer
) -> None:
    app = build(arxiv.url_for("/api/query"))
    arxiv.reply(200, ONE_ID.read_text())
    report = like_papers(
        app,
        "ada",
        [
            "2608.16590",
            "https://arxiv.org/abs/1605.08386v1",
            "doi:10.9999/nothing",
            "arxiv:1111.2011",
        ],
    )
    assert [(d.ref, d.paper.key, d.fetched) for d in report.liked] == [
        ("2608.16590", "arxiv:2608.16590", False),
        ("arxiv:1111.2011", "arxiv:1111.2011", False),
        ("https://arxiv.org/abs/1605.08386v1", "arxiv:1605.08386", True),
    ]
    assert report.liked[2].paper.title == "Heat-bath random walks with Markov bases"
    assert [p.where for p in report.failed] == ["doi:10.9999/nothing"]
    assert [r.path for r in arxiv.requests] == ["/api/query?id_list=1605.08386&max_results=1"]
    assert _counts(app)[1] == 3
    again = like_papers(app, "ada", ["1605.08386"])
    assert again.liked[0].already and not again.liked[0].fetched
    assert len(arxiv.requests) == 1


def test_a_paper_of_the_digest_window_liked_before_the_ingest_is_still_news(
    build: Callable[[str], App], arxiv: HttpServer, clock: Any
) -> None:
    app = build(arxiv.url_for("/api/query"))
    clock.now = datetime(2016, 5, 27, 8, 0, tzinfo=UTC)  # the day after 1605.08386 appeared
    arxiv.reply(200, ONE_ID.read_text())
    like_papers(app, "ada", ["1605.08386"])
    assert _paper(app, "arxiv:1605.08386").is_news is True
    window = app.store.papers.window(clock.now - timedelta(days=1), clock.now + timedelta(1))
    assert [p.key for p in window] == ["arxiv:1605.08386"]  # a candidate for every digest


def test_like_offline_names_the_id_and_likes_the_others(build: Callable[[str], App]) -> None:
    app = build(closed_port_url())
    report = like_papers(app, "ada", ["2401.01234", "2608.16590"])
    assert [d.paper.key for d in report.liked] == ["arxiv:2608.16590"]
    assert [p.where for p in report.failed] == ["2401.01234"]
    assert "not stored, and arXiv could not be asked" in report.failed[0].why
    assert "run `paperwire ingest` first" in report.failed[0].why
    assert _counts(app)[1] == 1


def test_unknown_user_fails_before_anything_is_read(build: Callable[[str], App]) -> None:
    app = build(closed_port_url())
    with pytest.raises(NotFoundError):
        import_source(app, "nobody", str(LIBRARY / "ids.txt"))
    with pytest.raises(LibraryError, match="cannot read the file"):
        import_source(app, "ada", str(LIBRARY / "missing.bib"))


# ---- search ------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_search_by_title_words_author_and_id(build: Callable[[str], App]) -> None:
    app = build(closed_port_url())
    _import(app, "zotero_export.bib")
    assert [p.key for p in app.store.papers.search("bethe LATTICE")] == ["arxiv:1111.2011"]
    assert [p.key for p in app.store.papers.search("Del Maestro")] == ["arxiv:1111.2011"]
    assert [p.key for p in app.store.papers.search("Schrödinger")] == ["doi:10.1007/bf01491891"]
    assert [p.key for p in app.store.papers.search("https://arxiv.org/abs/2608.16590v1")] == [
        "arxiv:2608.16590"
    ]
    assert app.store.papers.search("100%_sure") == []  # LIKE wildcards are words
    assert len(app.store.papers.search("a", limit=3)) == 3
    newest = app.store.papers.search("a", limit=100)
    dates = [p.published_at for p in newest if p.published_at]
    assert dates == sorted(dates, reverse=True)


# ---- Zotero ------------------------------------------------------------------------------------


def _zotero_item(key: str, **data: object) -> dict[str, object]:
    return {
        "key": key,
        "version": 42,
        "library": {"type": "user", "id": 1234567, "name": "ada"},
        "data": {"key": key, "version": 42, **data},
    }


def test_zotero_library_from_a_local_server(
    build: Callable[[str], App], make_settings: SettingsFactory, app_factory: Callable[..., App]
) -> None:
    page1 = [
        _zotero_item(
            "8XKQ2ZJD",
            itemType="preprint",
            title="Zetta ζ: An Efficient Closed-Loop Embodied Harness",
            creators=[{"creatorType": "author", "firstName": "Xin", "lastName": "Ding"}],
            archiveID="arXiv:2608.16590",
            url="http://arxiv.org/abs/2608.16590",
            date="2026-08-17",
        ),
        _zotero_item("NOTE0001", itemType="note", note="<p>read again</p>"),
    ]
    page2 = [
        _zotero_item(
            "QZ7W4M2A",
            itemType="journalArticle",
            title="Die gegenwärtige Situation in der Quantenmechanik",
            creators=[{"creatorType": "author", "firstName": "Erwin", "lastName": "Schrödinger"}],
            DOI="10.1007/BF01491891",
            date="1935",
        )
    ]
    with http_server() as zotero:
        base = zotero.url
        next_link = f'<{base}/users/1234567/items/top?limit=100&start=2>; rel="next"'
        headers = {"Content-Type": "application/json", "Total-Results": "3", "Link": next_link}
        zotero.reply(200, json.dumps(page1), headers)
        zotero.reply(200, json.dumps(page2), {"Content-Type": "application/json"})
        settings = make_settings(
            ingest={"zotero_api_url": base, "arxiv_api_url": closed_port_url()}
        )
        app = app_factory(settings)
        app.store.papers.upsert(parse_feed(HF.read_bytes()).papers, None, NOW)
        app.store.people.add("ada", NOW, channels={"email": "ada@lab.example"})  # type: ignore[dict-item]
        report = import_source(app, "ada", None, zotero=ZoteroSource("1234567", "s3cret-key"))
    assert [(i.where, i.key) for i in report.matched] == [("item 8XKQ2ZJD", "arxiv:2608.16590")]
    assert [(i.where, i.key) for i in report.created] == [
        ("item QZ7W4M2A", "doi:10.1007/bf01491891")
    ]
    paths = [r.path.split("?")[0] for r in zotero.requests]
    assert paths == ["/users/1234567/items/top", "/users/1234567/items/top"]
    assert "start=2" in zotero.requests[1].path
    assert zotero.requests[0].headers.get("authorization") == "Bearer s3cret-key"
    assert "s3cret-key" not in repr(ZoteroSource("1", "s3cret-key"))


def test_zotero_errors_are_one_clear_error(
    make_settings: SettingsFactory, app_factory: Callable[..., App]
) -> None:
    with http_server() as zotero:
        zotero.reply(403, "Forbidden")
        app = app_factory(make_settings(ingest={"zotero_api_url": zotero.url}))
        app.store.people.add("ada", NOW, channels={"email": "ada@lab.example"})  # type: ignore[dict-item]
        source = ZoteroSource("42", "bad-key", collection="ABCD2345", group=True)
        with pytest.raises(LibraryError) as e:
            import_source(app, "ada", None, zotero=source)
    assert str(e.value).startswith("Zotero group library 42, collection ABCD2345: cannot be read")
    assert "--zotero-key" in str(e.value)
    assert [r.path.split("?")[0] for r in zotero.requests] == [
        "/groups/42/collections/ABCD2345/items/top"
    ]


def test_a_paper_made_from_a_file_is_never_news_whatever_its_year(
    build: Callable[[str], App], arxiv: HttpServer, clock: Any
) -> None:
    # anyone with a manage link imports a file: a paper dated by the file (this year, or a
    # year to come) must not reach everyone's digest with the file's title and link
    app = build(arxiv.url_for("/api/query"))
    clock.now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    bib = "".join(
        f"@article{{x{year}, title={{Verify your lab account now {year}}}, year={{{year}}},"
        f" url={{https://evil.example/{year}}}}}\n"
        for year in (2026, 2027, 9999)
    )
    report = import_library(app, "ada", read_library(bib.encode(), name="x.bib"), clock.now)
    assert [i.key for i in report.created] == [
        f"guid:https://evil.example/{y}" for y in (2026, 2027, 9999)
    ]
    assert not [i for i in report.created if _paper(app, i.key).is_news]
    window = app.store.papers.window(clock.now - timedelta(days=400), clock.now + timedelta(1))
    assert "evil.example" not in " ".join(p.url for p in window)


def test_a_zotero_title_in_rich_text_matches_the_stored_paper(
    build: Callable[[str], App],
) -> None:
    # "<i>Zetta</i> ζ: …" (Zotero's italics) did not match the stored arXiv paper by title:
    # the paper was stored a second time, from the file
    app = build(closed_port_url())
    item = {
        "title": "<i>Zetta</i> ζ: An Efficient Closed-Loop Embodied Harness for Self-Evolving "
        "Physical Intelligence",
        "author": [{"family": "Ding", "given": "Xin"}],
    }
    library = read_library(json.dumps([item]).encode(), name="zotero.json")
    report = import_library(app, "ada", library, NOW, source="zotero.json")
    assert [(i.key, i.title[:7]) for i in report.matched] == [("arxiv:2608.16590", "Zetta ζ")]
    assert not report.created


def test_papers_without_ids_that_give_a_sites_home_page_stay_two_papers(
    build: Callable[[str], App],
) -> None:
    """Two entries with no arXiv id or DOI whose url is the same home page (a journal's site,
    not the paper's page) were one paper: the key came from that url, so the second was a
    "duplicate" and its like went to the first. A paper's own page still keys its paper."""
    from daemon.library.read import read_bibtex

    app = build(closed_port_url())
    text = """
@article{first, title = {Sparse Coding of Natural Images in the Visual Cortex},
  author = {Olshausen, Bruno}, url = {https://www.journals.example.org/}}
@article{second, title = {Spike Timing Dependent Plasticity in Cortical Circuits},
  author = {Markram, Henry}, url = {https://www.journals.example.org/}}
@article{third, title = {A Paper With A Page Of Its Own Somewhere},
  author = {Page, Ada}, url = {https://www.journals.example.org/article/123}}
"""
    report = import_library(app, "ada", read_bibtex(text), NOW, source="lib.bib")
    assert report.duplicates == []
    assert len(report.created) == 3
    titles = [_paper(app, i.key).title for i in report.created]
    assert titles == [
        "Sparse Coding of Natural Images in the Visual Cortex",
        "Spike Timing Dependent Plasticity in Cortical Circuits",
        "A Paper With A Page Of Its Own Somewhere",
    ]
    assert report.created[2].key == "guid:https://www.journals.example.org/article/123"


def test_a_url_that_urlsplit_cannot_read_does_not_stop_the_import(
    build: Callable[[str], App],
) -> None:
    """An entry's url with a '[' after its scheme (a typo, a mangled export) made the import
    raise ValueError ("Invalid IPv6 URL") while its key was worked out: the whole file was
    refused for one entry's link. Such a link is the paper's key as any other is."""
    from daemon.library.read import read_bibtex

    app = build(closed_port_url())
    text = """
@article{first, title = {Sparse Coding of Natural Images in the Visual Cortex},
  author = {Olshausen, Bruno}, url = {http://[journals.example.org/article/1}}
@article{second, title = {Spike Timing Dependent Plasticity in Cortical Circuits},
  author = {Markram, Henry}, url = {https://www.journals.example.org/article/2}}
"""
    report = import_library(app, "ada", read_bibtex(text), NOW, source="lib.bib")
    assert len(report.created) == 2, report
    assert report.created[0].key == "guid:http://[journals.example.org/article/1"
