"""The digest as plain data: what the daemon hands to rendering and delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Pick:
    """One recommended paper, with why it was picked and its one-click feedback links."""

    paper_key: str
    title: str  # untrusted plain text from a feed: templates escape it
    url: str  # link to the paper's page
    authors: tuple[str, ...]
    abstract: str  # untrusted plain text; renderers shorten it
    score: float  # 0..1 similarity, or 0 for cold-start picks
    reason: str  # words a researcher understands: "close to your like 'X' (shared: a, b)"
    like_url: str
    dislike_url: str
    upvotes: int | None = None
    # similar: learned from likes; followed: a followed keyword/author; trending: a filler
    # ("Popular today": most upvoted / newest, shown without a score)
    kind: str = "similar"
    day: date | None = None  # submitted / announced (else first seen)
    arxiv_id: str | None = None  # without version: links to the abstract page and the PDF
    category: str | None = None  # primary arXiv category, e.g. "cs.LG"
    doi: str | None = None  # a journal's paper: shown and linked when it has no arXiv id


@dataclass(frozen=True)
class Digest:
    """One subscriber's digest for one period on one channel."""

    digest_id: int  # database id of the digest row; stable
    period: date  # the day the digest is for
    recipient_name: str
    picks: tuple[Pick, ...]
    unsubscribe_url: str  # a page with a POST button (GET never changes state)
    one_click_unsubscribe_url: str  # RFC 8058 target of List-Unsubscribe-Post
    cold_start: bool = False  # no likes yet: picks are the window's most upvoted / newest
    product_name: str = "paperwire"
    manage_url: str = ""  # the subscriber's own page (signed, expiring); "" when there is none
    weekly: bool = False  # a weekly digest: the week's papers, said so ("this week")
    # the channel the digest goes to (its id is never reused, unlike a digest's on SQLite:
    # the two together name the digest for ever, in its Message-ID); 0 when there is none
    channel_id: int = 0
    # times the digest was sent again after it went out (an admin's Resend): each copy has a
    # Message-ID of its own, or a mailbox that has the first would drop it
    resends: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.picks
