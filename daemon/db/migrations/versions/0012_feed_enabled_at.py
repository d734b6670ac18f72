"""feed.enabled_at: when a feed was last enabled again, so that `paperwire status` counts its
silence and its failure from then, not from its last fetch before it was disabled (every feed
enabled again after a month off was "not fetched since …" and "failed since …", exit 1, until
the next ingest). Feeds enabled before this revision have none: counted as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feed", sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "feed" DROP COLUMN enabled_at')
