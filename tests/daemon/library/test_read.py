"""Library files → entries (no database, no network): each format on small real-shaped exports
with broken entries (reported with their line or key, the others read), format detection,
unreadable files, LaTeX to Unicode, Zotero items, and arXiv ids found in any text (hypothesis).
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.ingest.identity import arxiv_ids_in, plausible_id
from daemon.library.read import (
    Entry,
    LibraryError,
    Problem,
    bibtex_names,
    csl_entry,
    detect_format,
    latex_text,
    read_bibtex,
    read_library,
)
from daemon.library.zotero import zotero_entry
from tests.daemon.conftest import ROOT

LIBRARY = ROOT / "tests" / "data" / "library"


def _read(name: str, fmt: str | None = None) -> tuple[str, list[Entry], list[str]]:
    lib = read_library((LIBRARY / name).read_bytes(), name=name, fmt=fmt)
    return lib.format, lib.entries, [str(p) for p in lib.problems]


def test_bibtex_export() -> None:
    fmt, entries, problems = _read("zotero_export.bib")
    assert fmt == "bibtex"
    by_key = {e.where.split()[1]: e for e in entries}
    assert list(by_key) == [
        "murray2012quantum",
        "ding2026zetta",
        "yang2026corl",
        "nobody2008",
        "immink2017proceedings",
        "schrodinger1935",
        "murray2012duplicate",
    ]
    murray = by_key["murray2012quantum"]
    assert murray.where == "entry murray2012quantum (line 6)"
    assert murray.doi == "10.1103/physrevb.85.115117"  # DOIs are case-insensitive: lower case
    assert murray.arxiv_id is None
    assert murray.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tešanović")
    assert murray.title.startswith("Quantum Criticality for Extended Nodes on a Bethe Lattice")
    assert by_key["ding2026zetta"].arxiv_id == "2608.16590"  # eprint, version dropped
    assert by_key["ding2026zetta"].title.startswith("Zetta ζ: An Efficient")  # $\zeta$ → ζ
    assert by_key["yang2026corl"].title.startswith("Co-RL: Unsupervised")  # {Co-RL}: braces gone
    assert by_key["nobody2008"].arxiv_id == "0808.05394"  # from journal = {arXiv preprint …}
    assert by_key["immink2017proceedings"].arxiv_id == "1707.08567"  # from the URL
    schrodinger = by_key["schrodinger1935"]
    assert schrodinger.title == "Die gegenwärtige Situation in der Quantenmechanik"
    assert schrodinger.authors == ("Erwin Schrödinger",)
    assert schrodinger.abstract.startswith("Eine Katze wird in eine Stahlkammer gesperrt")
    assert "Höllenmaschine" in schrodinger.abstract
    assert (schrodinger.year, schrodinger.doi) == (1935, "10.1007/bf01491891")
    assert problems == [
        "entry broken2020 (line 49): cannot be read: 2 unclosed brace(s)",
        "entry empty2021 (line 67): no title, arXiv id or DOI: nothing to find the paper by",
    ]


def test_bibtex_dblp_and_arxiv_styles() -> None:
    text = r"""
