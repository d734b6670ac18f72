"""The recommender adapter: stored rows → the recommender's plain data, and the fitted model
(refitted when the corpus and the likes grew by `recommender.refit_growth`).

The recommender (scikit-learn) is imported only here, and only when a digest is made.
"""

from __future__ import annotations

import logging
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from daemon.app import App
from daemon.db.models import FollowKind
from daemon.db.rows import PaperRow, UserSignals

if TYPE_CHECKING:
    from recommender import Doc, Feedback, Like, Recommender

log = logging.getLogger("paperwire.jobs")


def to_doc(p: PaperRow) -> Doc:
    from recommender import Doc

    return Doc(
        id=str(p.id),
        title=p.title,
        abstract=p.abstract,
        authors=p.authors,
        published=p.published_at or p.first_seen_at,
        upvotes=p.upvotes,
    )


def to_feedback(sig: UserSignals, shared: dict[int, Like] | None = None) -> Feedback:
    """The recommender's view of a user's signals. `shared`: undated likes made once per paper
    and reused by every user who liked it (a `Like` is immutable; the digest job makes one per
    paper, not one per like of a million)."""
    from recommender import Feedback, Like

    def follows(kind: FollowKind, muted: bool) -> tuple[str, ...]:
        return tuple(f.value for f in sig.follows if f.kind == kind and f.muted == muted)

    def like(pid: int, at: datetime | None) -> Like:
        if at is not None or shared is None:
            return Like(doc_id=str(pid), at=at)
        lk = shared.get(pid)
        if lk is None:
            lk = shared[pid] = Like(doc_id=str(pid))
        return lk

    return Feedback(
        user_id=str(sig.user_id),
        likes=tuple([like(pid, at) for pid, at in sig.likes]),
        dislikes=tuple(str(pid) for pid in sig.dislikes),
        keywords=follows(FollowKind.KEYWORD, False),
        authors=follows(FollowKind.AUTHOR, False),
        muted_keywords=follows(FollowKind.KEYWORD, True),
        muted_authors=follows(FollowKind.AUTHOR, True),
        exclude=frozenset(str(pid) for pid in sig.sent),
    )


def libraries(app: App) -> list[Feedback]:
    """Every subscriber's likes, as the fit reads them (by user id). The fit uses only the
    liked ids — and the like times when a recency half-life is configured; undated, one `Like`
    per paper is shared by every library that holds it (2 million likes, 70,000 papers)."""
    from recommender import Feedback, Like

    cfg = app.recommender_config
    dated = bool(cfg.recency_half_life_days or cfg.recency_half_life_likes)
    by_user = sorted(app.store.people.libraries(dated).items())
    if dated:
        return [
            Feedback(user_id=str(uid), likes=tuple([Like(str(pid), at) for pid, at in liked]))
            for uid, liked in by_user
        ]
    first = itemgetter(0)  # (paper id, None) → paper id; map() keeps the 2 million in C
    papers = set().union(*(map(first, liked) for _, liked in by_user))
    shared = {pid: Like(doc_id=str(pid)) for pid in papers}
    return [
        Feedback(user_id=str(uid), likes=tuple(map(shared.__getitem__, map(first, liked))))
        for uid, liked in by_user
    ]


def corpus_size(app: App) -> int:
    """What the refit policy measures: stored papers + likes and dislikes."""
    return app.store.papers.count() + app.store.people.count_feedback()


def load_recommender(app: App, now: datetime) -> Recommender:
    """The fitted recommender: refitted when papers + feedback grew by more than
    `recommender.refit_growth` since the last fit, or its options changed. Kept in memory
    between runs and in the database between processes.

    It learns from the stored papers and from every subscriber's likes (cross-user signals)."""
    from recommender import Recommender

    size = corpus_size(app)
    limit = 1 + app.settings.recommender.refit_growth

    def usable(size_at_fit: int, model: Recommender) -> bool:
        return model.config == app.recommender_config and size <= size_at_fit * limit

    if app.model_cache is not None and usable(*app.model_cache):
        return app.model_cache[1]
    saved = app.store.models.load()
    if saved is not None:
        size_at_fit, blob = saved
        try:
            model = Recommender.loads(blob)
        except Exception as e:  # an old or foreign pickle: refit rather than fail the day
            log.warning("stored recommender unreadable; refitting", extra={"error": str(e)})
        else:
            if usable(size_at_fit, model):
                app.model_cache = (size_at_fit, model)
                return model
    model = Recommender(app.recommender_config)
    model.fit([to_doc(p) for p in app.store.papers.all()], libraries(app))
    app.store.models.save(size, model.dumps(), now)
    app.model_cache = (size, model)
    log.info("recommender fitted", extra={"size": size})
    return model
