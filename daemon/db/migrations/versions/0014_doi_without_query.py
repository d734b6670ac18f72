"""paper.doi and its doi: key without the query of the doi.org link they were read from: ACS's
links are dx.doi.org/10.1021/…?af=R, and "10.1021/…?af=r" was stored as the DOI. The parser
now drops the query, so the first ingest after an upgrade stored each such paper again (two
different DOIs are never one paper), announced as news once more.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# a URL query at the end of a stored DOI: "?af=r", "?utm_source=x&utm_medium=y"
_QUERY = re.compile(r"\?[\w.-]+=[^?#&\s]*(?:&[\w.-]+=[^?#&\s]*)*$")


def upgrade() -> None:
    conn = op.get_bind()
    t = sa.table("paper", sa.column("id"), sa.column("key"), sa.column("doi"))
    rows = conn.execute(sa.select(t.c.id, t.c.key, t.c.doi).where(t.c.doi.like("%?%"))).all()
    keys = set(conn.execute(sa.select(t.c.key).where(t.c.key.like("doi:%"))).scalars())
    for row_id, key, doi in rows:
        if not (m := _QUERY.search(doi)) or m.start() == 0:
            continue
        fixed = doi[: m.start()]
        values = {"doi": fixed}
        if key == f"doi:{doi}" and f"doi:{fixed}" not in keys:  # a twin keeps its key
            values["key"] = f"doi:{fixed}"
            keys.add(values["key"])
        conn.execute(sa.update(t).where(t.c.id == row_id).values(values))


def downgrade() -> None:
    pass  # the query was never part of the DOI: nothing to give back
