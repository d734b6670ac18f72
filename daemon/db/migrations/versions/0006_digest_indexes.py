"""digests and their items: drop the indexes on user_id and digest_id alone (the unique
(user_id, channel_id, period) and (digest_id, paper_id) indexes serve those lookups): one
index less to keep up for each of the 110,000 digests and 1.1 million items of a day at
100,000 subscribers; and a partial index of the pending digests in id order, for the
delivery's claims (on PostgreSQL each claim of 100 fetched and sorted every pending digest,
or walked the sent ones)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_digestitem_digest_id", table_name="digestitem")
    op.drop_index("ix_digest_user_id", table_name="digest")
    pending = sa.text("state = 'pending'")
    op.create_index(
        "ix_digest_pending", "digest", ["id"], postgresql_where=pending, sqlite_where=pending
    )


def downgrade() -> None:
    op.drop_index("ix_digest_pending", table_name="digest")
    op.create_index("ix_digest_user_id", "digest", ["user_id"])
    op.create_index("ix_digestitem_digest_id", "digestitem", ["digest_id"])
