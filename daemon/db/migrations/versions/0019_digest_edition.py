"""digest.edition and user.timezone_changed_at: a subscriber who moves to a zone behind gets the
digest of each local day. Auckland's Thursday digest is made on Wednesday in Los Angeles; after
a move there, Los Angeles' Thursday found that date made and got none. Its digest is now a
second edition of the date: the unique key is (user, channel, period, edition), edition 0 for
every digest made so far. `timezone_changed_at` says whom the digest job checks (those who
moved lately).

SQLite cannot drop a table's unnamed UNIQUE constraint: the digest table is rebuilt (copied
into a new table, which then takes the old one's name), its indexes made again. `engine.upgrade`
runs the migrations with foreign keys off on SQLite, so the items and delivery attempts that
refer to the digests keep referring to them.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["user_id", "channel_id", "period"]
NEW_KEY = "uq_digest_period_edition"
# SQLite: the old key has no name; the batch's reflection names it by this convention
UNNAMED = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
UNNAMED_OLD_KEY = "uq_digest_user_id_channel_id_period"


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(
            sa.Column("timezone_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
    (old,) = [
        c["name"] or UNNAMED_OLD_KEY  # PostgreSQL: digest_user_id_channel_id_period_key
        for c in sa.inspect(op.get_bind()).get_unique_constraints("digest")
        if c["column_names"] == OLD_KEY
    ]
    with op.batch_alter_table("digest", naming_convention=UNNAMED) as batch:
        batch.add_column(sa.Column("edition", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint(old, type_="unique")
        batch.create_unique_constraint(NEW_KEY, [*OLD_KEY, "edition"])


def downgrade() -> None:
    """The editions after the first are deleted (the old key holds one digest a date), with
    their items and delivery attempts (foreign keys are off on SQLite here: no cascade)."""
    extra = "(SELECT id FROM digest WHERE edition > 0)"
    for table in ("digestitem", "deliveryattempt"):
        op.execute(f"DELETE FROM {table} WHERE digest_id IN {extra}")
    op.execute("DELETE FROM digest WHERE edition > 0")
    with op.batch_alter_table("digest") as batch:
        batch.drop_constraint(NEW_KEY, type_="unique")
        batch.create_unique_constraint("digest_user_id_channel_id_period_key", OLD_KEY)
        batch.drop_column("edition")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("timezone_changed_at")
