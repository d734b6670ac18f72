"""digest items: drop the index on digest_id alone (the unique (digest_id, paper_id) index
serves every lookup by digest_id); one index less to keep up for a million rows a day

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_digestitem_digest_id", table_name="digestitem")


def downgrade() -> None:
    op.create_index("ix_digestitem_digest_id", "digestitem", ["digest_id"])
