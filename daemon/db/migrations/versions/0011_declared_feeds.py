"""feed.declared: the feeds the configuration file declares ([[feeds]]), so that a feed taken
out of the file is disabled (it was fetched on and on). Feeds the file declares now are
marked at the next ingest; one taken out of it before this revision is not known as such and
stays until `paperwire feeds disable` or `remove`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "feed", sa.Column("declared", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "feed" DROP COLUMN declared')
