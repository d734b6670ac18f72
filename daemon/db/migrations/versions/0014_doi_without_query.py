"""paper.doi and the doi: key as the parser now reads them from a journal's links and ids, so
the first ingest after the upgrade finds the papers stored before instead of storing each
again, announced as news once more:

- a DOI read from a doi.org link kept the link's query: ACS's links are
  dx.doi.org/10.1021/…?af=R, and "10.1021/…?af=r" was stored (two different DOIs are never one
  paper);
- a paper keyed by its guid had no DOI where the guid or link names one (PLOS's info:doi/…,
  link.springer.com/10.1007/…, a publisher's …/doi/10.…): a record with the DOI joins it only
  by its title, never for a short one ("Editorial").

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# the parser's own reading (not a copy): the next ingest must find what this stores
from daemon.ingest.identity import find_doi

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# a URL query at the end of a stored DOI: "?af=r", "?utm_source=x&utm_medium=y"
_QUERY = re.compile(r"\?[\w.-]+=[^?#&\s]*(?:&[\w.-]+=[^?#&\s]*)*$")


def upgrade() -> None:
    conn = op.get_bind()
    t = sa.table("paper", sa.column("id"), sa.column("key"), sa.column("doi"), sa.column("url"))
    keys = set(conn.execute(sa.select(t.c.key).where(t.c.key.like("doi:%"))).scalars())

    def fix(row_id: int, key: str, doi: str, *, rekey: bool) -> None:
        values = {"doi": doi}
        if rekey and f"doi:{doi}" not in keys:  # a twin already keyed by it keeps its key
            values["key"] = f"doi:{doi}"
            keys.add(values["key"])
        conn.execute(sa.update(t).where(t.c.id == row_id).values(values))

    queried = sa.select(t.c.id, t.c.key, t.c.doi).where(t.c.doi.like("%?%"))
    for row_id, key, doi in conn.execute(queried).all():
        if (m := _QUERY.search(doi)) and m.start() > 0:
            fix(row_id, key, doi[: m.start()], rekey=key == f"doi:{doi}")
    guids = sa.select(t.c.id, t.c.key, t.c.url).where(t.c.doi.is_(None), t.c.key.like("guid:%"))
    for row_id, key, url in conn.execute(guids).all():
        if doi := find_doi([], [key.removeprefix("guid:"), url]):
            fix(row_id, key, doi, rekey=True)


def downgrade() -> None:
    pass  # the DOIs were the papers' all along: nothing to give back
