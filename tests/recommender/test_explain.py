"""Explanations: shared terms worth naming (no academic filler, bigrams first), and a pick far
from every liked paper explained by the reader's interest instead of a weak "close to"."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from notifications.render import readable
from recommender import Doc, Feedback, Like, Recommendation, Recommender
from recommender.exact import LEFT_BITS, RIGHT_BITS, on_grid
from recommender.explain import (
    FAR_SIMILARITY,
    _by_user_and_column,
    _closest_in_factors,
    _pair_sims,
    _shorten,
)
from recommender.terms import (
    _readable_terms,
    _readable_terms_of_rows,
    _surface,
    _surfaces,
    _words,
    academic_stopwords,
)
from tests.recommender.conftest import CONFIGS, topic

NOW = datetime(2024, 5, 1, tzinfo=UTC)
FOLDING = ("117", "1315", "2721", "4340")  # four CiteULike papers on protein folding


def _fitted(terms: list[str], authors: int = 0) -> Any:
    return SimpleNamespace(terms=np.array(terms + [""] * authors), n_word_features=len(terms))


def test_the_stop_list_is_data_and_holds_the_filler_of_academic_prose() -> None:
    stop = academic_stopwords()
    assert {"furthermore", "general", "better", "users", "propose", "results"} <= stop
    assert not {"protein", "graph", "networks", "folding", "learning"} & stop


def test_filler_words_are_never_named() -> None:
    f = _fitted(["furthermore", "users", "general", "better", "proposed method", "ab", "2019"])
    cols = np.arange(7)
    assert _readable_terms(cols, np.ones(7), f, 3) == []
    f = _fitted(["users", "mobile users", "graph", "better"])
    assert _readable_terms(np.arange(4), np.array([0.9, 0.1, 0.5, 0.8]), f, 3) == [
        "mobile users",  # a bigram with one meaningful word is named
        "graph",
    ]


def test_bigrams_come_before_single_words() -> None:
    f = _fitted(["graph", "networks", "neural networks", "message passing", "passing", "x"], 1)
    cols = np.arange(7)
    vals = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.0, 5.0])  # the author column is heaviest
    assert _readable_terms(cols, vals, f, 3) == ["neural networks", "message passing", "graph"]
    assert _readable_terms(cols, vals, f, 1) == ["neural networks"]
    # bigrams that continue each other are one phrase; one sharing a word otherwise is not named
    f = _fitted(["small world", "world network", "network model", "world models"])
    vals = np.array([0.3, 0.5, 0.4, 0.45])
    assert _readable_terms(np.arange(4), vals, f, 3) == ["small world network model"]


def test_a_liked_title_is_never_cut_inside_latex() -> None:
    # cut inside the math, the reason read "Close to “Tight regret bounds of order $O(√(d T
    # log…” you liked)" once made readable
    title = r"Tight regret bounds of order $\widetilde{O}(\sqrt{d T \log K})$ for linear bandits"
    assert _shorten(title, 60) == "Tight regret bounds of order…"
    assert readable(f"Close to “{_shorten(title, 60)}” you liked").endswith("” you liked")
    math = r"Sorting networks that achieve $\mathcal{O}(n \log n)$ comparisons in streams"
    assert _shorten(math, 60) == r"Sorting networks that achieve $\mathcal{O}(n \log n)$…"
    assert _shorten("A plain title that goes on and on beyond sixty characters, yes", 60) == (
        "A plain title that goes on and on beyond sixty characters…"
    )
    # a dollar or brace that opens nothing closed later is no LaTeX: the cut is where it was
    money = "$100 budget: training language models on consumer hardware, with care"
    assert _shorten(money, 60) == "$100 budget: training language models on consumer…"
    brace = "Smileys :-{ in the titles of papers scraped from the web at a large scale"
    assert _shorten(brace, 60) == "Smileys :-{ in the titles of papers scraped from the web…"
    # a group no macro opens is plain text (CiteULike and BibTeX titles are often all in one)
    yeast = "{The yeast protein interaction network evolves rapidly and contains few redundant}"
    assert _shorten(yeast, 60) == "{The yeast protein interaction network evolves rapidly and…"
    root = r"Bounds of \sqrt{d T \log K} regret, and \frac{1}{2 + \epsilon} for bandits"
    assert _shorten(root, 25) == "Bounds of…"
    assert _shorten(root, 50) == r"Bounds of \sqrt{d T \log K} regret, and…"


def test_bigrams_that_continue_each_other_are_one_phrase() -> None:
    # "shared: luttinger liquid, carlo simulations, quantum monte" (demo digest) and
    # "shared: large language" read as fragments
    f = _fitted(["luttinger liquid", "carlo simulations", "quantum monte", "monte carlo",
                 "simulations", "large language", "language models", "models"])  # fmt: skip
    vals = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert _readable_terms(np.arange(8), vals, f, 3) == [
        "luttinger liquid",
        "quantum monte carlo simulations",
        "large language models",
    ]
    # a word is never repeated; at most six words, and no fragment of a longer chain is named
    f = _fitted(["deep neural", "neural network", "network training", "training data",
                 "data deep"])  # fmt: skip
    assert _readable_terms(np.arange(5), np.ones(5), f, 3) == ["deep neural network training data"]
    f = _fitted(["large scale", "scale quantum", "quantum monte", "monte carlo", "carlo path",
                 "path integral", "integral simulations", "helium"])  # fmt: skip
    assert _readable_terms(np.arange(8), np.ones(8), f, 3) == [
        "large scale quantum monte carlo path",
        "helium",
    ]
    # an abbreviation after its words is not a word of the phrase
    f = _fitted(["large language", "language models", "models llms", "metamorphic testing",
                 "testing mt"])  # fmt: skip
    assert _readable_terms(np.arange(5), np.ones(5), f, 3) == [
        "large language models",
        "metamorphic testing",
    ]
    # nor, after a part of the words it abbreviates, a term of its own ("shared: models llms,
    # relations mrs" in the demo): the words before it are named when they make a phrase
    f = _fitted(["models llms", "relations mrs", "language models", "graph"])
    assert _readable_terms(np.array([0, 1, 3]), np.ones(3), f, 3) == ["graph"]
    assert _readable_terms(np.arange(4), np.ones(4), f, 3) == ["language models", "graph"]
    f = _fitted(["test set", "neural networks", "networks gans", "graph"])
    assert _readable_terms(np.arange(4), np.ones(4), f, 3) == [
        "test set",  # "set" abbreviates nothing: a word with a vowel after a single one
        "neural networks gans",  # "gans" might be a word: kept
        "graph",
    ]
    # words that end in the initials of the words before them are words all the same
    f = _fitted(["review evidence", "evidence core", "network analysis", "analysis dna"])
    assert _readable_terms(np.arange(4), np.ones(4), f, 3) == [
        "review evidence core",
        "network analysis dna",
    ]


def test_a_shared_term_is_named_as_the_paper_writes_it() -> None:
    # the vectorizer's bigrams skip stop words and read across punctuation: "communities
    # practice", "chip seq data", "generation sequencing", "models llms" were named as such
    doc = Doc(
        "p",
        "CULTIVATING COMMUNITIES OF PRACTICE IN NEXT-GENERATION SEQUENCING",
        "ChIP-seq data of RNA polymerase II and large language models (LLMs). Code generation. "
        "Test suites of peer-to-peer systems, and Protein Folding.",
    )
    w = _words(doc, CONFIGS["text"])
    # a title in capitals is read in lower case (else "COMMUNITIES OF PRACTICE")
    assert _surface(w, "communities practice") == "communities of practice"
    assert _surface(w, "generation sequencing") == "next-generation sequencing"
    assert _surface(w, "chip seq data") == "ChIP-seq data"
    assert _surface(w, "rna polymerase ii") == "RNA polymerase II"
    assert _surface(w, "peer systems") == "peer-to-peer systems"
    assert _surface(w, "protein folding") == "protein folding"
    assert _surface(w, "llms") == "LLMs"
    # across a sentence's end or a parenthesis: no phrase of the paper, not named
    assert _surface(w, "generation test") is None
    assert _surface(w, "models llms") is None
    # not found in order (a phrase joined from bigrams; another tokenizer): named as it was
    assert _surface(w, "protein folding sequencing") == "protein folding sequencing"
    assert _surface(w, "graph") == "graph"
    cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
    texts: dict[int, Any] = {}
    key = (7, "generation test", "chip seq data", "communities practice", "ChIP-seq data")
    shown = _surfaces(cache, texts, doc, key, CONFIGS["text"])
    assert shown == ("ChIP-seq data", "communities of practice")  # each once
    assert cache == {key: shown} and list(texts) == [7]  # the paper's words read once
    # a word another term shows hyphenated to it is not named twice ("ChIP-seq data, ChIP")
    again: tuple[Any, ...] = (7, "seq data", "chip", "llms")
    assert _surfaces(cache, texts, doc, again, CONFIGS["text"]) == ("ChIP-seq data", "LLMs")


def test_a_term_the_paper_writes_in_a_hyphenated_compound_is_named_as_that_compound() -> None:
    # on the 233 papers of a "trending papers" page (pre-training), 191 of 3,103 shared terms
    # were parts of a compound: "sparse pre" and "dense fine" of SPDF's "Sparse Pre-training
    # and Dense Fine-tuning", "trade" of "trade-off", "modal" of "multi-modal"
    doc = Doc(
        "p",
        "SPDF: Sparse Pre-training and Dense Fine-tuning for Large Language Models",
        "A trade-off of multi-modal and state-of-the-art Llama-3-Physician-8B-Instruct models. "
        "Llama-3-8B. "
        "Modality-aware experts: one modality. Pre-training and fine-tuning of ChIP-seq data.",
    )
    w = _words(doc, CONFIGS["text"])
    assert _surface(w, "sparse pre") == "sparse pre-training"
    assert _surface(w, "dense fine") == "dense fine-tuning"
    assert _surface(w, "pre training dense") == "pre-training and dense"
    assert _surface(w, "training dense fine") == "pre-training and dense fine-tuning"
    assert _surface(w, "trade") == "trade-off"
    assert _surface(w, "modal") == "multi-modal"
    assert _surface(w, "art") == "state-of-the-art"
    assert _surface(w, "modality") == "modality"  # written alone too: named so
    assert _surface(w, "chip") == "ChIP-seq"
    # a compound longer than GAP_WORDS + 1 words on a side is not cut in its middle: the next
    # place is named, or the word alone
    assert _surface(w, "llama") == "llama-3-8B"
    assert _surface(w, "physician") == "physician"
    cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
    key = (1, "sparse pre", "pre training", "seq data", "chip", "trade")
    shown = _surfaces(cache, {}, doc, key, CONFIGS["text"])
    # a term another term holds is not named again ("sparse pre-training, pre-training")
    assert shown == ("sparse pre-training", "ChIP-seq data", "trade-off")


def test_a_title_in_capitals_is_read_after_the_abstract() -> None:
    doc = Doc("p", "RNA POLYMERASE II IN HARTREE–FOCK THEORY", "Yeast RNA polymerase II binds.")
    w = _words(doc, CONFIGS["text"])
    assert _surface(w, "rna polymerase ii") == "RNA polymerase II"  # the abstract's capitals
    assert _surface(w, "fock theory") == "hartree–fock theory"  # an en dash joins, as a hyphen
    assert _surface(w, "hartree") == "hartree–fock"  # the title's, in lower case, whole
    alone = _words(Doc("q", "DEEP LEARNING"), CONFIGS["text"])
    assert _surface(alone, "deep learning") == "deep learning"


def test_a_quote_or_a_spaced_dash_ends_a_phrase() -> None:
    # a straight quote was read as an apostrophe and a spaced dash as a hyphen: "folding
    # 'speed" (of "The protein folding 'speed limit'", in tests/data), "networks - a survey"
    doc = Doc(
        "p",
        "The protein folding 'speed limit'",
        "Graph networks - a survey. Deep models – trained on 'speed limit' experiments. "
        "Users' preferences in Alzheimer's disease, Hartree--Fock theory and input/output.",
    )
    w = _words(doc, CONFIGS["text"])
    assert _surface(w, "folding speed") is None
    assert _surface(w, "limit experiments") is None
    assert _surface(w, "networks survey") is None
    assert _surface(w, "models trained") is None
    # an apostrophe in a word or a plural's, a hyphen, an en dash or a slash joins
    assert _surface(w, "users preferences") == "users' preferences"
    assert _surface(w, "alzheimer disease") == "alzheimer's disease"
    assert _surface(w, "hartree fock") == "hartree--fock"
    assert _surface(w, "input output") == "input/output"


def test_a_term_in_latex_math_or_with_decomposed_accents_is_named() -> None:
    # "$\gamma$-ray" or "$\Lambda$CDM" read as a phrase's end: the vectorizer's "gamma ray",
    # "lambda cdm" (named before) were left out; so was "poincare map" in decomposed Unicode
    # (NFD: a combining accent is no word character and ended the word)
    doc = Doc(
        "p",
        "Poincare\u0301 maps",
        r"Observations of $\gamma$-ray bursts in the $\Lambda$CDM model and $\alpha$ helix "
        r"folding. The $x$. Test of $k$-means clustering.",
    )
    w = _words(doc, CONFIGS["text"])
    assert _surface(w, "gamma ray") == "gamma-ray"
    assert _surface(w, "lambda cdm") == "LambdaCDM"
    assert _surface(w, "alpha helix") == "alpha helix"
    assert _surface(w, "ray bursts") == "gamma-ray bursts"  # hyphenated as "next-generation"
    assert _surface(w, "means clustering") == "k-means clustering"
    assert _surface(w, "poincare maps") == "poincare\u0301 maps"
    assert _surface(w, "helix folding") == "helix folding"
    assert _surface(w, "folding test") is None  # "$x$. Test": a sentence's end still


def test_the_terms_of_many_rows_are_those_of_each_row() -> None:
    f = _fitted(["graph", "networks", "neural networks", "message passing", "passing", "x",
                 "users", "small world", "world network", "network model"], 1)  # fmt: skip
    rng = np.random.default_rng(3)
    dense = rng.random((40, 11)) * (rng.random((40, 11)) < 0.5)
    dense[5] = 0.0  # a row with no shared term
    dense[7] = 0.0
    dense[7, :4] = 0.25  # equal weights: in column order
    m = sp.csr_matrix(dense)
    for limit in (0, 1, 3):
        rows = _readable_terms_of_rows(m, f, limit)
        assert rows == [
            _readable_terms(m.indices[a:z], m.data[a:z], f, limit)
            for a, z in zip(m.indptr[:-1], m.indptr[1:], strict=True)
        ]
    assert rows[5] == []
    assert rows[7] == ["neural networks", "message passing", "graph"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_terms_of_many_long_rows_are_those_of_each_row(dtype: type) -> None:
    # rows with many single words and bigrams sharing words: the single words past a row's
    # first `limit` are dropped before the bigrams are chosen (float32 weights, as the
    # explanations' products: sorted by their bits; others by value)
    words = [f"w{i:02d}x" for i in range(30)]
    rng = np.random.default_rng(5)
    bigrams = {" ".join(rng.choice(words, size=2, replace=False)) for _ in range(40)}
    f = _fitted(words + sorted(bigrams) + ["users", "2019"], 2)
    n_cols = len(f.terms)
    dense = rng.random((200, n_cols)) * (rng.random((200, n_cols)) < 0.3)
    dense[::7, 30:] = 0.0  # some rows without bigrams
    dense[3, :] = 0.5  # all equal: column order
    m = sp.csr_matrix(dense.astype(dtype))
    for limit in (1, 2, 3, 5):
        assert _readable_terms_of_rows(m, f, limit) == [
            _readable_terms(m.indices[a:z], m.data[a:z], f, limit)
            for a, z in zip(m.indptr[:-1], m.indptr[1:], strict=True)
        ]


def test_far_picks_of_a_user_share_one_product_with_the_bits_of_each() -> None:
    rng = np.random.default_rng(8)
    fac = rng.standard_normal((50, 16))
    fac[7] = fac[3]  # equal rows: the first of equals
    qc = on_grid(rng.standard_normal((20, 16)), RIGHT_BITS)
    slot_lists = [rng.choice(50, size=n, replace=False) for n in (5, 1, 12, 8)]
    slot_lists[3][:2] = [3, 7]
    group = np.array([0, 0, 1, 2, 2, 2, 3, 3])
    all_picks = rng.integers(0, 20, size=len(group)).tolist()
    rows = np.array([0, 1, 2, 3, 5, 6, 7])  # the far ones (pick 4 is near)
    items = SimpleNamespace(fac=fac)
    ctx = SimpleNamespace(cand_factors=lambda: qc)
    got = _closest_in_factors(rows, group, slot_lists, all_picks, items, ctx)  # type: ignore[arg-type]
    expected = [
        int(np.argmax(on_grid(fac[slot_lists[group[q]]], LEFT_BITS) @ qc[all_picks[q]]))
        for q in rows
    ]
    assert got.tolist() == expected


def _all(rec: Recommender, docs: dict[str, Doc], users: list[Feedback]) -> list[Recommendation]:
    out = rec.rank(list(docs.values()), users, k=10, now=NOW, known=docs)
    return [r for recs in out.values() for r in recs]


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_explanations_on_real_papers_name_no_filler(
    method: str, docs: dict[str, Doc], libraries: list[Feedback]
) -> None:
    rec = Recommender(CONFIGS[method])
    rec.fit(list(docs.values()), libraries)
    stop = academic_stopwords()
    recs = _all(rec, docs, libraries)
    assert any(r.shared_terms for r in recs)
    for r in recs:
        for term in r.shared_terms:
            words = term.split()
            assert not (set(words) <= stop), r.reason
        for filler in (" furthermore", " general,", " better", " users"):
            assert filler not in r.reason.split("—")[-1], r.reason


def test_a_far_pick_is_explained_by_the_interest_it_comes_from(text_rec: Recommender) -> None:
    docs = {d.id: d for d in _docs_of(text_rec)}
    fb = Feedback("fa", likes=tuple(Like(i) for i in FOLDING))
    # candidates from another field: no liked paper is close to any of them in text (social
    # networks were, once "network" was a word of both)
    others = [docs[i] for i in topic(docs, "microarray")[:5]]
    recs = text_rec.rank(others, [fb], k=3, now=NOW, known=docs)["fa"]
    assert recs
    for r in recs:
        sim = _cosine(text_rec, docs[r.doc_id], docs[r.closest_liked_id or ""])
        assert sim < FAR_SIMILARITY
        assert r.reason.startswith("From your interest in "), r.reason
        # named by words of the liked papers: "protein folding" (it was "speed limit", of "The
        # protein folding 'speed limit'", while "protein" and "folding" were pruned, in more
        # than a tenth of these 80 papers)
        assert r.reason == "From your interest in protein folding"
        words = r.reason.removeprefix("From your interest in ").replace(" and ", " ").split()
        liked_text = " ".join(docs[i].title.lower() for i in FOLDING)
        assert words and all(w in liked_text for w in words), r.reason
        assert "Close to" not in r.reason and r.shared_terms == ()
    # the same reader's near picks still name the liked paper
    near = text_rec.rank(list(docs.values()), [fb], k=2, now=NOW, known=docs)["fa"]
    assert all(r.reason.startswith("Close to “") for r in near)


def test_an_interest_is_named_by_the_words_its_papers_share(text_rec: Recommender) -> None:
    from recommender.terms import _group_label

    f = text_rec._require()
    docs = {d.id: d for d in _docs_of(text_rec)}
    social = topic(docs, "social network")[:6]
    rows = text_rec.vectorize([docs[i] for i in social])
    label = _group_label(rows, f)
    assert label and all(
        w in " ".join(docs[i].title.lower() for i in social) for w in label.split()
    )
    assert not set(label.replace(" and ", " ").split()) & academic_stopwords()


def _docs_of(rec: Recommender) -> list[Doc]:
    from tests.recommender.conftest import _docs

    return list(_docs().values())


def _cosine(rec: Recommender, a: Doc, b: Doc) -> float:
    return float(rec.vectorize([a]).multiply(rec.vectorize([b])).sum())


@pytest.mark.parametrize("sorted_rows", [True, False])
def test_pair_similarities_are_scipys_bit_for_bit(sorted_rows: bool) -> None:
    rng = np.random.default_rng(11)

    def rows(n: int, cols: int, density: float) -> sp.csr_matrix:
        m = sp.random(n, cols, density=density, format="csr", dtype=np.float32, rng=rng)
        if not sorted_rows:  # as the vectorizer leaves them: columns in no order
            for a, z in zip(m.indptr[:-1], m.indptr[1:], strict=True):
                perm = rng.permutation(z - a)
                m.indices[a:z], m.data[a:z] = m.indices[a:z][perm], m.data[a:z][perm]
            m.has_sorted_indices = False
        return m

    text = rows(300, 400, 0.3)  # up to ~150 shared columns: numpy's pairwise sums
    picks = rows(40, 400, 0.4)
    slot_lists = [rng.choice(300, size=rng.integers(1, 30)) for _ in range(7)]
    group = np.sort(rng.integers(0, 7, size=40))
    group[:7] = np.arange(7)
    group.sort()
    pp = np.repeat(np.arange(40), [len(slot_lists[g]) for g in group])
    ps = np.concatenate([slot_lists[g] for g in group])
    expected = np.asarray(picks[pp].multiply(text[ps]).sum(axis=1)).ravel()
    got = _pair_sims(picks, group, text, slot_lists)
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


def test_entries_are_ordered_by_user_then_column_whatever_the_sizes() -> None:
    rng = np.random.default_rng(2)
    user = np.sort(rng.integers(0, 9, size=500))
    col = rng.integers(0, 300, size=500).astype(np.int32)
    expected = np.lexsort((col, user))  # stable: equal entries keep their order
    assert _by_user_and_column(user, col, 300).tolist() == expected.tolist()
    assert _by_user_and_column(user, col, 100_000).tolist() == expected.tolist()  # one sort


def test_a_phrase_joined_from_bigrams_is_named_only_as_the_pick_writes_it() -> None:
    # "generation sequencing" and "sequencing data" are shared, and continue each other: they
    # were named "generation sequencing data", words the pick (below, from CiteULike) never
    # writes together; now its longest parts the pick writes whole are named, as written
    doc = Doc(
        "p",
        "Optimal spliced alignments of short sequence reads",
        "Next-generation sequencing technologies open exciting new possibilities. We map "
        "massive amounts of sequencing data with splice site predictions. Personal "
        "information management helps management systems.",
    )
    cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
    key = (3, "generation sequencing data", "splice site predictions")
    shown = _surfaces(cache, {}, doc, key, CONFIGS["text"])
    assert shown == ("next-generation sequencing", "sequencing data", "splice site predictions")
    whole = (5, "personal information management systems")
    named = ("personal information management", "management systems")
    assert _surfaces({}, {}, doc, whole, CONFIGS["text"]) == named
    # a part across a sentence's end is not named; all of them: nothing is
    part = Doc("q", "Protein folding", "Folding. Sequencing of genomes.")
    one = (4, "folding sequencing genomes")
    assert _surfaces({}, {}, part, one, CONFIGS["text"]) == ("sequencing of genomes",)
    gone = Doc("r", "Protein folding", "Folding. Sequencing. Genomes.")
    assert _surfaces({}, {}, gone, (8, "folding sequencing genomes"), CONFIGS["text"]) == ()
    # no more terms than the reason names (`reason_terms`)
    many = (6, "generation sequencing data", "splice site predictions", "short sequence reads")
    assert len(_surfaces({}, {}, doc, many, CONFIGS["text"])) == CONFIGS["text"].reason_terms
