"""feed.validators_url: the address a feed's ETag / Last-Modified came from, the only one they
are sent to. A feed whose URL has a `{date}` sent yesterday's validators with today's address
(a server that matched them answered 304 for a list never read). Validators stored before this
revision: a feed's own address's for a feed without `{date}` (its conditional GET goes on); of
an unknown day for one with `{date}`: forgotten (its next fetch is a whole one).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OF_THE_DAY: sa.BindParameter[str] = sa.bindparam("of_the_day", "%{date}%")


def upgrade() -> None:
    op.add_column("feed", sa.Column("validators_url", sa.String(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE feed SET validators_url = url WHERE url NOT LIKE :of_the_day "
            "AND (etag IS NOT NULL OR last_modified IS NOT NULL)"
        ).bindparams(_OF_THE_DAY)
    )
    op.execute(
        sa.text(
            "UPDATE feed SET etag = NULL, last_modified = NULL WHERE url LIKE :of_the_day"
        ).bindparams(_OF_THE_DAY)
    )


def downgrade() -> None:
    # in place (SQLite 3.35+): a rebuild drops the table, with what refers to it
    op.execute('ALTER TABLE "feed" DROP COLUMN validators_url')
