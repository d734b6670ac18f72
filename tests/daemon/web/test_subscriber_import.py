"""A library uploaded on the subscriber's page: the report (matched, fetched, created from the
file, already liked, duplicates, not imported with line and key), twice changes nothing, the
size limit, an unreadable file, the form's checks, and arXiv asked for a bounded number of ids.
arXiv's API is a local HTTP server answering a recorded response (or a closed port: offline)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from daemon.app import App
from daemon.db.models import ChannelKind
from daemon.ingest.parse import PaperIn, parse_feed
from daemon.library.importer import import_library
from daemon.library.read import read_library
from daemon.web import subscriber
from daemon.web.pages import make_web
from tests.daemon.conftest import FEEDS, NOW, ROOT, SettingsFactory
from tests.servers import HttpServer, closed_port_url, http_server

LIBRARY = ROOT / "tests" / "data" / "library"
API = FEEDS / "arxiv-api"
TWO_IDS = API / "2026_recorded_id_0808.05394_1707.08567_s0_m100_42e5aa0ec3af.status200.xml"
HF = FEEDS / "hf" / "daily_papers_2026-08-20.json"
API_1111 = API / "2016-10-09_api_id_list_1111.2011v2.xml"


class Page:
    def __init__(self, app: App, client: TestClient, token: str) -> None:
        self.app, self.client, self.token = app, client, token

    def upload(self, name: str, data: bytes, *, csrf: bool = True, **headers: str) -> Any:
        form = {"csrf": self.app.links.form_token(self.token)} if csrf else {}
        return self.client.post(
            f"/me/{self.token}/import",
            data=form,
            files={"library": (name, data, "application/octet-stream")},
            headers=headers,
        )

    def likes(self) -> int:
        user = self.app.store.people.get("ada")
        return sum(1 for _, v, _ in self.app.store.subscriber.feedback(user.id) if v > 0)


@pytest.fixture
def arxiv() -> Iterator[HttpServer]:
    with http_server() as server:
        yield server


@pytest.fixture
def open_page(
    app_factory: Callable[..., App], make_settings: SettingsFactory
) -> Iterator[Callable[[str], Page]]:
    clients: list[TestClient] = []

    def make(api_url: str) -> Page:
        app = app_factory(make_settings(ingest={"arxiv_api_url": api_url}))
        for path in (HF, API_1111):
            app.store.papers.upsert(parse_feed(path.read_bytes()).papers, None, NOW)
        user = app.store.people.add("ada", NOW, channels={ChannelKind.EMAIL: "ada@lab.example"})
        token = urlsplit(app.links.manage_url(user.id, app.clock())).path.rsplit("/", 1)[1]
        client = TestClient(make_web(app))
        client.__enter__()
        clients.append(client)
        return Page(app, client, token)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_the_page_offers_the_upload(open_page: Callable[[str], Page]) -> None:
    page = open_page(closed_port_url())
    html = page.client.get(f"/me/{page.token}").text
    assert 'enctype="multipart/form-data"' in html
    assert f'action="/me/{page.token}/import"' in html


def test_a_bibtex_upload_shows_the_report_and_twice_changes_nothing(
    open_page: Callable[[str], Page], arxiv: HttpServer
) -> None:
    page = open_page(arxiv.url_for("/api/query"))
    arxiv.reply(200, TWO_IDS.read_text(), {"Content-Type": "application/atom+xml"})
    resp = page.upload("zotero_export.bib", (LIBRARY / "zotero_export.bib").read_bytes())
    assert resp.status_code == 200
    html = resp.text
    assert (
        "6 paper(s) liked</strong> — 3 matched to stored papers, 1 fetched from arXiv, "
        "2 created from the file; 0 already liked, 1 duplicate(s), 2 not imported" in html
    )
    assert "From zotero_export.bib (bibtex)" in html
    for where in (
        "entry murray2012quantum (line 6)",  # matched
        "entry immink2017proceedings (line 41)",  # fetched
        "entry schrodinger1935 (line 55)",  # created from the file
    ):
        assert where in html
    assert (
        "<strong>entry broken2020 (line 49)</strong>: cannot be read: 2 unclosed brace(s)" in html
    )
    assert "<strong>entry empty2021 (line 67)</strong>: no title, arXiv id or DOI" in html
    assert "the same paper as entry murray2012quantum (line 6)" in html
    assert "Die gegenwärtige Situation in der Quantenmechanik" in html
    assert "<script" not in html.lower()
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert page.likes() == 6
    assert len(arxiv.requests) == 1

    again = page.upload("zotero_export.bib", (LIBRARY / "zotero_export.bib").read_bytes())
    assert (
        "0 matched to stored papers, 0 fetched from arXiv, 0 created from the file; "
        "6 already liked" in again.text
    )
    assert page.likes() == 6
    assert len(arxiv.requests) == 1
    # and the likes are on the page
    assert "Zetta ζ" in page.client.get(f"/me/{page.token}").text


@pytest.mark.parametrize("name", ["zotero_export.ris", "zotero_export.json", "ids.txt"])
def test_ris_csl_json_and_id_lists_offline(open_page: Callable[[str], Page], name: str) -> None:
    page = open_page(closed_port_url())
    resp = page.upload(name, (LIBRARY / name).read_bytes())
    assert resp.status_code == 200
    assert "Your library is imported" in resp.text
    assert page.likes() > 0
    assert f"From {name} (" in resp.text


def test_the_report_shows_titles_as_the_page_does(open_page: Callable[[str], Page]) -> None:
    """A stored title's LaTeX is shown readable (as on the page and in the digest), not raw."""
    page = open_page(closed_port_url())
    paper = PaperIn(
        key="arxiv:2608.19999",
        title=r"$\alpha$-stable <i>noise</i> in diffusion",
        abstract="",
        authors=("Ada",),
        url="https://arxiv.org/abs/2608.19999",
        published=NOW,
        arxiv_id="2608.19999",
    )
    page.app.store.papers.upsert([paper], None, NOW)
    html = page.upload("ids.txt", b"2608.19999\n").text
    assert "1 matched to stored papers" in html
    assert "α-stable &lt;i&gt;noise&lt;/i&gt; in diffusion" in html
    assert "$\\alpha$" not in html


