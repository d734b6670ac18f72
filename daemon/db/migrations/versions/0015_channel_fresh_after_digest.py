"""channel.fresh_after_digest: the channel's last digest when its address changed or it started
again. A channel is stopped when its last digests were all refused; the refusals of the old
address (or before an admin started it again) counted too, so a new address could be stopped
by its first refusal.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channel", sa.Column("fresh_after_digest", sa.Integer(), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "channel" DROP COLUMN fresh_after_digest')
