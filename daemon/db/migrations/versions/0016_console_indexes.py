"""indexes of the console's slow pages. At 100,000 subscribers on SQLite, with an hour of a mail
server down (12 postponed attempts a digest):
- deliveryattempt (digest_id, at, id), in place of (digest_id): a pending digest is postponed
  when its latest attempt was; that was found by going through every postponed attempt ever
  and, for each, through its digest's later attempts (the postponed deliveries: 10-20 s a
  page; the counts by state: 4-8 s). Its latest attempt is now one step of this index;
- user (created_at, id): the subscribers "newest first" (170-400 ms a page, a sort of all);
- user (active, name, paused_until, timezone) and user (paused_until): the subscribers
  "paused first": those getting no digest now (unsubscribed, or paused until a day still ahead
  in their time zone) by name, then the others by name, whose pause is read from the index
  (not from each row skipped to a far page) (0.4-1.2 s a page deep in the list, a sort of all).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_deliveryattempt_digest_at", "deliveryattempt", ["digest_id", "at", "id"]),
    ("ix_user_created", "user", ["created_at", "id"]),
    ("ix_user_active_name", "user", ["active", "name", "paused_until", "timezone"]),
    ("ix_user_paused_until", "user", ["paused_until"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    # served by the first of the new ones (its first column)
    op.drop_index("ix_deliveryattempt_digest_id", table_name="deliveryattempt")


def downgrade() -> None:
    op.create_index("ix_deliveryattempt_digest_id", "deliveryattempt", ["digest_id"])
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
