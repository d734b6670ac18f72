"""What a subscriber's own page (/me) reads: their likes and dislikes with the papers, their
recent digests, and everything stored about them for the export. Changes go through
`people.py`; this store only reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from daemon.db.engine import Repository
from daemon.db.models import Channel, ChannelKind, Digest, Feedback, Follow, Paper, User
from daemon.db.rows import FollowRow, PaperRow, UserRow


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


class SubscriberPages(Repository):
    def user_by_email(self, address: str) -> UserRow | None:
        """The user with this email address (compared ignoring case), if any."""
        import sqlalchemy as sa

        with self.read_session() as s:
            q = (
                select(User)
                .join(Channel, col(Channel.user_id) == col(User.id))
                .where(
                    Channel.kind == ChannelKind.EMAIL,
                    sa.func.lower(Channel.address) == address.lower(),
                )
            )
            user = s.exec(q).first()
            return UserRow.of(user) if user is not None else None

    def feedback(
        self, user_id: int, *, limit: int | None = None, offset: int = 0
    ) -> list[tuple[PaperRow, int, datetime]]:
        """The user's likes (+1) and dislikes (-1) with their papers, newest first (a page of
        them: `limit` from `offset`; all without a limit)."""
        with self.read_session() as s:
            q = (
                select(Feedback, Paper)
                .join(Paper, col(Paper.id) == col(Feedback.paper_id))
                .where(Feedback.user_id == user_id)
                .order_by(col(Feedback.created_at).desc(), col(Feedback.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return [(PaperRow.of(p), f.value, f.created_at) for f, p in s.exec(q).all()]

    def feedback_count(self, user_id: int) -> int:
        """How many likes and dislikes the user gave."""
        import sqlalchemy as sa

        with self.read_session() as s:
            q = select(sa.func.count()).select_from(Feedback).where(Feedback.user_id == user_id)
            return int(s.exec(q).one())

    def answers(self, user_id: int, paper_ids: list[int]) -> dict[int, int]:
        """The user's word (LIKE, DISLIKE) on those of the papers they answered."""
        if not paper_ids:
            return {}
        with self.read_session() as s:
            q = select(Feedback.paper_id, Feedback.value).where(
                Feedback.user_id == user_id, col(Feedback.paper_id).in_(paper_ids)
            )
            return {int(p): int(v) for p, v in s.exec(q).all()}

    def may_answer(self, user_id: int, paper_id: int) -> bool:
        """Whether the page's buttons may like or dislike the paper: one of the user's
        digests', or one they answered already. Any other stored paper, of another
        subscriber's imported library say, is not theirs to see."""
        from daemon.db.models import DigestItem

        with self.read_session() as s:
            answered = select(Feedback.paper_id).where(
                Feedback.user_id == user_id, Feedback.paper_id == paper_id
            )
            sent = (
                select(DigestItem.paper_id)
                .join(Digest, col(Digest.id) == col(DigestItem.digest_id))
                .where(Digest.user_id == user_id, DigestItem.paper_id == paper_id)
            )
            return s.exec(answered).first() is not None or s.exec(sent).first() is not None

    def follows(self, user_id: int) -> list[FollowRow]:
        from daemon.db.models import FollowKind

        with self.read_session() as s:
            q = (
                select(Follow)
                .where(Follow.user_id == user_id)
                .order_by(col(Follow.kind), col(Follow.value))
            )
            return [FollowRow(FollowKind(f.kind), f.value, f.muted) for f in s.exec(q).all()]

    def recent_digest_ids(self, user_id: int, limit: int = 10) -> list[int]:
        """The user's latest digests, newest first (every channel, every state)."""
        with self.read_session() as s:
            q = (
                select(Digest.id)
                .where(Digest.user_id == user_id)
                .order_by(col(Digest.period).desc(), col(Digest.id).desc())
                .limit(limit)
            )
            return [int(i) for i in s.exec(q).all() if i is not None]

    def export(self, user_id: int, show: dict[ChannelKind, Any]) -> dict[str, Any]:
        """Everything stored about the user, as JSON-ready data. `show` gives, per channel
        kind, how an address may be shown (a Slack webhook is a secret: hidden)."""
        from daemon.checks import weekday_name
        from daemon.db.models import DeliveryAttempt, DigestItem

        with self.read_session() as s:
            user = s.get_one(User, user_id)
            channels = s.exec(
                select(Channel).where(Channel.user_id == user_id).order_by(col(Channel.id))
            ).all()
            digests = s.exec(
                select(Digest)
                .where(Digest.user_id == user_id)
                .order_by(col(Digest.period), col(Digest.id))
            ).all()
            items: dict[int, list[dict[str, Any]]] = {}
            q = (
                select(DigestItem, Paper)
                .join(Paper, col(Paper.id) == col(DigestItem.paper_id))
                .join(Digest, col(Digest.id) == col(DigestItem.digest_id))
                .where(Digest.user_id == user_id)
                .order_by(col(DigestItem.digest_id), col(DigestItem.rank))
            )
            for item, paper in s.exec(q).all():
                items.setdefault(item.digest_id, []).append(
                    {
                        "rank": item.rank,
                        "paper": paper.key,
                        "title": paper.title,
                        "score": item.score,
                        "why": item.reason,
                    }
                )
            attempts: dict[int, list[dict[str, Any]]] = {}
            tries = (
                select(DeliveryAttempt)
                .join(Digest, col(Digest.id) == col(DeliveryAttempt.digest_id))
                .where(Digest.user_id == user_id)
                .order_by(col(DeliveryAttempt.at), col(DeliveryAttempt.id))
            )
            for a in s.exec(tries).all():
                attempts.setdefault(a.digest_id, []).append(
                    {"at": _iso(a.at), "outcome": a.outcome, "detail": a.detail}
                )
            channel_names = {c.id: show[ChannelKind(c.kind)](c.address) for c in channels}
        feedback = self.feedback(user_id)
        return {
            "user": {
                "name": user.name,
                "display_name": user.display_name,
                "timezone": user.timezone,
                "digest_hour": user.digest_hour,
                "max_picks": user.max_picks,
                "frequency": user.frequency,
                "digest_weekday": weekday_name(user.digest_weekday)
                if user.digest_weekday is not None
                else None,
                "paused_until": user.paused_until.isoformat() if user.paused_until else None,
                "subscribed": user.active,
                "unsubscribed_at": _iso(user.unsubscribed_at),
                "created_at": _iso(user.created_at),
            },
            "channels": [
                {"kind": c.kind, "address": channel_names[c.id], "active": c.active}
                for c in channels
            ],
            "likes_and_dislikes": [
                {
                    "paper": p.key,
                    "title": p.title,
                    "authors": list(p.authors),
                    "url": p.url,
                    "value": "like" if value > 0 else "dislike",
                    "at": _iso(at),
                }
                for p, value, at in feedback
            ],
            "follows": [
                {"kind": str(f.kind), "value": f.value, "muted": f.muted}
                for f in self.follows(user_id)
            ],
            "digests": [
                {
                    "period": d.period.isoformat(),
                    "channel": channel_names.get(d.channel_id, ""),
                    "state": d.state,
                    "sent_at": _iso(d.sent_at),
                    "last_error": d.last_error,
                    "papers": items.get(d.id or 0, []),
                    "delivery_attempts": attempts.get(d.id or 0, []),
                }
                for d in digests
            ],
        }