def test_too_large_a_file_is_refused_with_a_clear_error(
    open_page: Callable[[str], Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = open_page(closed_port_url())
    monkeypatch.setattr(subscriber, "UPLOAD_BYTES", 1000)
    data = (LIBRARY / "zotero_export.bib").read_bytes()
    assert len(data) > 1000
    resp = page.upload("zotero_export.bib", data)
    assert resp.status_code == 413
    assert 'id="error"' in resp.text and "larger than" in resp.text
    assert page.likes() == 0


def test_the_real_limit_is_five_megabytes(open_page: Callable[[str], Page]) -> None:
    page = open_page(closed_port_url())
    resp = page.upload("big.bib", b"% " + b"x" * subscriber.UPLOAD_BYTES)
    assert resp.status_code == 413
    assert "larger than 5 MB" in resp.text


def test_an_unreadable_file_or_no_file_says_what_to_do(open_page: Callable[[str], Page]) -> None:
    page = open_page(closed_port_url())
    resp = page.upload("paper.pdf", b"%PDF-1.7\n\x00\x01\x02 binary")
    assert resp.status_code == 400
    assert 'id="error"' in resp.text
    assert "paper.pdf" in resp.text
    assert page.likes() == 0
    resp = page.client.post(
        f"/me/{page.token}/import", data={"csrf": page.app.links.form_token(page.token)}
    )
    assert resp.status_code == 400
    assert "Choose a file" in resp.text


def test_a_file_that_takes_too_long_to_read_is_stopped_and_the_site_answers_meanwhile(
    open_page: Callable[[str], Page],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one BibTeX entry of many fields makes pyparsing's work grow with their square (1 MB of
    # `a=b,` ran for more than five minutes), in the daemon's own process: a file is read in a
    # worker process under the parse budget
    import threading

    from daemon.library import bounded

    page = open_page(closed_port_url())
    settings = page.app.settings
    page.app.settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"parse_timeout_seconds": 2})}
    )
    crafted = b"@article{x," + b"a=b," * 60_000 + b"}"
    reading, seen = threading.Event(), threading.Event()
    real = bounded.read_library_bounded

    def held(*args: Any, **kwargs: Any) -> Any:
        # the read, then its answer held until the test has had /healthz's: the order does
        # not depend on how fast a loaded machine answers (read in the event loop, /healthz
        # would wait for the hold, and the upload would be answered first)
        reading.set()
        try:
            return real(*args, **kwargs)
        finally:
            seen.wait(60)

    monkeypatch.setattr(bounded, "read_library_bounded", held)
    answers: list[Any] = []
    upload = threading.Thread(target=lambda: answers.append(page.upload("lib.bib", crafted)))
    upload.start()
    try:
        assert reading.wait(60)
        health = page.client.get("/healthz")
        # answered while the file was being read, not after it
        assert health.status_code == 200 and upload.is_alive() and not answers
    finally:
        seen.set()
        upload.join(120)
    (resp,) = answers
    assert resp.status_code == 400
    # stopped (read to its end, it took over 5 minutes): only a stopped read says so
    assert "lib.bib: reading it took longer than 2 s and was stopped" in resp.text
    assert "export a part of your library" in resp.text
    assert page.likes() == 0
    # a file that reads is imported as before, through the worker (under the usual budget: a
    # worker takes ~0.3 s to start, and 2 s were too few under a loaded test run)
    page.app.settings = settings
    resp = page.upload("ids.txt", b"arXiv:1111.2011\n")
    assert resp.status_code == 200 and page.likes() == 1


