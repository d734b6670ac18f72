"""channel.stopped_reason: why paperwire stopped a channel whose last digests were all refused
for good (a mailbox that does not exist, a Slack webhook revoked), where it kept sending to it
every day; shown to the admin, cleared when the channel starts again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channel", sa.Column("stopped_reason", sa.String(), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "channel" DROP COLUMN stopped_reason')
