"""`RecommenderConfig` checks its fields when it is made: a wrong type or a value outside the
sensible range is refused with a message naming the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from recommender import RecommenderConfig
from recommender.config import _RULES, RecommenderConfigError
from recommender.evaluate import config_from


def test_the_defaults_are_valid() -> None:
    RecommenderConfig()


def test_a_wrong_method_and_rank_are_both_named() -> None:
    with pytest.raises(ValueError) as e:
        RecommenderConfig(cf_rank="lots", method="cf-mapp")  # type: ignore[arg-type]
    assert str(e.value) == (
        "method: 'cf-mapp' is not one of 'cf-map', 'tfidf-centroid' (did you mean 'cf-map'?); "
        "cf_rank: 'lots' is not an integer ≥ 1"
    )


@pytest.mark.parametrize(
    ("method", "hint"),
    [("tfidf", " (did you mean 'tfidf-centroid'?)"), ("CF-MAP", ""), ("svm", "")],
)
def test_a_wrong_method_gets_a_suggestion_when_one_is_close(method: str, hint: str) -> None:
    with pytest.raises(ValueError) as e:
        RecommenderConfig(method=method)
    assert str(e.value) == f"method: {method!r} is not one of 'cf-map', 'tfidf-centroid'{hint}"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("cf_rank", 0, "an integer ≥ 1"),
        ("cf_rank", 1.5, "an integer ≥ 1"),
        ("cf_rank", True, "an integer ≥ 1"),
        ("cf_rank", "512", "an integer ≥ 1"),
        ("batch_size", 0, "an integer ≥ 1"),
        ("interest_topics", -1, "an integer ≥ 0"),
        ("reason_terms", None, "an integer ≥ 0"),
        ("max_features", 0, "None or an integer ≥ 1"),
        ("mmr_lambda", 1.5, "a number in [0, 1]"),
        ("mmr_lambda", -0.1, "a number in [0, 1]"),
        ("mmr_lambda", math.nan, "a number in [0, 1]"),
        ("text_weight", "0.1", "None or a number in [0, 1]"),
        ("text_weight", 1.5, "None or a number in [0, 1]"),
        ("profile_prior_likes", -1.0, "None or a number ≥ 0 or math.inf"),
        ("profile_prior_likes", math.nan, "None or a number ≥ 0 or math.inf"),
        ("profile_prior_likes", "inf", "None or a number ≥ 0 or math.inf"),
        ("calibration_holdout", 0.6, "a number in [0, 0.5]"),
        ("calibration_seed", -1, "an integer ≥ 0"),
        ("interest_min_share", 2, "a number in [0, 1]"),
        ("cf_lambda", -1.0, "a number ≥ 0"),
        ("cf_lambda", math.inf, "a number ≥ 0"),
        ("author_weight", -0.3, "a number ≥ 0"),
        ("like_weight", -1, "a number ≥ 0"),
        ("keyword_boost", None, "a number ≥ 0"),
        ("duplicate_threshold", 0.0, "a number > 0"),
        ("recency_half_life_days", 0, "None or a number > 0"),
        ("mute_penalty", -5.0, "None or a number ≥ 0"),
        ("min_df", 0, "an integer ≥ 1 (papers) or a float in [0.0, 1.0] (a share of the papers)"),
        ("max_df", 1.5, "an integer ≥ 1 (papers) or a float in [0.0, 1.0] (a share of the papers)"),
        ("ngram_range", (2, 1), "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
        ("ngram_range", (0, 2), "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
        ("ngram_range", (1,), "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
        ("ngram_range", (1, 2.0), "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
        ("ngram_range", [1, 2], "a pair of integers (lo, hi) with 1 ≤ lo ≤ hi"),
        ("sublinear_tf", 1, "True or False"),
        ("stop_words", "french", "None or 'english'"),
        ("strip_accents", "utf8", "None or one of 'ascii', 'unicode'"),
        ("token_pattern", "(", "a regular expression (a string)"),
    ],
)
def test_a_bad_value_is_refused_naming_field_value_and_what_is_allowed(
    field: str, value: Any, allowed: str
) -> None:
    with pytest.raises(ValueError) as e:
        RecommenderConfig(**{field: value})
    assert str(e.value) == f"{field}: {value!r} is not {allowed}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "tfidf-centroid"),
        ("cf_lambda", 10),  # an int where a float is expected (TOML, the eval's overrides)
        ("mmr_lambda", 0),
        ("mmr_lambda", 1.0),
        ("text_weight", 1),
        ("text_weight", None),  # chosen at fit on held-out likes
        ("profile_prior_likes", None),
        ("profile_prior_likes", 0),
        ("profile_prior_likes", 10.0),
        ("profile_prior_likes", math.inf),  # predicted factors only
        ("calibration_holdout", 0),  # calibration off: the fallback values
        ("min_df", 1),
        ("min_df", 0.01),
        ("max_df", 1.0),
        ("max_df", 500),
        ("max_features", None),
        ("ngram_range", (1, 1)),
        ("ngram_range", (1, 3)),
        ("stop_words", None),
        ("strip_accents", "ascii"),
        ("strip_accents", None),
        ("recency_half_life_days", 30),
        ("recency_half_life_likes", 12.5),
        ("mute_penalty", 0),
        ("duplicate_threshold", 1.01),  # above 1: near-duplicate collapse off
        ("interest_topics", 0),  # interests off
        ("cf_rank", np.int64(64)),
        ("cf_lambda", np.float32(3.0)),
        ("reason_terms", 0),
    ],
)
def test_values_in_range_are_accepted(field: str, value: Any) -> None:
    assert getattr(RecommenderConfig(**{field: value}), field) is value


def test_every_field_has_a_rule() -> None:
    assert set(_RULES) == {f.name for f in dataclasses.fields(RecommenderConfig)}


def test_replace_and_the_eval_overrides_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^batch_size: 0 is not an integer ≥ 1$"):
        dataclasses.replace(RecommenderConfig(), batch_size=0)
    with pytest.raises(ValueError, match=r"^cf_rank: 0 is not an integer ≥ 1$"):
        config_from({"cf_rank": "0"})
    assert config_from({"ngram_range": "1-3", "mmr_lambda": "0.5"}).ngram_range == (1, 3)
    # fields whose default is None (chosen at fit) take numbers, math.inf and None
    cfg = config_from({"profile_prior_likes": "inf", "text_weight": "0.2"})
    assert (cfg.profile_prior_likes, cfg.text_weight) == (math.inf, 0.2)
    assert config_from({"profile_prior_likes": "3"}).profile_prior_likes == 3
    assert config_from({"text_weight": "none"}).text_weight is None


def test_the_error_is_also_a_type_error() -> None:
    """Code that builds a config from `**options` catches TypeError for an unknown field name
    (the daemon's `recommender.options`); a bad value reaches the same handler."""
    with pytest.raises(RecommenderConfigError) as e:
        RecommenderConfig(batch_size=-1)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)
