"""Interest shares with the DEFAULT configuration (cf-map learned from the libraries, not the
text fallback), on real CiteULike papers of five fields (tests/data/citeulike-small/fields)."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime

import numpy as np
import pytest

from recommender import Doc, Feedback, Like, Recommender, RecommenderConfig
from recommender.interests import _share_order
from tests.recommender.conftest import DATA

FIELDS_DATA = DATA / "fields"
NOW = datetime(2024, 5, 1, tzinfo=UTC)
# title patterns the papers of the five fields were selected by
FIELDS = {
    "social": r"social network",
    "phylo": r"phylogen",
    "protein": r"protein (fold|structure)",
    "micro": r"microarray",
    "neuro": r"\b(neuron|neural|cortex|cortical)",
}


def field_of(doc: Doc) -> str:
    return next(k for k, pat in FIELDS.items() if re.search(pat, doc.title.lower()))


@pytest.fixture(scope="module")
def corpus() -> dict[str, Doc]:
    out = {}
    for line in (FIELDS_DATA / "items.jsonl").read_text(encoding="utf-8").splitlines():
        o = json.loads(line)
        out[o["id"]] = Doc(o["id"], o["title"], o.get("abstract") or "", tuple(o["authors"]))
    return out


@pytest.fixture(scope="module")
def by_field(corpus: dict[str, Doc]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {k: [] for k in FIELDS}
    for d in corpus.values():
        out[field_of(d)].append(d.id)
    return out


@pytest.fixture(scope="module")
def field_libraries() -> list[Feedback]:
    by_user: dict[str, list[str]] = {}
    for line in (FIELDS_DATA / "likes.tsv").read_text(encoding="utf-8").splitlines():
        u, i = line.split()
        by_user.setdefault(u, []).append(i)
    return [Feedback(u, likes=tuple(Like(i) for i in items)) for u, items in by_user.items()]


def _fit(corpus: dict[str, Doc], libs: list[Feedback], cfg: RecommenderConfig) -> Recommender:
    r = Recommender(cfg)
    r.fit(list(corpus.values()), libs)
    return r


@pytest.fixture(scope="module")
def default_rec(corpus: dict[str, Doc], field_libraries: list[Feedback]) -> Recommender:
    return _fit(corpus, field_libraries, RecommenderConfig())


@pytest.fixture(scope="module")
def no_interests(corpus: dict[str, Doc], field_libraries: list[Feedback]) -> Recommender:
    return _fit(corpus, field_libraries, RecommenderConfig(interest_topics=0))


def _top_fields(r: Recommender, corpus: dict[str, Doc], fb: Feedback, k: int = 10) -> list[str]:
    recs = r.rank(list(corpus.values()), [fb], k=k, now=NOW, known=corpus)[fb.user_id]
    assert len(recs) == k and all(x.reason for x in recs)  # the daemon path: explained
    return [field_of(corpus[x.doc_id]) for x in recs]


def test_default_config_learns_interest_topics(default_rec: Recommender) -> None:
    assert default_rec.learned  # cf-map, not the text fallback
    f = default_rec._fitted
    assert f is not None and f.topics is not None and f.factors is not None
    n_topics, rank = f.topics.shape
    assert 2 <= n_topics <= RecommenderConfig().interest_topics and rank == f.factors.shape[1]
    np.testing.assert_allclose(np.linalg.norm(f.topics, axis=1), 1.0, rtol=1e-3)
    again = Recommender.loads(default_rec.dumps())._fitted
    assert again is not None and again.topics is not None


def _in_main_topic(r: Recommender, corpus: dict[str, Doc], ids: list[str]) -> list[str]:
    """The papers of a field that sit in the field's main interest topic (the topic holding
    most of them): a reader who liked these has that one interest, whatever the clustering."""
    topics = r.topic_of([corpus[i] for i in ids])
    main = max(set(topics), key=lambda t: (topics.count(t), -t))
    return [i for i, t in zip(ids, topics, strict=True) if t == main]


def test_every_field_has_a_topic_of_its_own(
    default_rec: Recommender, corpus: dict[str, Doc], by_field: dict[str, list[str]]
) -> None:
    # five fields, nine topics (one per 50 liked papers): a sound clustering gives each field
    # its own main topic, holding at least a third of the field's liked papers
    f = default_rec._fitted
    assert f is not None and f.factor_row is not None
    main = {}
    for name, ids in by_field.items():
        liked = [i for i in ids if f.factor_row[f.index[i]] >= 0]
        topics = default_rec.topic_of([corpus[i] for i in liked])
        main[name] = max(set(topics), key=topics.count)
        assert topics.count(main[name]) >= len(liked) / 3, (name, topics)
    assert len(set(main.values())) == len(FIELDS), main


@pytest.mark.parametrize(
    ("major", "minor", "n_major", "n_minor"),
    [("social", "phylo", 8, 4), ("micro", "social", 6, 6), ("protein", "micro", 6, 6)],
)
def test_two_field_reader_gets_both_fields(
    default_rec: Recommender,
    corpus: dict[str, Doc],
    by_field: dict[str, list[str]],
    major: str,
    minor: str,
    n_major: int,
    n_minor: int,
) -> None:
    liked = (
        _in_main_topic(default_rec, corpus, by_field[major])[:n_major]
        + _in_main_topic(default_rec, corpus, by_field[minor])[:n_minor]
    )
    fb = Feedback("two", likes=tuple(Like(i) for i in liked))
    fields = _top_fields(default_rec, corpus, fb)
    assert fields.count(major) >= 3 and fields.count(minor) >= 3, fields
    # every prefix holds both: the minor field is not pushed to the end of the digest
    assert minor in fields[:3] and major in fields[:3], fields


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_single_field_reader_stays_in_the_field(
    default_rec: Recommender,
    no_interests: Recommender,
    corpus: dict[str, Doc],
    by_field: dict[str, list[str]],
    name: str,
) -> None:
    cands = list(corpus.values())
    # ten papers of one field, whatever their topics (a field may span two): all in the field
    fb = Feedback("one", likes=tuple(Like(i) for i in by_field[name][:10]))
    with_shares = default_rec.rank(cands, [fb], k=10, now=NOW, known=corpus)["one"]
    assert [field_of(corpus[x.doc_id]) for x in with_shares] == [name] * 10
    # ten papers of one topic: one interest, exactly the digest without interests
    one = _in_main_topic(default_rec, corpus, by_field[name])[:10]
    assert len(one) == 10
    fb = Feedback("one", likes=tuple(Like(i) for i in one))
    today = no_interests.rank(cands, [fb], k=10, now=NOW, known=corpus)["one"]
    assert default_rec.rank(cands, [fb], k=10, now=NOW, known=corpus)["one"] == today


def test_interest_batches_agree(
    default_rec: Recommender,
    corpus: dict[str, Doc],
    by_field: dict[str, list[str]],
    field_libraries: list[Feedback],
) -> None:
    two = [
        Feedback(f"{x}+{y}", likes=tuple(Like(i) for i in by_field[x][:6] + by_field[y][:4]))
        for x, y in [("social", "phylo"), ("micro", "social"), ("protein", "micro")]
    ]
    users = [*two, *(fb for fb in field_libraries if len(fb.likes) >= 6)][:20]
    small = Recommender(dataclasses.replace(default_rec.config, batch_size=3))
    small._fitted = default_rec._fitted
    cands = list(corpus.values())
    a = default_rec.rank(cands, users, k=10, now=NOW, known=corpus, explain=False)
    b = small.rank(cands, users, k=10, now=NOW, known=corpus, explain=False)
    assert a == b  # exact: scores do not depend on the batch (recommender.exact)


def test_share_order_interleaves_by_share() -> None:
    # interest 0 (2 of 3 likes) owns candidates 0–5, interest 1 (1 of 3) owns 6–8
    groups = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1, 0.1, 0.1],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.4, 0.3],
        ]
    )
    order = _share_order(groups, np.array([2.0, 1.0])).tolist()
    assert order == [0, 6, 1, 2, 7, 3, 4, 8, 5]
    # a thin interest: once its candidates run out, the others fill the digest
    thin = _share_order(groups[:, [0, 1, 2, 3, 6]], np.array([1.0, 1.0])).tolist()
    assert thin == [0, 4, 1, 2, 3]


def test_interest_topics_are_named_and_name_far_picks(
    default_rec: Recommender, corpus: dict[str, Doc], by_field: dict[str, list[str]]
) -> None:
    """Each topic has a label from its papers' words; a pick far in text from every liked
    paper says which of the reader's interests it comes from."""
    labels = default_rec._topic_labels()
    assert len(labels) >= 2 and all(labels)
    liked = _in_main_topic(default_rec, corpus, by_field["micro"])[:6]
    fb = Feedback("far", likes=tuple(Like(i) for i in liked))
    # candidates of another field only: the best of them are still far from microarrays
    others = [corpus[i] for i in by_field["social"]]
    recs = default_rec.rank(others, [fb], k=10, now=NOW, known=corpus)["far"]
    far = [r for r in recs if r.reason.startswith("From your interest in ")]
    assert far
    topic = default_rec.topic_of([corpus[liked[0]]])[0]
    for r in far:
        assert r.reason.removeprefix("From your interest in ") in labels
    assert any(r.reason.endswith(labels[topic]) for r in far)
