"""Which candidates a followed keyword or author matches: the indexed lookups give what a search
of every candidate's text and authors gives (the definition, written out here), for the real
CiteULike papers and for made-up texts and keys of any characters."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recommender import Doc, Recommender, context
from recommender.context import Candidates
from recommender.features import (
    _author_tokens,
    _doc_text,
    _fold,
    _followed_author_key,
    _keyword_fold,
    _surname_key,
    _surname_keys,
)


def _searched(cands: Candidates, word: str) -> np.ndarray:
    """The definition: the folded key stands in the folded title and abstract with no letter
    a–z or digit right before or after it, any run of spaces and hyphens as one space (folded:
    LaTeX read, accents and case folded, Greek letters by name, `_keyword_fold`)."""

    def spaced(text: str) -> str:
        return re.sub(r"[\s\-‐‑‒–]+", " ", text)

    key = spaced(_keyword_fold(word)).strip()
    pat = re.compile(r"(?<![a-z0-9])" + re.escape(key) + r"(?![a-z0-9])")
    texts = [spaced(_keyword_fold(_doc_text(d, True))) for d in cands.cands]
    return np.array([bool(key) and pat.search(t) is not None for t in texts], dtype=bool)


def _by_author(cands: Candidates, name: str) -> np.ndarray:
    """The definition: an author with a key of the surname in common (its last word, or the
    surname written as one word), and the same initial when both have one (a followed surname
    of several words alone has none)."""
    keys, initial = _followed_author_key(name)
    return np.array(
        [
            bool(keys[0])
            and any(
                set(keys) & set(a_keys) and (not initial or not a_init or a_init == initial)
                for a_keys, a_init in map(_surname_keys, d.authors)
            )
            for d in cands.cands
        ],
        dtype=bool,
    )


def test_every_title_word_and_author_of_the_real_papers(
    rec: Recommender, docs: dict[str, Doc]
) -> None:
    cands = rec.candidates(list(docs.values()))
    words = {w for d in docs.values() for w in re.findall(r"\S+", d.title)}
    pairs = {" ".join(d.title.split()[i : i + 2]) for d in docs.values() for i in range(3)}
    checked = 0
    for word in sorted(words | pairs | {"", "  ", "α", "x-ray", "c++", "(", "2d"}):
        want = _searched(cands, word)
        assert np.array_equal(cands.keyword_mask(word), want), word
        checked += int(want.any())
    assert checked > 600  # of 634 keys: the lookups were put to work
    names = {a for d in docs.values() for a in d.authors}
    for name in sorted(names | {"", "Smith", "J. Smith", "Smith, J", "Müller, K"}):
        assert np.array_equal(cands.author_mask(name), _by_author(cands, name)), name


def test_spaces_and_hyphens_between_the_words_of_a_keyword_are_alike(rec: Recommender) -> None:
    # a follow of "self supervised" missed every "self-supervised" abstract (and the other
    # way round; "fine-tuning" and "fine tuning" alike)
    docs = [
        Doc("1", "Self-supervised learning of speech"),
        Doc("2", "Self supervised fine tuning"),
        Doc("3", "Self‐supervised (U+2010) pretraining"),
        Doc("4", "Supervised learning by itself"),
    ]
    cands = rec.candidates(docs)
    for key in ("self-supervised", "self supervised", "Self - Supervised"):
        assert cands.keyword_mask(key).tolist() == [True, True, True, False], key
    assert cands.keyword_mask("fine-tuning").tolist() == [False, True, False, False]


def test_a_followed_author_matches_however_either_side_writes_the_name(rec: Recommender) -> None:
    # "Del Maestro, Adrian" (as BibTeX writes it) never matched the arXiv API's "Adrian Del
    # Maestro": a comma form kept the whole surname ("delmaestro"), the other its last word
    docs = [
        Doc("1", "Superfluid helium in nanopores", authors=("Adrian Del Maestro",)),
        Doc("2", "Luttinger liquids", authors=("Del Maestro, A.",)),
        Doc("3", "Visualizing data using t-SNE", authors=("van der Maaten, Laurens",)),
        Doc("4", "Literate programming", authors=("Knuth, Jr, Donald",)),
        Doc("5", "Another Maestro", authors=("Bruno Maestro",)),
    ]
    cands = rec.candidates(docs)
    for name in ("Del Maestro, Adrian", "Adrian Del Maestro", "A. Del Maestro"):
        assert cands.author_mask(name).tolist() == [True, True, False, False, False], name
    assert cands.author_mask("Laurens van der Maaten").tolist() == [0, 0, 1, 0, 0]
    assert cands.author_mask("Donald Knuth").tolist() == [0, 0, 0, 1, 0]


def test_a_name_suffix_is_neither_surname_nor_first_name(rec: Recommender) -> None:
    # "S. James Gates, Jr." (arXiv's way) was read as "Last, First": surname Gates, initial
    # J, so a follow of "Jane Gates" matched him and one of "S. James Gates" did not
    docs = [
        Doc("1", "Supersymmetry", authors=("S. James Gates, Jr.",)),
        Doc("2", "Adinkras", authors=("Gates Jr., S. J.",)),
        Doc("3", "Gauge fields", authors=("Sylvester Gates III",)),
        Doc("4", "Nothing to do", authors=("Jane Gates",)),
    ]
    cands = rec.candidates(docs)
    for name in ("S. James Gates", "Gates, S. James", "S. James Gates Jr.", "Gates, Jr., S."):
        assert cands.author_mask(name).tolist() == [True, True, True, False], name
    assert cands.author_mask("Jane Gates").tolist() == [False, False, False, True]


def test_a_followed_author_written_in_chinese_japanese_or_korean_matches_that_name(
    rec: Recommender,
) -> None:
    # the key of a name was its Latin letters: "张三" had none, so a follow of him matched
    # nothing (nor did his papers give the author features a token)
    docs = [
        Doc("1", "A", authors=("张三", "李四")),
        Doc("2", "B", authors=("张伟",)),  # the same family name, another person
        Doc("3", "C", authors=("李三",)),
        Doc("4", "D", authors=("山田太郎",)),
        Doc("5", "E", authors=("김철수",)),
        Doc("6", "F", authors=("Zhang San",)),
    ]
    cands = rec.candidates(docs)
    assert cands.author_mask("张三").tolist() == [1, 0, 0, 0, 0, 0]
    assert cands.author_mask("李四").tolist() == [1, 0, 0, 0, 0, 0]
    assert cands.author_mask("张").tolist() == [0, 0, 0, 0, 0, 0]  # a family name alone
    assert cands.author_mask("山田 太郎").tolist() == [0, 0, 0, 1, 0, 0]  # with a space or not
    assert cands.author_mask("김철수").tolist() == [0, 0, 0, 0, 1, 0]
    assert cands.author_mask("Zhang San").tolist() == [0, 0, 0, 0, 0, 1]
    assert _author_tokens(docs[0]) == ["张三_", "李四_"]
    # the author tokens and the follows read a name alike: a library's BibTeX "Del Maestro,
    # Adrian" and arXiv's "Adrian Del Maestro" are one token (they were "delmaestro_a" and
    # "maestro_a"; the surname whole since "Le Cun" is "LeCun")
    both = Doc("7", "G", authors=("Del Maestro, Adrian", "Adrian Del Maestro"))
    assert _author_tokens(both) == ["delmaestro_a", "delmaestro_a"]


TEXT = st.text(st.sampled_from("ab0 -.,é'αﬁXß+\u0301"), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=8), keys=st.lists(TEXT, max_size=6))
@example(texts=["a-b ab a"], keys=["a-b", "b a", "ab", "a b", " a"])
@example(texts=["ﬁx é0 fix"], keys=["fix", "e0", "é", "ﬁ"])
@example(texts=["a--b a b", "a - -b"], keys=["a-b", "a  b", "-b", "a -"])
def test_any_text_and_key(rec: Recommender, texts: list[str], keys: list[str]) -> None:
    docs = [Doc(str(i), t, t[::-1], (t, t[:3])) for i, t in enumerate(texts)]
    cands = rec.candidates(docs)
    # keys cut from the texts too, so that there are matches to find
    for key in keys + [t[i : i + 4] for t in texts for i in range(0, len(t), 3)]:
        assert np.array_equal(cands.keyword_mask(key), _searched(cands, key)), key
        assert np.array_equal(cands.author_mask(key), _by_author(cands, key)), key


@given(st.text() | st.text(st.characters(max_codepoint=127)))
@example("Ångström ﬁx Straße")
@example("Deep Learning: A-B 2D")
def test_folding_ascii_text_only_lowers_it(text: str) -> None:
    """Accents dropped (NFKD, no combining marks), lower case; ASCII text takes a short cut."""
    spelled = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()
    assert _fold(text) == spelled


def test_the_masks_kept_are_bounded(
    rec: Recommender, docs: dict[str, Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tens of thousands of subscribers' own keywords do not pile up: the oldest mask goes;
    looked up again, it is the same."""
    monkeypatch.setattr(context, "MASKS_KEPT", 3)
    cands = rec.candidates(list(docs.values()))
    words = ["protein", "network", "social", "gene expression", "learning"]
    first = {w: cands.keyword_mask(w).copy() for w in words}
    for name in ["Smith", "Wang", "Li", "Chen"]:
        cands.author_mask(name)
    assert list(cands._kw) == ["social", "gene expression", "learning"]
    assert list(cands._au) == ["Wang", "Li", "Chen"]
    assert all(np.array_equal(cands.keyword_mask(w), first[w]) for w in words)
    assert sum(int(m.any()) for m in first.values()) >= 4


