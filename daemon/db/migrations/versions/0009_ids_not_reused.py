"""SQLite: user and channel ids are never reused (AUTOINCREMENT). A digest's links name the
subscriber and the channel by id; SQLite gave the next new row the highest id again once the
row holding it was deleted, so a deleted subscriber's links opened the newcomer's page.
PostgreSQL's sequences never go back: nothing to do there.

SQLite cannot add AUTOINCREMENT to a table: both are rebuilt (copied into a new table, which
then takes the old one's name). `engine.upgrade` runs the migrations with foreign keys off on
SQLite, so dropping the old table deletes nothing that refers to it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The newest subscribers deleted before this revision left no trace of their ids: the next
# ids start this far above the highest one left, so that their links open nobody's account.
MARGIN = 10_000


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    for table in ("user", "channel"):
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
        # the copy into the new table set its sequence to the highest id (none: empty)
        conn.exec_driver_sql(
            "UPDATE sqlite_sequence SET seq = seq + ? WHERE name = ?", (MARGIN, table)
        )


def downgrade() -> None:
    """Nothing: ids that are never reused are right for every revision."""
