"""`RecommenderConfig`: every knob of the method, with its default, checked when it is made.

The defaults are the method that won on CiteULike coldstart/ (docs/recommender.md has the
figures). `RecommenderConfig` is also importable from `recommender` and `recommender.engine`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

ASL_TOKEN_PATTERN = r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b"
METHODS = ("cf-map", "tfidf-centroid")


class RecommenderConfigError(ValueError, TypeError):
    """A `RecommenderConfig` field outside what the method allows. A ValueError; also a
    TypeError, which is what code building a config from `**options` already catches for an
    unknown field name (the daemon turns it into a message about `recommender.options`)."""


@dataclass(frozen=True)
class RecommenderConfig:
    """Every knob of the method. Defaults are the method that won on CiteULike coldstart/."""

    method: str = "cf-map"  # "cf-map" (text → factors learned from libraries) | "tfidf-centroid"
    # --- text features -------------------------------------------------------------------
    max_features: int | None = 20000
    min_df: int | float = 2
    max_df: int | float = 0.1
    ngram_range: tuple[int, int] = (1, 2)
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    token_pattern: str = ASL_TOKEN_PATTERN
    strip_accents: str | None = "unicode"
    use_abstract: bool = True
    author_weight: float = 0.3  # 0 = authors are not features
    author_min_df: int = 2
    # --- content → collaborative map (needs the libraries passed to `fit`) ----------------
    cf_rank: int = 512  # factors per paper (capped by #libraries − 1 and #liked papers − 1)
    cf_lambda: float = 10.0  # ridge strength of the text → factors map
    cf_popularity_exponent: float = 0.5  # like-matrix columns scaled by popularity^-β
    cf_singular_power: float = 1.0  # regression target = right singular vectors × s^α
    cf_iterations: int = 40  # conjugate-gradient steps of the ridge solve
    cf_prior_likes: float = 0.0  # >0: a paper's factors lean on its text's until it has likes
    cf_min_users: int = 20  # fewer libraries than this → text only
    # the map learns from at most this many libraries (a seeded sample; 0 = all): bounds the
    # fit's time and memory as subscribers grow; papers liked only outside the sample get
    # factors predicted from their text, like new papers
    cf_max_libraries: int = 10_000
    # --- how far each signal is trusted (None: chosen at fit on held-out likes) ------------
    # a profile of n likes = n/(n+m) × its liked papers' learned factors + m/(n+m) × the ones
    # predicted from their text (m = 0: learned only; math.inf: predicted only)
    profile_prior_likes: float | None = None
    text_weight: float | None = None  # score = (1 − w) factor cosine + w TF-IDF cosine
    calibration_holdout: float = 0.2  # share of liked papers held out to choose them (0 = off)
    calibration_seed: int = 0
    # --- profile -------------------------------------------------------------------------
    like_weight: float = 1.0
    dislike_weight: float = 0.5  # Rocchio gamma
    recency_half_life_days: float | None = None  # when likes carry timestamps
    recency_half_life_likes: float | None = None  # otherwise: half-life counted in likes
    # interests (cf-map): the liked papers of all libraries are clustered into this many topics
    # at fit time; a topic holding ≥ min_likes and ≥ min_share of a person's likes is one of
    # their interests, and each interest gets its share of the digest (0 = off)
    interest_topics: int = 32
    interest_min_share: float = 0.25
    interest_min_likes: int = 3
    # interests of the text method (fallback / "tfidf-centroid"): per-person k-means
    max_interests: int = 1  # >1: cluster likes into interests, each gets its share
    likes_per_interest: int = 8  # at least this many likes per extra interest
    # --- selection -----------------------------------------------------------------------
    duplicate_threshold: float = 0.9  # cosine between two picks at/above this → keep one
    mmr_lambda: float = 1.0  # 1 = off; <1 trades relevance for novelty
    keyword_boost: float = 1.0  # scores are in [0, 1]: 1 = a followed match always comes first
    author_boost: float = 1.0
    mute_penalty: float | None = None  # None: muted papers are removed; else subtracted
    shortlist_factor: int = 3  # per-user selection looks at the top factor × k (+ 20)
    reason_terms: int = 3
    reason_title_chars: int = 60
    batch_size: int = 512  # users per matrix product (fewer above 3,000 candidates)

    def __post_init__(self) -> None:
        problems = [_problem(f.name, getattr(self, f.name)) for f in fields(self)]
        if any(problems):
            raise RecommenderConfigError("; ".join(p for p in problems if p))


@dataclass(frozen=True)
class _Rule:
    """What a field allows: a test, and the same in words ("an integer ≥ 1")."""

    ok: Callable[[Any], bool]
    allowed: str


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _integer(lo: int) -> _Rule:
    return _Rule(lambda v: _is_int(v) and v >= lo, f"an integer ≥ {lo}")


def _number(lo: float, hi: float | None = None, *, above: bool = False) -> _Rule:
    """A finite number (an int will do) ≥ lo (> lo with `above`), and ≤ hi if given."""
    if hi is not None:
        return _Rule(lambda v: _is_number(v) and lo <= v <= hi, f"a number in [{lo:g}, {hi:g}]")
    if above:
        return _Rule(lambda v: _is_number(v) and v > lo, f"a number > {lo:g}")
    return _Rule(lambda v: _is_number(v) and v >= lo, f"a number ≥ {lo:g}")


# a float is a share of the corpus, an int a count of papers (scikit-learn's min_df/max_df)
_DOC_FREQUENCY = _Rule(
    lambda v: (_is_int(v) and v >= 1) or (isinstance(v, float) and 0.0 <= v <= 1.0),
    "an integer ≥ 1 (papers) or a float in [0.0, 1.0] (a share of the papers)",
)


def _one_of(*choices: str) -> _Rule:
    words = ", ".join(repr(c) for c in choices)
    return _Rule(lambda v: v in choices, words if len(choices) == 1 else f"one of {words}")


def _optional(rule: _Rule) -> _Rule:
    return _Rule(lambda v: v is None or rule.ok(v), f"None or {rule.allowed}")


def _is_regex(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        re.compile(v)
    except re.error:
        return False
    return True


def _is_ngram_range(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and all(_is_int(n) for n in v) and 1 <= v[0] <= v[1]


_BOOL = _Rule(lambda v: isinstance(v, bool), "True or False")
_SHARE = _number(0, 1)
_WEIGHT = _number(0)

_RULES: dict[str, _Rule] = {
    "method": _one_of(*METHODS),
    "max_features": _optional(_integer(1)),
    "min_df": _DOC_FREQUENCY,
    "max_df": _DOC_FREQUENCY,
    "ngram_range": _Rule(_is_ngram_range, "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
    "sublinear_tf": _BOOL,
    "stop_words": _optional(_one_of("english")),
    "token_pattern": _Rule(_is_regex, "a regular expression (a string)"),
    "strip_accents": _optional(_one_of("ascii", "unicode")),
    "use_abstract": _BOOL,
    "author_weight": _WEIGHT,
    "author_min_df": _integer(1),
    "cf_rank": _integer(1),
    "cf_lambda": _number(0),
    "cf_popularity_exponent": _number(0),
    "cf_singular_power": _number(0),
    "cf_iterations": _integer(1),
    "cf_prior_likes": _number(0),
    "cf_min_users": _integer(0),
    "cf_max_libraries": _integer(0),
    "profile_prior_likes": _optional(
        _Rule(lambda v: (_is_number(v) and v >= 0) or v == math.inf, "a number ≥ 0 or math.inf")
    ),
    "text_weight": _optional(_SHARE),
    "calibration_holdout": _number(0, 0.5),
    "calibration_seed": _integer(0),
    "like_weight": _WEIGHT,
    "dislike_weight": _WEIGHT,
    "recency_half_life_days": _optional(_number(0, above=True)),
    "recency_half_life_likes": _optional(_number(0, above=True)),
    "interest_topics": _integer(0),
    "interest_min_share": _SHARE,
    "interest_min_likes": _integer(1),
    "max_interests": _integer(1),
    "likes_per_interest": _integer(1),
    "duplicate_threshold": _number(0, above=True),
    "mmr_lambda": _SHARE,
    "keyword_boost": _WEIGHT,
    "author_boost": _WEIGHT,
    "mute_penalty": _optional(_WEIGHT),
    "shortlist_factor": _integer(1),
    "reason_terms": _integer(0),
    "reason_title_chars": _integer(1),
    "batch_size": _integer(1),
}


def _problem(name: str, value: Any) -> str:
    """What is wrong with `value` for the field `name` ("" when it is allowed)."""
    rule = _RULES[name]
    if rule.ok(value):
        return ""
    problem = f"{name}: {value!r} is not {rule.allowed}"
    if name == "method" and isinstance(value, str):
        close = difflib.get_close_matches(value, METHODS, n=1, cutoff=0.5)
        if close:
            problem += f" (did you mean {close[0]!r}?)"
    return problem