def test_one_subscriber_uploads_at_most_ten_files_an_hour(
    open_page: Callable[[str], Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    # each upload may store up to 100,000 papers from the file (never deleted) and keep a
    # worker busy for the parse budget: a link's holder could repeat it without end
    page = open_page(closed_port_url())
    files = [f"@misc{{k{i}, title={{Junk paper number {i}}}}}\n".encode() for i in range(11)]
    assert all(page.upload(f"lib{i}.bib", f).status_code == 200 for i, f in enumerate(files[:10]))
    refused = page.upload("lib10.bib", files[10])
    assert refused.status_code == 429
    assert "You have uploaded 10 files in the last hour" in refused.text
    assert page.likes() == 10
    clock: Any = page.app.clock
    monkeypatch.setattr(page.app, "clock", lambda: clock() + subscriber.REQUEST_WINDOW)
    assert page.upload("lib10.bib", files[10]).status_code == 200 and page.likes() == 11


def test_an_upload_of_more_entries_than_a_library_holds_is_refused(
    open_page: Callable[[str], Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 MB of CSV, a title a row, stored 100,000 papers nobody deletes (55 s of writes in one
    # transaction, SQLite's other writers waiting): ten an hour from any link's holder filled
    # the database with a million rows an hour (security QA)
    page = open_page(closed_port_url())
    monkeypatch.setattr(subscriber, "UPLOAD_ENTRIES", 3, raising=False)
    stored = page.app.store.papers.count()
    rows = "".join(f"Junk paper number {i},A. Author\n" for i in range(4))
    resp = page.upload("junk.csv", f"Title,Author\n{rows}".encode())
    assert resp.status_code == 413
    assert 'id="error"' in resp.text and "more than 3 entries" in resp.text
    assert page.likes() == 0 and page.app.store.papers.count() == stored
    one_less = "".join(f"Junk paper number {i},A. Author\n" for i in range(3))
    assert page.upload("junk.csv", f"Title,Author\n{one_less}".encode()).status_code == 200
    assert page.likes() == 3


def test_the_real_limit_is_ten_thousand_entries(open_page: Callable[[str], Page]) -> None:
    page = open_page(closed_port_url())
    rows = "".join(f"Junk paper number {i},A. Author\n" for i in range(10_001))
    resp = page.upload("junk.csv", f"Title,Author\n{rows}".encode())
    assert resp.status_code == 413 and "more than 10,000 entries" in resp.text
    assert page.likes() == 0


def test_without_the_form_token_or_from_another_site_nothing_is_imported(
    open_page: Callable[[str], Page],
) -> None:
    page = open_page(closed_port_url())
    data = (LIBRARY / "ids.txt").read_bytes()
    assert page.upload("ids.txt", data, csrf=False).status_code == 403
    resp = page.upload("ids.txt", data, Origin="https://evil.example")
    assert resp.status_code == 403
    assert page.likes() == 0


def test_arxiv_is_asked_for_a_bounded_number_of_ids(
    open_page: Callable[[str], Page], arxiv: HttpServer
) -> None:
    page = open_page(arxiv.url_for("/api/query"))
    arxiv.reply(200, TWO_IDS.read_text(), {"Content-Type": "application/atom+xml"})
    library = read_library((LIBRARY / "zotero_export.bib").read_bytes(), name="lib.bib")
    report = import_library(page.app, "ada", library, NOW, max_fetch=1)
    assert [r.path for r in arxiv.requests] == ["/api/query?id_list=0808.05394&max_results=1"]
    assert report.fetched == []  # 0808.05394 arXiv has not; 1707.08567 was not asked
    assert [i.key for i in report.created] == [
        "arxiv:0808.05394",
        "arxiv:1707.08567",
        "doi:10.1007/bf01491891",
    ]
    # an id without a title that was not asked is reported, saying to import again
    ids = read_library(b"1707.08567\n", name="ids.txt")
    report = import_library(page.app, "ada", ids, NOW, max_fetch=0)
    assert report.already_liked and not report.failed  # stored by now: matched


def test_a_body_announced_too_large_is_refused_before_it_is_read(
    open_page: Callable[[str], Page],
) -> None:
    page = open_page(closed_port_url())
    resp = page.upload("huge.txt", b"2401.01234\n" * 600_000)  # 6.6 MB
    assert resp.status_code == 413
    assert "larger than 5 MB" in resp.text
    assert page.likes() == 0


def test_an_empty_body_is_not_taken_for_a_too_large_one(open_page: Callable[[str], Page]) -> None:
    """Content-Length: 0 was answered 413 "larger than 5 MB" (0 is falsy; a second read)."""
    page = open_page(closed_port_url())
    resp = page.client.post(f"/me/{page.token}/import", content=b"")
    assert resp.status_code == 403 and "larger than" not in resp.text  # no form token: refused


def test_a_submit_without_a_file_is_no_upload_of_the_ten(open_page: Callable[[str], Page]) -> None:
    # ab15784 counted the upload before looking for the file: "Choose a file" (the button
    # pressed before choosing one) used one of the hour's ten uploads
    page = open_page(closed_port_url())
    for _ in range(subscriber.UPLOADS_PER_HOUR):
        empty = page.client.post(
            f"/me/{page.token}/import", data={"csrf": page.app.links.form_token(page.token)}
        )
        assert empty.status_code == 400 and "Choose a file" in empty.text
    resp = page.upload("lib.bib", b"@misc{k, title={A paper of my own}}\n")
    assert resp.status_code == 200 and page.likes() == 1


def test_an_upload_waits_a_bounded_time_for_a_reader_then_says_busy(
    open_page: Callable[[str], Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    # with every reader busy (UPLOADS_AT_ONCE files read at once) an upload waited for one
    # without end: the subscriber saw a page loading for ever, then perhaps a proxy's 504
    import threading

    from daemon.library import bounded

    page = open_page(closed_port_url())
    reading, release = threading.Semaphore(0), threading.Event()
    read = bounded.read_library_bounded

    def held(data: bytes, **kwargs: Any) -> Any:
        reading.release()
        release.wait(60)
        return read(data, **kwargs)

    monkeypatch.setattr(bounded, "read_library_bounded", held)
    monkeypatch.setattr(subscriber, "UPLOAD_WAIT_SECONDS", 0.5)
    files = [f"@misc{{k{i}, title={{Busy paper number {i}}}}}\n".encode() for i in range(11)]
    answers: list[Any] = []
    readers = [
        threading.Thread(target=lambda f=f: answers.append(page.upload("lib.bib", f)))
        for f in files[:2]
    ]
    try:
        for reader in readers:
            reader.start()
        assert reading.acquire(timeout=60) and reading.acquire(timeout=60)  # both slots taken
        busy = page.upload("lib.bib", files[2])
    finally:
        release.set()
    for reader in readers:
        reader.join(60)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "60"
    assert "Busy reading other libraries; try again in a minute" in busy.text
    assert "Nothing was imported" in busy.text
    assert [a.status_code for a in answers] == [200, 200] and page.likes() == 2
    # the busy answer was no upload of the hour's ten: eight more are read
    assert all(page.upload("lib.bib", f).status_code == 200 for f in files[3:11])
    assert page.likes() == 10


def test_an_upload_that_imports_nothing_says_so_and_what_to_do(
    open_page: Callable[[str], Page],
) -> None:
    """The page said "Your library is imported" whatever the upload gave: a file whose every
    entry was broken, or the same library again (all of it liked already)."""
    page = open_page(closed_port_url())
    broken = b"@misc{a,\n title={x\n\n@misc{k, note={nothing}}\n"
    html = page.upload("broken.bib", broken).text
    assert "Your library is imported" not in html
    assert '<h1 id="import-done">No paper was imported</h1>' in html
    assert "None of the 2 entries of broken.bib could be imported" in html
    assert "fix the entries listed below" in html
    assert page.likes() == 0

    ids = b"2608.16590\n1111.2011\n"  # both stored (the HF and arXiv API fixtures)
    first = page.upload("ids.txt", ids).text
    assert '<h1 id="import-done">Your library is imported</h1>' in first
    again = page.upload("ids.txt", ids).text
    assert "Your library is imported" not in again
    assert '<h1 id="import-done">Nothing new to import</h1>' in again
    assert "All 2 papers of ids.txt were already among your likes" in again
    assert page.likes() == 2

    library = b"@misc{k, note={nothing}}\n" + (LIBRARY / "zotero_export.bib").read_bytes()
    part = page.upload("part.bib", library).text
    assert '<h1 id="import-done">Your library is imported in part</h1>' in part
    assert "3 entries could not be imported: fix the entries listed below" in part
