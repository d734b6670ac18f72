"""`RecommenderConfig`: every knob of the method, with its default.

The defaults are the method that won on CiteULike coldstart/ (docs/recommender.md has the
figures). `RecommenderConfig` is also importable from `recommender` and `recommender.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

ASL_TOKEN_PATTERN = r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b"


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
    text_weight: float = 0.0  # blend in the plain TF-IDF cosine (0 = off)
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
    batch_size: int = 512  # users per matrix product
