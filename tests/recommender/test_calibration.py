"""The calibration at fit time (`recommender.calibration`): how far a profile leans on its
papers' learned factors and how much TF-IDF goes into a score, chosen on held-out likes.

Two constructed installs of the same kind — fields of papers whose titles name their field
with a few of its words, and readers who like papers of one field — show the two ends:

* tiny libraries (3 likes, as every young install): a paper's learned factors rest on one or
  two likes and say little, while the map, learned from which words are liked together
  across all libraries, still links the words of a field — the profile must lean on the
  factors predicted from the text;
* full libraries (25 likes) where half the titles name no field at all: who liked a paper
  says its field, its words often do not — the learned factors must be kept.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from recommender import Doc, Feedback, Like, Recommender, RecommenderConfig
from recommender.calibration import FALLBACK_PRIOR_LIKES, FALLBACK_TEXT_WEIGHT
from recommender.profiles import _profile_alpha
from tests.recommender.rank_fields import NOW, _corpus, _libraries

FIELDS = 10
PAPERS_PER_FIELD = 64
COMMON_WORDS = 200  # words of no field
CONFIG = RecommenderConfig(min_df=1)  # the constructed words are rare by design


def _install(
    *, readers: int, likes: int, generic: float, field_words: int, per_title: int
) -> tuple[list[Doc], list[Feedback]]:
    """Papers of FIELDS fields: a title is 3 common words, plus (except for a `generic` share
    of the papers) `per_title` of its field's `field_words` words. Reader r likes `likes`
    papers of field r % FIELDS."""
    rng = np.random.default_rng(0)
    common = [f"common{j}" for j in range(COMMON_WORDS)]
    docs, field = [], []
    for i in range(FIELDS * PAPERS_PER_FIELD):
        f = i % FIELDS
        words = list(rng.choice(common, 3, replace=False))
        if rng.random() >= generic:
            words += [f"field{f}word{j}" for j in rng.choice(field_words, per_title, replace=False)]
        docs.append(Doc(f"p{i:04d}", " ".join(rng.permutation(words))))
        field.append(f)
    of_field = np.asarray(field)
    libraries = []
    for r in range(readers):
        chosen = sorted(rng.choice(np.flatnonzero(of_field == r % FIELDS), likes, replace=False))
        libraries.append(Feedback(f"r{r:03d}", likes=tuple(Like(docs[j].id) for j in chosen)))
    return docs, libraries


def _objective(rec: Recommender, prior: float, text: float) -> float:
    assert rec.calibration is not None
    return {(m, w): o for m, w, o in rec.calibration.table}[prior, text]


@pytest.fixture(scope="module")
def tiny() -> Recommender:
    docs, libraries = _install(readers=400, likes=3, generic=0.3, field_words=60, per_title=3)
    rec = Recommender(CONFIG)
    rec.fit(docs, libraries)
    return rec


@pytest.fixture(scope="module")
def full() -> Recommender:
    docs, libraries = _install(readers=300, likes=25, generic=0.5, field_words=60, per_title=3)
    rec = Recommender(CONFIG)
    rec.fit(docs, libraries)
    return rec


def test_tiny_libraries_turn_the_learned_factors_down(tiny: Recommender) -> None:
    c = tiny.calibration
    assert c is not None and c.users >= 100  # measured, not the fallback
    assert c.profile_prior_likes >= 10  # a 3-like profile: ≤ 3/13 on the learned factors
    assert _profile_alpha(np.array([3]), c.profile_prior_likes)[0] <= 0.25
    # what the held-out likes said: the learned factors alone (m = 0) rank far worse
    assert _objective(tiny, 0.0, 0.0) < c.objective - 0.05


def test_full_libraries_keep_the_learned_factors(full: Recommender) -> None:
    c = full.calibration
    assert c is not None and c.users >= 200
    assert c.profile_prior_likes <= 10  # a 25-like profile: ≥ 25/35 on the learned factors
    assert c.text_weight <= 0.2  # and the score is mostly the map's
    # the factors predicted from the text alone (m = ∞) rank worse on the held-out likes
    assert _objective(full, math.inf, 0.0) < c.objective - 0.01


def test_the_calibration_is_seeded_and_kept_in_the_state(full: Recommender) -> None:
    docs, libraries = _install(readers=300, likes=25, generic=0.5, field_words=60, per_title=3)
    again = Recommender(CONFIG)
    again.fit(docs, libraries)
    assert full.calibration is not None
    assert again.calibration == full.calibration  # table and all, to the last bit
    loaded = Recommender.loads(full.dumps())
    assert loaded.calibration == full.calibration
    readers = libraries[:20]
    assert loaded.rank(docs, readers, k=10, now=NOW) == full.rank(docs, readers, k=10, now=NOW)
    other = Recommender(dataclasses.replace(CONFIG, calibration_seed=1))
    other.fit(docs, libraries)
    assert other.calibration is not None and other.calibration.table != full.calibration.table


def test_values_the_config_fixes_are_kept() -> None:
    corpus, libraries = _corpus(), _libraries()
    fixed = Recommender(RecommenderConfig(profile_prior_likes=3.0, text_weight=0.25))
    fixed.fit(list(corpus.values()), libraries)
    assert fixed.calibration is not None
    assert fixed.calibration[:3] == (3.0, 0.25, 0)  # nothing measured
    # one fixed, one measured: only the other one varies in the table
    half = Recommender(RecommenderConfig(text_weight=0.0))
    half.fit(list(corpus.values()), libraries)
    assert half.calibration is not None and half.calibration.users > 100
    assert half.calibration.text_weight == 0.0
    assert {w for _, w, _ in half.calibration.table} == {0.0}
    assert len({m for m, _, _ in half.calibration.table}) > 1


def test_without_enough_held_out_likes_the_fallback_values_are_used() -> None:
    corpus, libraries = _corpus(), _libraries()
    off = Recommender(RecommenderConfig(calibration_holdout=0))
    off.fit(list(corpus.values()), libraries)
    assert off.calibration is not None
    assert off.calibration[:3] == (FALLBACK_PRIOR_LIKES, FALLBACK_TEXT_WEIGHT, 0)
    few = Recommender(RecommenderConfig(cf_min_users=2))  # a map, but 12 libraries to measure
    few.fit(list(corpus.values()), [fb for fb in libraries if len(fb.likes) >= 2][:12])
    assert few.learned and few.calibration is not None
    assert few.calibration[:3] == (FALLBACK_PRIOR_LIKES, FALLBACK_TEXT_WEIGHT, 0)


def test_the_text_method_has_no_calibration() -> None:
    corpus, libraries = _corpus(), _libraries()
    rec = Recommender(RecommenderConfig(method="tfidf-centroid"))
    rec.fit(list(corpus.values()), libraries)
    assert rec.calibration is None


def test_profile_weight_of_the_learned_factors() -> None:
    n = np.array([1, 3, 25])
    assert _profile_alpha(n, 0.0).tolist() == [1.0, 1.0, 1.0]
    assert _profile_alpha(n, math.inf).tolist() == [0.0, 0.0, 0.0]
    assert _profile_alpha(n, 3.0).tolist() == pytest.approx([0.25, 0.5, 25 / 28])


@pytest.mark.parametrize("prior", [0.0, math.inf])
def test_a_profile_is_the_mean_of_learned_or_of_predicted_factors(prior: float) -> None:
    """m = 0: the cosine of the mean learned factors of the liked papers to the candidates'
    predicted factors (the method before calibration); m = ∞: the same with the liked papers'
    factors predicted from their text. Scores match a float64 computation to the grid's
    precision (`recommender.exact`)."""
    corpus, libraries = _corpus(), _libraries()
    cfg = RecommenderConfig(profile_prior_likes=prior, text_weight=0.0, interest_topics=0)
    rec = Recommender(cfg)
    rec.fit(list(corpus.values()), libraries)
    f = rec._fitted
    assert f is not None and f.factors is not None and f.factor_row is not None
    assert f.singular is not None
    reader = max(libraries, key=lambda fb: len(fb.likes))
    liked = [corpus[lk.doc_id] for lk in reader.likes]
    if prior == 0.0:
        fac = f.factors.astype(np.float64)[[f.factor_row[f.index[d.id]] for d in liked]]
    else:
        fac = rec.predicted_factors(rec.vectorize(liked)) / f.singular**cfg.cf_singular_power
    profile = fac.mean(axis=0)
    profile /= np.linalg.norm(profile)
    cands = [d for d in corpus.values() if d.id not in {x.id for x in liked}]
    q = rec.predicted_factors(rec.vectorize(cands))
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    q /= np.where(norms > 0, norms, 1.0)  # a title of no fitted word: no factors
    expected = dict(zip([d.id for d in cands], q @ profile, strict=True))
    recs = rec.rank(cands, [reader], k=20, now=NOW, explain=False)[reader.user_id]
    assert len(recs) == 20
    for r in recs:
        assert r.score == pytest.approx(expected[r.doc_id], abs=2e-3)
    best = sorted(expected.values(), reverse=True)
    assert min(r.score for r in recs) >= best[19] - 4e-3  # the top 20, up to the grid
