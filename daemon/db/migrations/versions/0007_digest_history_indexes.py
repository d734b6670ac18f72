"""digests: indexes that keep a day's reads of the digests a day's size as the days pile up.
With 120 days of digests at 20,000 subscribers (2.4 million), each read below went through
every digest ever made:
- (user_id, created_at): the papers each subscriber was sent lately (the digest job; through
  the unique (user_id, channel_id, period) index it visited all of a subscriber's digests);
- (period, state, channel_id): the digests already made for today (the digest job, 347 ms)
  and the digests by day and state (the health page, 287 ms), both a scan of the table.

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


def upgrade() -> None:
    op.create_index("ix_digest_user_created", "digest", ["user_id", "created_at"])
    op.create_index("ix_digest_period", "digest", ["period", "state", "channel_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_period", table_name="digest")
    op.drop_index("ix_digest_user_created", table_name="digest")