def test_a_keyword_matches_titles_written_in_latex_as_the_digest_shows_them(
    rec: Recommender,
) -> None:
    # arXiv titles keep their LaTeX, and the digest shows them readable: a follow of
    # "Schrödinger" (as the digest wrote it) missed "Schr\"odinger" and "Schr{\"o}dinger", and a
    # follow of "gamma-ray bursts" or "γ-ray bursts" missed "$\gamma$-ray bursts"
    docs = [
        Doc("1", r"Solving the Schr\"odinger equation with neural networks"),
        Doc("2", r"Schr{\"o}dinger bridges for generative models"),
        Doc("3", "Schrödinger cats in superconducting circuits"),
        Doc("4", r"Fermi-LAT observations of $\gamma$-ray bursts"),
        Doc("5", "Prompt γ-ray bursts from magnetars"),
        Doc("6", "Gamma-ray bursts: a review"),
        Doc("7", r"Lattice gauge theory at strong coupling \cite{x}"),
    ]
    cands = rec.candidates(docs)
    for key in ("Schrödinger", "schrodinger", r"Schr\"odinger"):
        assert cands.keyword_mask(key).tolist() == [True, True, True] + [False] * 4, key
    assert cands.keyword_mask("Schrödinger equation").tolist() == [True] + [False] * 6
    for key in ("gamma-ray bursts", "γ-ray bursts", r"$\gamma$-ray"):
        assert cands.keyword_mask(key).tolist() == [False] * 3 + [True] * 3 + [False], key
    # a command is no word of the text, nor is the text around it joined
    assert not cands.keyword_mask("cite").any()
    assert cands.keyword_mask("strong coupling").tolist() == [False] * 6 + [True]


