"""paper: title_key and indexes on doi, arxiv_id, title_key (one paper, one row across sources)

Existing rows get their title key and a lower-case DOI, computed as
daemon.ingest.identity does (the function is copied here: a migration must not change when
the code does).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_NON_WORD = re.compile(r"[\W_]+")


def _title_key(title: str) -> str | None:
    """daemon.ingest.identity.title_key as of revision 0003."""
    decomposed = unicodedata.normalize("NFKD", _LATEX_COMMAND.sub(" ", title).casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = _NON_WORD.sub(" ", folded).strip()
    if len(folded) < 20 or folded.count(" ") + 1 < 4:
        return None
    return folded[:500]


def upgrade() -> None:
    with op.batch_alter_table("paper") as batch:
        batch.add_column(sa.Column("title_key", sa.String(), nullable=True))
        batch.create_index(batch.f("ix_paper_title_key"), ["title_key"], unique=False)
        batch.create_index(batch.f("ix_paper_doi"), ["doi"], unique=False)
        batch.create_index(batch.f("ix_paper_arxiv_id"), ["arxiv_id"], unique=False)
    paper = sa.table(
        "paper",
        sa.column("id", sa.Integer),
        sa.column("title", sa.String),
        sa.column("doi", sa.String),
        sa.column("title_key", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(paper.c.id, paper.c.title, paper.c.doi)).all()
    for row in rows:
        conn.execute(
            paper.update()
            .where(paper.c.id == row.id)
            .values(
                title_key=_title_key(row.title or ""),
                doi=row.doi.strip().lower() if row.doi else None,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("paper") as batch:
        batch.drop_index(batch.f("ix_paper_arxiv_id"))
        batch.drop_index(batch.f("ix_paper_doi"))
        batch.drop_index(batch.f("ix_paper_title_key"))
        batch.drop_column("title_key")
