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