@article{DBLP:journals/corr/VaswaniSPUJGKP17,
  author    = {Ashish Vaswani and Noam Shazeer and Niki Parmar},
  title     = {Attention Is All You Need},
  journal   = {CoRR},
  volume    = {abs/1706.03762},
  year      = {2017},
  eprinttype = {arXiv},
  eprint    = {1706.03762},
}
@misc{gould2006frequency,
      title={Frequency of Hot {J}upiters and Very Hot {J}upiters from the {OGLE-III} Transit
             Surveys},
      author={Andrew Gould and Susan Dorsher and B. Scott Gaudi and Andrzej Udalski},
      year={2006},
      eprint={astro-ph/0601001},
      archivePrefix={arXiv},
      primaryClass={astro-ph}
}
@article{collab,
  title = {Observation of a new particle in the search for the Standard Model Higgs boson},
  author = {{ATLAS Collaboration} and others},
  doi = {10.48550/arXiv.1207.7214},
}
@article{ssrn, title = {A working paper}, eprint = {3456789}, eprinttype = {ssrn}}
"""
    lib = read_bibtex(text)
    assert [(e.arxiv_id, e.doi) for e in lib.entries] == [
        ("1706.03762", None),
        ("astro-ph/0601001", None),
        ("1207.7214", None),  # arXiv's own DOI names the id; no other DOI kept
        (None, None),  # an SSRN eprint is no arXiv id
    ]
    assert lib.entries[0].authors == ("Ashish Vaswani", "Noam Shazeer", "Niki Parmar")
    assert lib.entries[1].title.startswith("Frequency of Hot Jupiters and Very Hot Jupiters")
    assert lib.entries[2].authors == ("ATLAS Collaboration",)  # "others" is nobody
    assert lib.problems == []


def test_bibtex_string_macros_and_an_entry_broken_in_the_middle() -> None:
    text = """@string{ml = {Machine Learning}}
@article{good1, title = {A first paper about learning}, journal = ml, year = 2020}
@article{bad, title = {Missing the comma} year = 2021}
@article{good2, title = {A second paper about learning}, journal = ml, year = 2022}
@article{, title = {No key at all}}
"""
    lib = read_bibtex(text)
    assert [e.title for e in lib.entries] == [
        "A first paper about learning",
        "A second paper about learning",
    ]
    assert [str(p) for p in lib.problems] == [
        "entry bad (line 3): cannot be read: check the commas between fields and the "
        "field = {value} syntax",
        "entry at line 5: no citation key (write @article{key, …)",
    ]


def test_bibtex_macros_defined_in_another_file_are_empty_as_in_bibtex() -> None:
    # journal = IEEE_J_PROC, defined by IEEEabrv.bib and not in the file: the entry was
    # refused ("check the commas between fields") where BibTeX warns and reads it as empty
    fmt, entries, problems = _read("ieee_abbrv.bib")
    assert (fmt, problems) == ("bibtex", [])
    assert [(e.where, e.doi, e.title) for e in entries] == [
        (
            "entry lecun1998 (line 6)",
            "10.1109/5.726791",
            "Gradient-based learning applied to document recognition",
        ),
        (
            "entry he2016 (line 16)",
            "10.1109/cvpr.2016.90",
            "Deep Residual Learning for Image Recognition",
        ),
        (
            "entry krizhevsky2017 (line 24)",
            "10.1145/3065386",
            "ImageNet Classification with Deep Convolutional Neural Networks",
        ),
    ]
    assert entries[0].authors == ("Y. LeCun", "L. Bottou", "Y. Bengio", "P. Haffner")


def test_bibtex_crossref_volumes_give_their_year_and_are_not_papers() -> None:
    # JabRef exports the @proceedings its entries name in `crossref`: the volume was liked as
    # a paper ("Advances in Neural Information Processing Systems 30") and the entries had
    # no year (it is the volume's)
    data = (LIBRARY / "jabref_crossref.bib").read_bytes()
    lib = read_library(data, name="jabref_crossref.bib")
    assert [(e.where, e.title, e.year) for e in lib.entries] == [
        ("entry Vaswani2017 (line 6)", "Attention is All you Need", 2017),
        ("entry Ho2020 (line 13)", "Denoising Diffusion Probabilistic Models", 2020),
        (
            "entry Schrodinger1935 (line 33)",
            "Die gegenwärtige Situation in der Quantenmechanik",
            1935,
        ),
    ]
    assert lib.entries[1].arxiv_id == "2006.11239"
    assert not lib.problems
    volume = "a volume other entries name in their crossref field: they are imported, not it"
    assert [str(p) for p in lib.skipped] == [
        f"entry NIPS2017 (line 21): {volume}",
        f"entry NeurIPS2020 (line 27): {volume}",
    ]
    # an entry's own BibLaTeX `date` is its year: the volume's `year` does not replace it
    bib = b"""@inproceedings{a, title={Paper A}, date={2019-05}, crossref={conf}}
