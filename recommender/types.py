"""Plain data that goes in and out of the recommender."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple


@dataclass(frozen=True)
class Doc:
    """A paper as the recommender sees it."""

    id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    upvotes: int | None = None  # popularity, when the source knows it (Hugging Face)


@dataclass(frozen=True)
class Like:
    doc_id: str
    at: datetime | None = None  # when the like was given; recency weighting uses it


@dataclass(frozen=True)
class Feedback:
    """Everything one person told us. Ids of liked/disliked docs must be in the fitted corpus or
    in the `known` docs passed to `rank`."""

    user_id: str
    likes: tuple[Like, ...] = ()
    dislikes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()  # follow
    authors: tuple[str, ...] = ()  # follow
    muted_keywords: tuple[str, ...] = ()
    muted_authors: tuple[str, ...] = ()
    exclude: frozenset[str] = field(default_factory=frozenset)  # already sent: never again


Kind = Literal["similar", "followed", "trending"]


class Recommendation(NamedTuple):
    """One pick. A named tuple: `rank` makes k of them per user, and a tuple is the cheapest
    immutable object to build (no per-instance dict)."""

    doc_id: str
    score: float
    kind: Kind  # similar: to liked papers; followed: keyword/author; trending: cold start
    reason: str  # words a researcher understands
    closest_liked_id: str | None = None
    shared_terms: tuple[str, ...] = ()


class Calibration(NamedTuple):
    """How far `Recommender.fit` trusts each signal, chosen from the install's own held-out
    likes (`recommender.calibration`; values the config fixes are kept as they are)."""

    profile_prior_likes: float  # m: a profile of n likes leans n/(n+m) on learned factors
    text_weight: float  # w: the TF-IDF centroid cosine's share of the score
    users: int  # libraries measured on held-out likes (0: not measured, fixed/fallback values)
    objective: float  # their mean nDCG@10 + recall@50 with the chosen values (nan: not measured)
    table: tuple[tuple[float, float, float], ...] = ()  # (m, w, objective) of every variant


# A named tuple (`Recommendation`, profiles' `_Liked`) made without its constructor's Python-level
# argument handling: one per pick or like of every subscriber ranked, equal to the constructor's
# (tested)
_new_tuple = tuple.__new__
