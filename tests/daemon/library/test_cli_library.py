"""`paperwire import`, `paperwire like` with several ids and `paperwire papers search`, in this
process through the entry point's `main` (exit status, output), on a temporary SQLite database,
with the arXiv API a local HTTP server (or a port nobody listens on: offline)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon.conftest import FEEDS, ROOT
from tests.daemon.in_process import Runner
from tests.servers import HttpServer, closed_port_url, http_server

LIBRARY = ROOT / "tests" / "data" / "library"
HF_FILE = FEEDS / "hf" / "daily_papers_2026-08-20.json"
API = FEEDS / "arxiv-api"
TWO_IDS = API / "2026_recorded_id_0808.05394_1707.08567_s0_m100_42e5aa0ec3af.status200.xml"
ONE_ID = API / "2026_recorded_id_1605.08386_s0_m100_199195aa31ad.status200.xml"


def _session(tmp_path: Path, api_url: str) -> Runner:
    """A configured paperwire with the HF daily papers ingested and the user ada."""
    config = tmp_path / "paperwire.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "paperwire.db"}"

[server]
secret_key = "cli-test-secret-0123"
secret_key_file = "{tmp_path / "secret.key"}"

[ingest]
allow_files = true
allow_private_addresses = true
arxiv_min_interval_seconds = 0.0
timeout_seconds = 5.0
arxiv_api_url = "{api_url}"

[log]
level = "WARNING"
"""
    )
    pw = Runner(config, tmp_path)
    pw("db", "upgrade")
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("ingest")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    return pw


@pytest.fixture
def arxiv() -> Iterator[HttpServer]:
    with http_server() as server:
        yield server


def test_import_bibtex_reports_every_entry_and_twice_changes_nothing(
    tmp_path: Path, arxiv: HttpServer
) -> None:
    pw = _session(tmp_path, arxiv.url_for("/api/query"))
    arxiv.reply(200, TWO_IDS.read_text())
    bib = str(LIBRARY / "zotero_export.bib")
    first = pw("import", "ada", bib, expect=1)  # two entries could not be read
    assert (
        f"import into ada from {bib} (bibtex): 6 paper(s) liked — 2 matched to stored papers, "
        "1 fetched from arXiv, 3 created from the file; 0 already liked, 1 duplicate(s), "
        "2 not imported"
    ) in " ".join(first.stdout.split())
    assert "entry ding2026zetta (line 17): arxiv:2608.16590 Zetta ζ" in first.stdout
    assert "entry immink2017proceedings (line 41): arxiv:1707.08567 Proceedings" in first.stdout
    assert (
        "entry schrodinger1935 (line 55): doi:10.1007/bf01491891 Die gegenwärtige" in first.stdout
    )
    assert "entry broken2020 (line 49): cannot be read: 2 unclosed brace(s)" in first.stderr
    assert "Traceback" not in first.stderr
    audit = sa.create_engine(f"sqlite:///{tmp_path / 'paperwire.db'}")
    with audit.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, target, detail FROM auditentry")).all()
    audit.dispose()
    assert ("library imported", "ada", f"6 paper(s) liked from {bib} (bibtex)") in rows
    second = pw("import", "ada", bib, expect=1)
    assert "0 paper(s) liked" in second.stdout and "6 already liked" in second.stdout
    assert len(arxiv.requests) == 1

    found = pw("papers", "search", "Quantenmechanik").stdout
    assert "doi:10.1007/bf01491891" in found and "1935-01-01" in found
    assert "Erwin Schrödinger" in found
    by_author = pw("papers", "search", "Immink", "--limit", "5").stdout
    assert "arxiv:1707.08567" in by_author
    assert "no stored paper matches 'zzzz qqqq'" in pw("papers", "search", "zzzz qqqq").stdout


