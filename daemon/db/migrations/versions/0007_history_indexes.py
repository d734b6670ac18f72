"""indexes that keep a day's reads a day's size as the days pile up. With 120 days of digests
at 20,000 subscribers (2.4 million), each read below went through every row ever written:
- digest (user_id, created_at): the papers each subscriber was sent lately (the digest job;
  through the unique (user_id, channel_id, period) index it visited all of a subscriber's
  digests);
- digest (period, state, channel_id): the digests already made for today (the digest job,
  347 ms) and the digests by day and state (the health page, 287 ms), both a scan of the table;
- feedback (created_at), user (unsubscribed_at), deliveryattempt (outcome, at): the health
  page's likes, unsubscribes, postponed and failed deliveries of the days it shows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_digest_user_created", "digest", ["user_id", "created_at"]),
    ("ix_digest_period", "digest", ["period", "state", "channel_id"]),
    ("ix_feedback_created_at", "feedback", ["created_at"]),
    ("ix_user_unsubscribed_at", "user", ["unsubscribed_at"]),
    ("ix_deliveryattempt_outcome_at", "deliveryattempt", ["outcome", "at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