def test_a_followed_surname_of_several_words_matches_without_a_given_name(
    rec: Recommender,
) -> None:
    # a follow of "Del Maestro" read "Del" as a given name (initial d) and matched none of
    # Adrian Del Maestro's papers; "de Gennes", "van der Waals" alike
    docs = [
        Doc("1", "Helium in nanopores", authors=("Adrian Del Maestro",)),
        Doc("2", "Luttinger liquids", authors=("Del Maestro, A.",)),
        Doc("3", "Soft matter", authors=("Pierre-Gilles de Gennes",)),
        Doc("4", "Equation of state", authors=("J. D. van der Waals",)),
        Doc("5", "Other work", authors=("Dario Maestro",)),
    ]
    cands = rec.candidates(docs)
    assert cands.author_mask("Del Maestro").tolist() == [True, True, False, False, True]
    assert cands.author_mask("de Gennes").tolist() == [False, False, True, False, False]
    assert cands.author_mask("van der Waals").tolist() == [False, False, False, True, False]
    # a given name still counts where there is one
    assert cands.author_mask("A. Del Maestro").tolist() == [True, True, False, False, False]
    assert cands.author_mask("Dario Maestro").tolist() == [False, False, False, False, True]


def test_a_surname_with_a_letter_nfkd_keeps_whole_is_read_as_its_letters(rec: Recommender) -> None:
    # ø, ł, æ, ß have no accent to take off: "Røgen" was "rgen", so a follow of "Rogen" (as an
    # ASCII keyboard writes it) missed him, and "Łukasz Ład" and "Lukasz Lad" were
    # different people; a name in Cyrillic or Greek letters gave no key at all
    docs = [
        Doc("1", "Persistent homology", authors=("Peter Røgen",)),
        Doc("2", "Sparse models", authors=("Łukasz Ład",)),
        Doc("3", "Vortex lattices", authors=("Lev Landau", "Иванов, И.")),
        Doc("4", "Glaciers", authors=("Guðrún Þórsdóttir", "Mette Strøm")),
        Doc("5", "Unrelated", authors=("Peter Rgen", "M. Strm")),
    ]
    cands = rec.candidates(docs)
    for name in ("Peter Røgen", "Peter Rogen", "Røgen, P."):
        assert cands.author_mask(name).tolist() == [1, 0, 0, 0, 0], name
    assert cands.author_mask("Lukasz Lad").tolist() == [0, 1, 0, 0, 0]
    assert cands.author_mask("I. Ivanov").tolist() == [0, 0, 1, 0, 0]
    assert cands.author_mask("Иванов").tolist() == [0, 0, 1, 0, 0]
    assert cands.author_mask("Gudrun Thorsdottir").tolist() == [0, 0, 0, 1, 0]
    assert cands.author_mask("Mette Strom").tolist() == [0, 0, 0, 1, 0]
    assert _surname_key("Peter Røgen") == ("rogen", "p")
    assert _surname_key("Иванов, Иван") == ("ivanov", "i")


