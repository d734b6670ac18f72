"""The fit's bounds for big installs: the map learns from a seeded sample of at most
`cf_max_libraries` libraries, and the interest topics from at most TOPIC_MAX_PAPERS papers."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import Feedback, Recommender, RecommenderConfig
from recommender.cfmap import _sample
from recommender.interests import _learn_topics
from tests.recommender.rank_fields import NOW, _corpus, _libraries


def test_the_sample_is_seeded_ordered_and_only_taken_above_the_cap() -> None:
    libs = [np.array([i]) for i in range(50)]
    a, b = _sample(libs, 20), _sample(libs, 20)
    assert len(a) == 20
    assert [int(x[0]) for x in a] == [int(x[0]) for x in b]  # the same every time
    assert [int(x[0]) for x in a] == sorted(int(x[0]) for x in a)  # in their order
    assert _sample(libs, 50) is libs
    assert _sample(libs, 0) is libs


def test_papers_liked_only_outside_the_sample_get_predicted_factors() -> None:
    corpus, libraries = _corpus(), _libraries()
    cap = len(libraries) // 2
    rec = Recommender(RecommenderConfig(cf_max_libraries=cap, cf_min_users=2))
    rec.fit(list(corpus.values()), libraries)
    f = rec._fitted
    assert f is not None and f.factor_row is not None
    learned = {f.ids[i] for i in np.flatnonzero(f.factor_row >= 0)}
    liked = {lk.doc_id for fb in libraries for lk in fb.likes}
    assert learned < liked  # some liked papers were only in libraries left out
    full = Recommender(RecommenderConfig(cf_min_users=2))
    full.fit(list(corpus.values()), libraries)
    assert full._fitted is not None and full._fitted.factor_row is not None
    assert {full._fitted.ids[i] for i in np.flatnonzero(full._fitted.factor_row >= 0)} == liked
    # and it still ranks every reader, the same way twice
    again = Recommender(RecommenderConfig(cf_max_libraries=cap, cf_min_users=2))
    again.fit(list(corpus.values()), libraries)
    readers = [Feedback(fb.user_id, likes=fb.likes[:3]) for fb in libraries[:10]]
    docs = list(corpus.values())[:200]
    first = rec.rank(docs, readers, k=10, now=NOW)
    assert first == again.rank(docs, readers, k=10, now=NOW)
    assert all(len(recs) == 10 for recs in first.values())


def test_topics_of_a_big_install_come_from_a_bounded_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recommender.interests as interests

    seen: list[int] = []
    real = interests._spherical_kmeans_dense

    def spy(x: np.ndarray, m: int, restarts: int = interests.KMEANS_RESTARTS) -> np.ndarray:
        seen.append(x.shape[0])
        return real(x, m, restarts)

    monkeypatch.setattr(interests, "_spherical_kmeans_dense", spy)
    monkeypatch.setattr(interests, "TOPIC_MAX_PAPERS", 300)
    rng = np.random.default_rng(1)
    factors = rng.standard_normal((1000, 8)).astype(np.float32)
    cfg = RecommenderConfig(interest_topics=4)
    topics = _learn_topics(factors, np.ones(8, dtype=np.float32), cfg)
    assert seen == [300] and topics is not None and topics.shape == (4, 8)
    again = _learn_topics(factors, np.ones(8, dtype=np.float32), cfg)
    assert again is not None and np.array_equal(topics, again)
