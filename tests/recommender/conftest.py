"""Fixtures: a small real CiteULike subset (tests/data/citeulike-small)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender import Doc, Feedback, Like, Recommender, RecommenderConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "citeulike-small"


def _docs() -> dict[str, Doc]:
    out = {}
    for line in (DATA / "items.jsonl").read_text(encoding="utf-8").splitlines():
        o = json.loads(line)
        out[o["id"]] = Doc(o["id"], o["title"], o.get("abstract") or "", tuple(o["authors"]))
    return out


@pytest.fixture(scope="session")
def docs() -> dict[str, Doc]:
    return _docs()


@pytest.fixture(scope="session")
def libraries(docs: dict[str, Doc]) -> list[Feedback]:
    by_user: dict[str, list[str]] = {}
    for line in (DATA / "likes.tsv").read_text(encoding="utf-8").splitlines():
        u, i = line.split()
        by_user.setdefault(u, []).append(i)
    return [Feedback(u, likes=tuple(Like(i) for i in items)) for u, items in by_user.items()]


def topic(docs: dict[str, Doc], word: str) -> list[str]:
    return [d.id for d in docs.values() if word in d.title.lower()]


CONFIGS = {
    "text": RecommenderConfig(method="tfidf-centroid", min_df=1),
    "cf-map": RecommenderConfig(min_df=1, cf_min_users=2, cf_rank=32, cf_lambda=1.0),
}


@pytest.fixture(scope="session", params=sorted(CONFIGS))
def rec(
    request: pytest.FixtureRequest, docs: dict[str, Doc], libraries: list[Feedback]
) -> Recommender:
    r = Recommender(CONFIGS[request.param])
    r.fit(list(docs.values()), libraries)
    return r


@pytest.fixture(scope="session")
def text_rec(docs: dict[str, Doc]) -> Recommender:
    r = Recommender(CONFIGS["text"])
    r.fit(list(docs.values()))
    return r