@proceedings{conf, title={Proceedings of Conf}, year={2018}}
"""
    assert [e.year for e in read_library(bib, name="biblatex.bib").entries] == [2019]


def test_zotero_rich_text_and_jats_markup_are_text() -> None:
    # Zotero keeps a title's italics, sub- and superscripts as tags (API, CSL JSON, RIS);
    # they were stored as written ("<i>E. coli</i>"), shown so, and no title matched
    title = 'Growth of <i>E. coli</i> under CO<sub>2</sub> on an <span class="nocase">iPhone</span>'
    abstract = "<jats:title>Abstract</jats:title><jats:p>We grow <i>E. coli</i>.</jats:p>"
    for entry in (
        csl_entry("item 1", {"title": title, "abstract": abstract}),
        zotero_entry("item X", {"title": title, "abstractNote": abstract}),
    ):
        assert not isinstance(entry, Problem)
        assert entry.title == "Growth of E. coli under CO2 on an iPhone"
        assert entry.abstract == "Abstract We grow E. coli."
    # JATS's inline tags are inside words and sentences ("CO 2", "E. coli ." before)
    inline = "<jats:p>CO<jats:sub>2</jats:sub> fixed by <jats:italic>E. coli</jats:italic>."
    entry = csl_entry("item 3", {"title": "CO2", "abstract": inline})
    assert not isinstance(entry, Problem) and entry.abstract == "CO2 fixed by E. coli."
    kept = csl_entry("item 2", {"title": "When a<b and c>d: <script> in titles"})
    assert not isinstance(kept, Problem) and kept.title == "When a<b and c>d: <script> in titles"


def test_malformed_latex_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    # pylatexenc noted every tolerated error at INFO: `paperwire import` of a Mendeley export
    # printed a line per abstract with a stray brace (a 5 MB file: one per 400 entries)
    caplog.set_level(logging.DEBUG)
    assert latex_text("a stray } brace and {an open one") == "a stray  brace and an open one"
    assert not [r for r in caplog.records if r.name.startswith("pylatexenc")]


def test_a_huge_field_is_cut_before_its_latex_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 3.9 MB abstract (one entry) took 140 s of LaTeX conversion in `paperwire import`, for
    # a text then cut to 20,000 characters
    from daemon.ingest.text import ABSTRACT_MAX, RAW_FACTOR, TITLE_MAX
    from daemon.library import read

    seen: list[int] = []

    def measured(value: str) -> str:
        seen.append(len(value))
        return latex_text(value)

    monkeypatch.setattr(read, "latex_text", measured)
    words = r"word $x$ caf\'e " * 300_000
    text = f"@article{{huge, title = {{{words}}}, abstract = {{{words}}}, eprint = {{2101.00001}}}}"
    [entry] = read_bibtex(text).entries
    assert max(seen) <= ABSTRACT_MAX * RAW_FACTOR
    # as long as before: capped, at a word, with "…"
    assert TITLE_MAX - 10 <= len(entry.title) <= TITLE_MAX and entry.title.endswith("…")
    assert ABSTRACT_MAX - 10 <= len(entry.abstract) <= ABSTRACT_MAX
    assert entry.abstract.startswith("word x café word x café")


def test_latex_to_unicode() -> None:
    assert latex_text(r"Schr{\"o}dinger's {$\alpha$-Cat}") == "Schrödinger's α-Cat"
    assert latex_text(r"Erd\H{o}s--R\'enyi graphs \& more") == "Erdős–Rényi graphs & more"
    assert latex_text("plain words stay") == "plain words stay"
    assert latex_text(r"{\texttt{LLaMA}}-style \textsf{Bench}") == "LLaMA-style Bench"
    # with no argument they are nothing (they read "%s", with a warning on stderr)
    assert latex_text(r"The \mbox command") == "The command"
    assert latex_text(r"\texttt") == ""
    # Zotero's BibTeX export of "<think> tokens for O(n^2) a|b": the brackets were lost
    zotero = r"\textless{}think\textgreater{} tokens for O(n\textasciicircum{}2) a\textbar{}b"
    assert latex_text(zotero) == "<think> tokens for O(n^2) a|b"
    assert latex_text(r"gains of 50% and 20\% over {GPT-2}") == "gains of 50% and 20% over GPT-2"
    assert bibtex_names(r"M{\"u}ller, J{\"o}rg and {Barnes and Noble} and Knuth, Jr, Donald") == [
        "Jörg Müller",
        "Barnes and Noble",  # a braced name is one name
        "Donald Knuth Jr",
    ]


def test_ris_export() -> None:
    fmt, entries, problems = _read("zotero_export.ris")
    assert fmt == "ris"
    assert [(e.where, e.arxiv_id, e.doi) for e in entries] == [
        ("record at line 1", "2608.17253", None),  # arXiv DOI and URL: the id
        ("record at line 16", None, "10.1103/physrevb.85.115117"),
        ("record at line 30", None, "10.1007/bf01491891"),
    ]
    assert entries[0].authors == ("Yunhao Yang", "Yuexin Bian", "Yunjie Tian")
    assert entries[0].abstract.startswith("Reasoning emerges")
    assert entries[1].authors[2] == "Zlatko Tešanović"
    assert entries[2].year == 1935
    assert problems == [
        "record at line 41: no title, arXiv id or DOI: nothing to find the paper by",
        "record at line 46: no ER line: the record is cut short",
    ]


def test_ris_journal_and_doi_tags_of_other_exporters() -> None:
    # RefWorks and Google Scholar put the journal in JF ("arXiv preprint arXiv:…"), older
    # EndNote the DOI in M3: the arXiv id and the DOI were missed, the papers stored as titles
    fmt, entries, problems = _read("refworks_endnote.ris")
    assert (fmt, problems) == ("ris", [])
    assert [(e.where, e.arxiv_id, e.doi) for e in entries] == [
        ("record at line 1", "2002.05709", None),
        ("record at line 10", None, "10.5555/birmingham.1963"),
    ]
    # RIS writes a suffix last ("Last, First, Suffix"), BibTeX in the middle ("Last, Jr, First")
    assert entries[1].authors == ("Martin Luther King Jr.", "Ralph Abernathy")


def test_ris_with_one_space_before_the_dash() -> None:
    # "TY - JOUR": an RIS download copied from the browser (HTML shows two spaces as one), or
    # a tool that writes it so (Zotero reads it): it was read as a list of ids, "no arXiv id
    # or DOI in 'TY - JOUR'" for every line, and the titles lost
    fmt, entries, problems = _read("one_space.ris")
    assert (fmt, problems) == ("ris", [])
    assert [(e.where, e.arxiv_id, e.doi, e.authors) for e in entries] == [
        (
            "record at line 1",
            None,
            "10.1103/physrevb.85.115117",
            ("James M. Murray", "Adrian Del Maestro"),
        ),
        ("record at line 10", "2608.16590", None, ("Xin Ding",)),
    ]
    assert entries[0].title.startswith("Quantum Criticality for Extended Nodes")


def test_ris_note_citing_another_paper_does_not_name_the_record() -> None:
    # Zotero exports an item's notes as N1: a note citing arXiv:1409.0473 made "Attention Is
    # All You Need" that paper (its own arXiv DOI and URL came after), and the import liked
    # Bahdanau et al.'s paper instead; a note is the record's id only when it starts with
    # one ("arXiv:2608.17253 [cs]", as in zotero_export.ris)
    fmt, entries, problems = _read("zotero_note.ris")
    assert (fmt, problems) == ("ris", [])
    assert [(e.where, e.arxiv_id, e.doi) for e in entries] == [
        ("record at line 1", "1706.03762", None),
        ("record at line 16", None, "10.1103/physrevb.85.115117"),
    ]
    for note in ("arXiv:2608.17253 [cs]", "arXiv: 2608.17253", "<p>2608.17253v2</p>"):
        ris = f"TY  - JOUR\nTI  - A paper known by its note\nN1  - {note}\nER  - \n"
        assert read_library(ris.encode(), name="n").entries[0].arxiv_id == "2608.17253"


def test_ris_record_without_end_before_the_next() -> None:
    text = "TY  - JOUR\nTI  - First title of a paper\nTY  - JOUR\nTI  - Second title\nER  - \n"
    lib = read_library(text.encode(), name="x.ris")
    assert [e.title for e in lib.entries] == ["Second title"]
    assert [str(p) for p in lib.problems] == [
        "record at line 1: no ER line before the next record (line 3): the record is cut short"
    ]


def test_csl_json_export() -> None:
    fmt, entries, problems = _read("zotero_export.json")
    assert fmt == "csl-json"
    assert [(e.arxiv_id, e.doi, e.year) for e in entries] == [
        ("2608.18565", None, 2026),
        (None, "10.1007/bf01491891", 1935),
        (None, None, 2024),
    ]
    assert entries[0].where == "item 1 (http://zotero.org/users/1234567/items/8XKQ2ZJD)"
    assert entries[0].authors == ("Yanlun Tu", "Huacan Wang", "Ziyue Zhou")
    assert entries[2].authors == ("Working Group on Open Science",)
    assert problems == [
        "item 4 (ITEM-4): no title, arXiv id or DOI: nothing to find the paper by",
        "item 5: not a JSON object",
    ]


def test_csl_json_names_keep_their_particles_and_suffix() -> None:
    # pandoc (`pandoc refs.bib -t csljson`) and citation.js split "van der Waals" into a
    # particle and a family name: the particle was dropped ("Johannes Diderik Waals"), and
    # the suffix too
    fmt, entries, problems = _read("pandoc_csl.json")
    assert (fmt, problems) == ("csl-json", [])
    assert entries[0].authors == (
        "Johannes Diderik van der Waals",
        "Carlos de la Fuente",
        "Martin Luther King Jr.",
    )


def test_csv_exports_of_zotero_and_google_scholar() -> None:
    # read as a list of ids before: the paper an abstract cites (arXiv:1409.0473) was liked,
    # the DOI of a quoted cell missed ("…Limit","Physical Review B","","","10.1103/…"), the
    # titles lost, and every row without an arXiv id refused
    fmt, entries, problems = _read("zotero_export.csv")
    assert fmt == "csv"
    assert [(e.where, e.arxiv_id, e.doi, e.year) for e in entries] == [
        ("row 2 (8XK2PQ4M)", "1706.03762", None, 2017),
        ("row 3 (ZB6T3C9E)", None, "10.1103/physrevb.85.115117", 2012),
        ("row 4 (J4F7RR2N)", None, None, 1935),
    ]
    assert entries[0].title == "Attention Is All You Need"
    assert entries[0].authors == ("Ashish Vaswani", "Noam Shazeer", "Niki Parmar")
    assert entries[1].authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tešanović")
    assert entries[0].abstract.startswith("The dominant sequence transduction models")
    assert entries[2].title == "Die gegenwärtige Situation in der Quantenmechanik"
    assert problems == ["row 5 (Q9W8E7R6): no title, arXiv id or DOI: nothing to find the paper by"]

    fmt, entries, problems = _read("scholar_export.csv")
    assert (fmt, problems) == ("csv", [])
    assert [(e.where, e.arxiv_id, e.title, e.authors, e.year) for e in entries] == [
        (
            "row 2",
            None,
            "Attention is all you need",
            ("A Vaswani", "N Shazeer", "N Parmar"),
            2017,
        ),
        (
            "row 3",
            "2002.05709",
            "A simple framework for contrastive learning of visual representations",
            ("T Chen", "S Kornblith", "M Norouzi"),
            2020,
        ),
    ]


def test_arxiv_id_list() -> None:
    fmt, entries, problems = _read("ids.txt")
    assert fmt == "arxiv"
    assert [(e.where, e.arxiv_id) for e in entries] == [
        ("line 2", "2608.16590"),
        ("line 3", "2608.17253"),
        ("line 4", "1111.2011"),
        ("line 5", "astro-ph/0601001"),
        ("line 5", "2608.18565"),
    ]
    assert problems == ["line 6: no arXiv id or DOI in '2608.1659'"]
    lines = "10.1038/nature14539 Deep learning\n<https://doi.org/10.1103/PhysRevB.85.115117>\n"
    assert [(e.where, e.doi) for e in read_library(lines.encode(), name="dois").entries] == [
        ("line 1", "10.1038/nature14539"),
        ("line 2", "10.1103/physrevb.85.115117"),
    ]


def test_detection_and_override() -> None:
    assert detect_format(" \n[{}]") == "csl-json"
    assert detect_format('{\n  "items": []}') == "csl-json"
    assert detect_format("[]") == "csl-json"
    assert detect_format("[1] arXiv:2401.01234\n[2] arXiv:2312.00752\n") == "arxiv"
    assert detect_format("% comment\n  @Article{x, title={y}}") == "bibtex"
    assert detect_format("TY  - JOUR\nER  - \n") == "ris"
    assert detect_format("TY - JOUR\nER - \n") == "ris"
    assert detect_format("2401.01234\n") == "arxiv"
    assert detect_format('"Key","Item Type","Title"\n"A1","preprint","x"\n') == "csv"
    assert detect_format("Title;Authors;Year\n") == "csv"  # Excel where 0,5 is a number
    assert detect_format("title ideas, to read\n2401.01234\n") == "arxiv"
    # a BibTeX file that happens to start with a JSON-like line, read as BibTeX when told so
    text = b"[draft]\n@misc{k, title={A paper told by its format}, eprint={2401.01234}}\n"
    assert read_library(text, name="f", fmt="bibtex").entries[0].arxiv_id == "2401.01234"
    with pytest.raises(LibraryError, match="--format 'endnote': give one of arxiv, bibtex"):
        read_library(b"x", name="f", fmt="endnote")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.7\n\x00\x01binary", "mylib: this is a binary file"),
        (b"[{'title': 'single quotes'}]", "mylib: not valid JSON (line 1, column 3"),
        (b'{"error": "no items"}', "mylib: JSON, but not a list of CSL items"),
        (b"just some notes\nabout nothing\n", "mylib: found no arXiv id, DOI, BibTeX entry"),
        # "no paper found in this list of arXiv ids" before, for an empty .bib or .ris
        (b"", "mylib: the file is empty"),
        (b"\xef\xbb\xbf\r\n  \r\n", "mylib: the file is empty"),
        (b"@comment{only a comment}\n", "mylib: no paper found in this BibTeX file"),
        # a RecursionError before: the page's "Something went wrong", the command a traceback
        (b"[" * 100_000 + b"]" * 100_000, "mylib: its JSON is nested too deeply"),
    ],
)
def test_unreadable_files_are_one_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(LibraryError) as e:
        read_library(data, name="mylib")
    assert str(e.value).startswith(message)
    assert "export the library as BibTeX, RIS or CSL JSON" in str(e.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_libraries_are_read_with_or_without_a_bom(encoding: str) -> None:
    # EndNote's "Unicode" export: it was refused as a binary file (its NULs)
    text = "@article{k, title = {Über die Quantenmechanik der Elektronen}, year = 1928}\n"
    lib = read_library(text.encode(encoding), name="endnote.bib")
    assert lib.entries[0].title == "Über die Quantenmechanik der Elektronen"
    json_text = '[{"title": "Zoë’s paper", "DOI": "10.1/x"}]'
    assert read_library(json_text.encode(encoding), name="x.json").entries[0].title == "Zoë’s paper"
    # characters whose low byte is NUL (一 U+4E00, 退 U+9000, the ideographic space U+3000)
    cjk = '[{"title": "统一的深度学习框架　退化模型", "DOI": "10.1/y"}]'
    assert read_library(cjk.encode(encoding), name="y.json").entries[0].title.startswith("统一")
    assert read_library(json_text.encode(encoding), name="x.json").entries[0].title == "Zoë’s paper"


def test_latin1_bibtex_is_read() -> None:
    text = "@article{k, title = {Über die Quantenmechanik der Elektronen}, year = 1928}\n"
    lib = read_library(text.encode("cp1252"), name="old.bib")
    assert lib.entries[0].title == "Über die Quantenmechanik der Elektronen"


def test_zotero_items() -> None:
    """The `data` of items as the Zotero web API returns them (preprint, journal article)."""
    preprint = {
        "key": "8XKQ2ZJD",
        "itemType": "preprint",
        "title": "Co-RL: Unsupervised Reasoning Emerges from Diverse Cohort in Multi-agent RL",
        "creators": [
            {"creatorType": "author", "firstName": "Yunhao", "lastName": "Yang"},
            {"creatorType": "author", "firstName": "Yuexin", "lastName": "Bian"},
            {"creatorType": "editor", "firstName": "Ed", "lastName": "Itor"},
        ],
        "abstractNote": "Reasoning emerges.",
        "repository": "arXiv",
        "archiveID": "arXiv:2608.17253",
        "date": "2026-08-19",
        "DOI": "10.48550/arXiv.2608.17253",
        "url": "http://arxiv.org/abs/2608.17253",
        "extra": "arXiv:2608.17253 [cs]",
    }
    entry = zotero_entry("item 8XKQ2ZJD", preprint)
    assert isinstance(entry, Entry)
    assert (entry.arxiv_id, entry.doi, entry.year) == ("2608.17253", None, 2026)
    assert entry.authors == ("Yunhao Yang", "Yuexin Bian")  # editors are no authors
    article = {
        "itemType": "journalArticle",
        "title": "Die gegenwärtige Situation in der Quantenmechanik",
        "creators": [{"creatorType": "author", "name": "Erwin Schrödinger"}],
        "publicationTitle": "Naturwissenschaften",
        "date": "1935",
        "DOI": "",
        "extra": "DOI: 10.1007/BF01491891",
    }
    entry = zotero_entry("item 2", article)
    assert isinstance(entry, Entry)
    assert (entry.arxiv_id, entry.doi, entry.authors) == (
        None,
        "10.1007/bf01491891",
        ("Erwin Schrödinger",),
    )


# ---- arXiv ids in any text --------------------------------------------------------------------

NEW_STYLE = st.builds(
    lambda yy, mm, n: f"{yy:02d}{mm:02d}." + (f"{n:05d}" if yy >= 15 else f"{n % 10000:04d}"),
    st.integers(7, 29),
    st.integers(1, 12),
    st.integers(1, 99999),
).filter(plausible_id)
OLD_STYLE = st.builds(
    lambda archive, yy, mm, n: f"{archive}/{yy:02d}{mm:02d}{n:03d}",
    st.sampled_from(["hep-th", "astro-ph", "math", "cond-mat", "quant-ph", "math.GT", "cs.LG"]),
    st.sampled_from([91, 95, 99, 0, 3, 7]),
    st.integers(1, 12),
    st.integers(1, 999),
)
FORMS = st.sampled_from(
    [
        "{id}",
        "{id}v{v}",
        "arXiv:{id}",
        "arXiv:{id}v{v}",
        "https://arxiv.org/abs/{id}",
        "https://arxiv.org/abs/{id}v{v}",
        "http://arxiv.org/pdf/{id}v{v}.pdf",
        "https://arxiv.org/pdf/{id}",
        "https://arxiv.org/html/{id}v{v}",
        "({id})",
        "[arXiv:{id}],",
    ]
)
WORDS = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz,;.!?()", min_size=1, max_size=8), max_size=3
).map(" ".join)


def _canonical(arxiv_id: str) -> str:
    if "/" in arxiv_id:
        archive, number = arxiv_id.split("/")
        return f"{archive.split('.')[0]}/{number}"
    return arxiv_id


@given(
    st.lists(
        st.tuples(st.one_of(NEW_STYLE, OLD_STYLE), FORMS, st.integers(1, 30), WORDS), max_size=6
    )
)
def test_ids_are_found_in_any_form_in_any_text(
    refs: list[tuple[str, str, int, str]],
) -> None:
    text = " ".join(f"{words} {form.format(id=i, v=v)} {words}" for i, form, v, words in refs)
    expected = list(dict.fromkeys(_canonical(i) for i, _, _, _ in refs))
    assert arxiv_ids_in(text) == expected
    # the same on one line each, as a list file is read
    lines = "\n".join(form.format(id=i, v=v) for i, form, v, _ in refs)
    found = read_library(lines.encode(), name="ids", fmt="arxiv").entries if refs else []
    assert list(dict.fromkeys(e.arxiv_id for e in found)) == expected


@given(st.one_of(NEW_STYLE, OLD_STYLE), st.integers(1, 99))
def test_a_version_never_matters(arxiv_id: str, version: int) -> None:
    assert arxiv_ids_in(f"{arxiv_id}v{version}") == arxiv_ids_in(arxiv_id) == [_canonical(arxiv_id)]


@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,8}\Z"),  # prices, versions, measurements
        st.from_regex(r"\A[0-9]{4}\.[0-9]{6,9}\Z"),  # too many digits
        st.from_regex(r"\A[0-9]{2}(1[3-9]|[2-9][0-9]|00)\.[0-9]{4,5}\Z"),  # no such month
        st.from_regex(r"\A10\.[0-9]{4}/[A-Za-z]+\.[0-9]{4}\.[0-9]{4,5}\Z"),  # a journal's DOI
        st.from_regex(r"\A[a-z]+/[0-9]{4}\.[0-9]{5}\Z"),  # inside a path
    )
)
def test_numbers_that_are_no_ids_are_not_found(text: str) -> None:
    assert arxiv_ids_in(f"see {text} here") == []


def test_json_export_with_items_wrapper() -> None:
    data = {
        "items": [
            {"title": "Wrapped in an items object, as some tools do", "DOI": "10.1038/nature14539"}
        ]
    }
    lib = read_library(json.dumps(data).encode(), name="w.json")
    assert [(e.title, e.doi) for e in lib.entries] == [
        ("Wrapped in an items object, as some tools do", "10.1038/nature14539")
    ]


def test_a_bibtex_entry_closed_early_by_a_stray_brace_is_reported_not_cut() -> None:
    """`title = {…}},` ends the entry at the second brace, and bibtexparser reads the rest
    as a comment: the paper was imported as its title alone, its arXiv id and authors lost,
    and nothing said so. A comment or note after an entry's end is no field, and stays fine."""
    text = """@article{vaswani2017,
  title = {Attention Is All You Need}},
  author = {Vaswani, Ashish and Shazeer, Noam},
  eprint = {1706.03762},
  year = {2017}
}

@article{he2016, title = {Deep Residual Learning}, author = {He, Kaiming},
  doi = {10.1109/CVPR.2016.90}}
Read again in May, the {residual} idea = good.

@misc(paren2020, title = {A {Braced} (Parenthesised) Entry}, eprint = {2001.00001})
"""
    lib = read_bibtex(text)
    assert [str(p) for p in lib.problems] == [
        "entry vaswani2017 (line 1): cannot be read whole: the '}' on line 2 closes "
        "the entry before its fields author, eprint, year: remove that brace"
    ]
    assert [(e.title, e.doi, e.arxiv_id) for e in lib.entries] == [
        ("Deep Residual Learning", "10.1109/cvpr.2016.90", None),
        ("A Braced (Parenthesised) Entry", None, "2001.00001"),
    ]
