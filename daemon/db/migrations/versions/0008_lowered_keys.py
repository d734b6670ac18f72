"""lowered copies of user.name and channel.address, indexed: a handle and an email address are
one user's in any case, and comparing them went through every row with Python's lower on
SQLite (70 ms a look at 20,000 subscribers, three looks a sign-up).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = [("user", "name", "name_key"), ("channel", "address", "address_key")]
BATCH = 10_000  # rows updated a statement


def upgrade() -> None:
    conn = op.get_bind()
    for table, source, key in KEYS:
        op.add_column(table, sa.Column(key, sa.String(), nullable=True))
        t = sa.table(table, sa.column("id"), sa.column(source), sa.column(key))
        rows = conn.execute(sa.select(t.c.id, t.c[source])).all()
        update = sa.update(t).where(t.c.id == sa.bindparam("row_id"))
        update = update.values({key: sa.bindparam("lowered")})
        for start in range(0, len(rows), BATCH):  # Python's lower, as the application's
            chunk = rows[start : start + BATCH]
            conn.execute(update, [{"row_id": i, "lowered": v.lower()} for i, v in chunk])
        op.create_index(f"ix_{table}_{key}", table, [key])


def downgrade() -> None:
    for table, _, key in reversed(KEYS):
        op.drop_index(f"ix_{table}_{key}", table_name=table)
        # in place (SQLite 3.35+): a rebuild of "user" would delete what refers to it
        op.execute(f'ALTER TABLE "{table}" DROP COLUMN {key}')
