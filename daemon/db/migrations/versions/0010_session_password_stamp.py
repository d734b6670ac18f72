"""admin sessions name the password hash they were opened with: a new password ends them
however it was set (`admin set-password --print` into the file or the environment left them
open for their 12 hours). Sessions opened before have "" and end: log in again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "adminsession",
        sa.Column("password_stamp", sa.String(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "adminsession" DROP COLUMN password_stamp')
