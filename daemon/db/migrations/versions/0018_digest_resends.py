"""digest.resends: how many times an admin had a digest that went out sent again (Resend). Each
such copy carries a Message-ID of its own (Gmail drops a message whose Message-ID it has seen,
so a resend with the first copy's never showed); a retry keeps the Message-ID of its sending.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("digest") as batch:
        batch.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("digest") as batch:
        batch.drop_column("resends")
