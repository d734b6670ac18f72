"""Followed keywords do not crowd out the papers learned from likes: keyword hits hold at most
`keyword_share` of every prefix of a digest, unless the reader has no likes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest

from recommender import Doc, Feedback, Like, Recommendation, Recommender
from recommender.selection import KEYWORD_SHARE, _capped

NOW = datetime(2024, 5, 1, tzinfo=UTC)
FOLDING = ("117", "1315", "2721", "4340")  # four CiteULike papers on protein folding


def _hits(recs: list[Recommendation], docs: dict[str, Doc], word: str) -> list[bool]:
    text = [(docs[r.doc_id].title + " " + docs[r.doc_id].abstract).lower() for r in recs]
    return [re.search(rf"\b{word}\b", t) is not None for t in text]


def _rank(
    rec: Recommender, docs: dict[str, Doc], fb: Feedback, keyword_share: float = KEYWORD_SHARE
) -> list[Recommendation]:
    cands = list(docs.values())
    out = rec.rank(cands, [fb], k=10, now=NOW, known=docs, keyword_share=keyword_share)
    return out[fb.user_id]


def test_keyword_hits_hold_at_most_their_share_of_every_prefix(
    rec: Recommender, docs: dict[str, Doc]
) -> None:
    fb = Feedback("kw", likes=tuple(Like(i) for i in FOLDING), keywords=("social",))
    assert sum("social" in (d.title + d.abstract).lower() for d in docs.values()) > 12
    unlimited = _rank(rec, docs, fb, keyword_share=1.0)
    assert [r.kind for r in unlimited] == ["followed"] * 10  # the crowding this prevents
    recs = _rank(rec, docs, fb)  # the default share: 0.5
    assert KEYWORD_SHARE == 0.5 and len(recs) == 10
    kinds = [r.kind for r in recs]
    assert kinds.count("followed") == 5
    for n in range(1, 11):  # every prefix: a digest cut at any length keeps the share
        assert kinds[:n].count("followed") <= 0.5 * n
    learned = [r for r in recs if r.kind == "similar"]
    plain = _rank(rec, docs, Feedback("kw", likes=fb.likes))
    others = [
        r.doc_id for r, hit in zip(plain, _hits(plain, docs, "social"), strict=True) if not hit
    ]
    assert [r.doc_id for r in learned] == others[: len(learned)]
    assert [r.doc_id for r in recs if r.kind == "followed"] == [r.doc_id for r in unlimited][:5]
    none = _rank(rec, docs, fb, keyword_share=0.0)
    assert "followed" not in [r.kind for r in none]


def test_a_reader_without_likes_gets_every_keyword_hit(
    rec: Recommender, docs: dict[str, Doc]
) -> None:
    fb = Feedback("cold", keywords=("social",))
    recs = _rank(rec, docs, fb)
    assert [r.kind for r in recs] == ["followed"] * 10


def test_followed_authors_are_not_capped(rec: Recommender, docs: dict[str, Doc]) -> None:
    author = next(a for d in docs.values() for a in d.authors if a)
    fb = Feedback("au", likes=tuple(Like(i) for i in FOLDING), authors=(author,))
    assert _rank(rec, docs, fb)[0].kind == "followed"


def test_capped_order() -> None:
    hit = np.zeros(10, dtype=bool)
    hit[:6] = True
    picks = [0, 1, 2, 3, 4, 5, 6, 7, 8]  # hits first, as their bonus puts them
    assert _capped(picks, hit, 0.5, 6) == [6, 0, 7, 1, 8, 2]
    assert _capped(picks, hit, 0.5, 9) == [6, 0, 7, 1, 8, 2, 3, 4, 5]  # the rest ran out
    assert _capped(picks, hit, 1.0, 3) == [0, 1, 2]
    assert _capped(picks, hit, 0.0, 4) == [6, 7, 8, 0]
    assert _capped(picks, hit, 1 / 3, 6) == [6, 7, 0, 8, 1, 2]


def test_keyword_share_is_checked(rec: Recommender, docs: dict[str, Doc]) -> None:
    with pytest.raises(ValueError, match="keyword_share"):
        _rank(rec, docs, Feedback("x"), keyword_share=1.5)