def test_a_surname_written_apart_or_together_and_pubmeds_surname_first_are_one_name(
    rec: Recommender,
) -> None:
    # a follow of "Yann LeCun" (key "lecun") missed "Y. Le Cun" (its last word, "cun") and
    # PubMed's "LeCun Y" (surname "y", given name "LeCun"); "Smith J" was the surname "j"
    docs = [
        Doc("1", "Gradient-based learning", authors=("Y. Le Cun", "L. Bottou")),
        Doc("2", "Backpropagation", authors=("LeCun Y", "Boser B", "Denker JS")),
        Doc("3", "Convolutional networks", authors=("Yann LeCun",)),
        Doc("4", "Handwritten digits", authors=("Le Cun, Yann",)),
        Doc("5", "Other Cun", authors=("Yves Cun",)),
        Doc("6", "Other Smith", authors=("Smith J", "Kim JH")),
        Doc("7", "Astrostatistics", authors=("David A. van Dyk",)),
        Doc("8", "Other Dyk", authors=("D. Dyk",)),
        Doc("9", "Capitals", authors=("Lie XU", "Koushik MV", "Sylvester Gates III")),
    ]
    cands = rec.candidates(docs)
    for name in ("Yann LeCun", "LeCun, Yann", "LeCun Y", "Y. LeCun"):
        assert cands.author_mask(name).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0], name
    # written apart, the last word alone still matches as it did ("Y. Le Cun" and "Yves Cun"
    # are both Y. Cun), and no more: the name written together is not "Cun"
    assert cands.author_mask("Y. Le Cun").tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert cands.author_mask("John Smith").tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert cands.author_mask("Ji-hoon Kim").tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert cands.author_mask("John Denker").tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert cands.author_mask("D. Dyk").tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]  # as before
    assert cands.author_mask("David van Dyk").tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    # a surname in capitals is no initials (it has a vowel), initials without one are
    assert cands.author_mask("Lie Xu").tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert cands.author_mask("M. V. Koushik").tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert cands.author_mask("S. Gates").tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert _surname_key("Smith J") == ("smith", "j")
    assert _surname_key("Van Dyk DC") == ("vandyk", "d")
    assert _surname_key("Smith AE") == ("ae", "s")  # a vowel: read as a surname, as before
    # the author features read the surname whole: one token for the three spellings
    assert {t for d in docs[:4] for t in _author_tokens(d) if t.endswith("_y")} == {"lecun_y"}


def test_a_given_name_of_a_particles_letters_is_no_part_of_the_surname(rec: Recommender) -> None:
    # "Le Song" and "Di Fu" (Hugging Face's papers) are given name and surname: only a particle
    # after a given name, or in the surname of "Last, First", joins the surname
    docs = [
        Doc("1", "Kernels", authors=("Le Song",)),
        Doc("2", "Song, Le", authors=("Song, Le",)),
        Doc("3", "Fu", authors=("Di Fu",)),
        Doc("4", "WaveNet", authors=("Oord, Aaron van den",)),
        Doc("5", "Pixel RNN", authors=("Aaron van den Oord",)),
        Doc("6", "Scaling", authors=("Luis A. Nunes Amaral",)),
        Doc("7", "Networks", authors=("Amaral, L. A. N.",)),
    ]
    cands = rec.candidates(docs)
    assert cands.author_mask("Le Song").tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert cands.author_mask("L. Song").tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert cands.author_mask("D. Fu").tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert cands.author_mask("A. van den Oord").tolist() == [0, 0, 0, 1, 1, 0, 0]
    assert cands.author_mask("Luis Amaral").tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert [_author_tokens(d) for d in docs[3:5]] == [["vandenoord_a"], ["vandenoord_a"]]
    assert [_author_tokens(d) for d in docs[:3]] == [["song_l"], ["song_l"], ["fu_d"]]