def test_import_from_standard_input_with_a_format(
    tmp_path: Path, arxiv: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = _session(tmp_path, arxiv.url_for("/api/query"))
    text = "2608.16590\nhttps://arxiv.org/abs/2608.17253v1\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    done = pw("import", "ada", "-", "--format", "arxiv")
    assert "from standard input (arxiv): 2 paper(s) liked — 2 matched" in done.stdout
    assert arxiv.requests == []


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    pw = _session(tmp_path, closed_port_url())
    notes = tmp_path / "notes.txt"
    notes.write_text("things to read\nsome day\n")
    done = pw("import", "ada", str(notes), expect=1)
    assert f"error: {notes}: found no arXiv id, DOI, BibTeX entry, RIS record or CSL JSON item" in (
        " ".join(done.stderr.split())
    )
    assert "export the library as BibTeX, RIS or CSL JSON" in done.stderr
    missing = pw("import", "ada", str(tmp_path / "nope.bib"), expect=1)
    assert "nope.bib: cannot read the file (No such file or directory)" in missing.stderr
    nothing = pw("import", "ada", expect=1)
    assert "give a FILE (or - for standard input) or --zotero-library" in nothing.stderr
    bad = pw("import", "ada", str(notes), "--format", "endnote", expect=1)
    assert "--format 'endnote': give one of arxiv, bibtex, ris, csl-json" in bad.stderr


def test_a_file_that_is_no_library_is_said_so_in_a_few_lines(tmp_path: Path) -> None:
    """A README given by mistake (one arXiv id in it, so read as a text of ids): every other
    line was listed as not imported (156 for paperwire's README), and arXiv out of reach
    added "entries were stored from the file" when none was. Now the first 20 are listed
    and how many more; it says nothing was stored, and which files are read."""
    pw = _session(tmp_path, closed_port_url())
    notes = tmp_path / "README.md"
    prose = "".join(f"Some prose, line {i}, with no id.\n" for i in range(2, 41))
    notes.write_text(f"See arXiv:2401.01234 first.\n{prose}")
    done = pw("import", "ada", str(notes), expect=1)
    assert "0 paper(s) liked" in done.stdout and "40 not imported" in done.stdout
    said = " ".join(done.stderr.split())
    # the id found but not stored first: it was hidden among the 20 more, behind the prose
    assert said.index("line 1: ") < said.index("line 2: ")
    assert "line 20: " in said and "line 21: " not in said
    assert "… and 20 more not imported" in said
    assert "stored from the file" not in said, said
    assert f"nothing was stored: no entry of {notes} could be imported (read as arxiv)" in said
    assert "export the library as BibTeX, RIS or CSL JSON" in said
    assert len(done.stderr.splitlines()) < 30


def test_import_offline_stores_from_the_file(tmp_path: Path) -> None:
    pw = _session(tmp_path, closed_port_url())
    done = pw("import", "ada", str(LIBRARY / "zotero_export.bib"), expect=1)
    assert "0 fetched from arXiv, 4 created from the file" in done.stdout
    assert "arXiv: arXiv could not be asked" in " ".join(done.stderr.split())


def test_import_reports_crossref_volumes_as_not_papers(tmp_path: Path) -> None:
    pw = _session(tmp_path, closed_port_url())
    done = pw("import", "ada", str(LIBRARY / "jabref_crossref.bib"))
    assert "3 paper(s) liked — 0 matched to stored papers, 0 fetched from arXiv, 3 created" in (
        " ".join(done.stdout.split())
    )
    assert "not a paper (not liked):\n  entry NIPS2017 (line 21): a volume other entries" in (
        done.stdout
    )
    assert "Advances in Neural" not in pw("papers", "search", "Neural Information").stdout


def test_import_a_list_of_dois(tmp_path: Path) -> None:
    # a DOI of a list was "no arXiv id", not imported, even when the paper was stored
    pw = _session(tmp_path, closed_port_url())
    pw("import", "ada", str(LIBRARY / "zotero_export.bib"), expect=1)
    pw("users", "add", "bo", "--email", "bo@lab.example")
    dois = tmp_path / "dois.txt"
    dois.write_text("https://doi.org/10.1007/BF01491891\n10.9999/nobody.knows\nto read\n")
    done = pw("import", "bo", str(dois), expect=1)
    assert "1 paper(s) liked — 1 matched to stored papers" in done.stdout
    assert "line 1: doi:10.1007/bf01491891 Die gegenwärtige Situation" in done.stdout
    err = " ".join(done.stderr.split())
    assert "line 2: DOI 10.9999/nobody.knows is not stored, and the file gives no title" in err
    assert "line 3: no arXiv id or DOI in 'to read'" in err


def test_like_several_ids_fetches_the_unknown_one(tmp_path: Path, arxiv: HttpServer) -> None:
    pw = _session(tmp_path, arxiv.url_for("/api/query"))
    arxiv.reply(200, ONE_ID.read_text())
    done = pw("like", "ada", "2608.16590", "arXiv:1605.08386v1")
    assert "ada likes arxiv:2608.16590: Zetta" in done.stdout
    assert (
        "ada likes arxiv:1605.08386: Heat-bath random walks with Markov bases "
        "(fetched from arXiv)" in done.stdout
    )
    again = pw("like", "ada", "1605.08386")
    assert "(already liked)" in again.stdout
    assert len(arxiv.requests) == 1


def test_readme_quick_start_like_offline_is_a_clear_message(tmp_path: Path) -> None:
    """README: `paperwire like ada 2401.01234` — not ingested, arXiv out of reach."""
    pw = _session(tmp_path, closed_port_url())
    done = pw("like", "ada", "2401.01234", "2608.16590", expect=1)
    assert "ada likes arxiv:2608.16590" in done.stdout  # the other one is liked
    message = " ".join(done.stderr.split())
    assert "error: 2401.01234: not stored, and arXiv could not be asked" in message
    assert "run `paperwire ingest` first, or try again when arXiv can be reached" in message
    assert "Traceback" not in done.stderr


def test_a_like_over_a_dislike_says_it_replaced_it(tmp_path: Path) -> None:
    # `like` over a dislike turned it into a like without a word ("ada likes …"), as did
    # `dislike` over a like: the operator could not tell they had reversed the reader's word
    pw = _session(tmp_path, closed_port_url())
    first = pw("dislike", "ada", "2608.16590").stdout
    assert "ada dislikes arxiv:2608.16590: Zetta" in first and "was" not in first
    liked = pw("like", "ada", "2608.16590").stdout
    assert "ada likes arxiv:2608.16590: Zetta" in liked
    assert "(was disliked, now liked)" in liked
    assert "(already liked)" in pw("like", "ada", "2608.16590").stdout
    disliked = pw("dislike", "ada", "2608.16590").stdout
    assert "(was liked, now disliked)" in disliked
    assert "(already disliked)" in pw("dislike", "ada", "2608.16590").stdout


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_search_is_a_usage_error(tmp_path: Path, text: str) -> None:
    # `papers search ""` printed "no stored paper matches ''" and exited 0, as if the
    # database had been searched and held nothing
    pw = _session(tmp_path, closed_port_url())
    done = pw("papers", "search", text, expect=2)
    said = " ".join(done.stderr.split())
    assert "Invalid value for TEXT" in said and "give words" in said, said
    assert "no stored paper matches" not in done.stdout
