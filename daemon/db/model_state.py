"""The fitted recommender, kept in the database between processes."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from daemon.db.engine import Repository
from daemon.db.models import ModelState


class ModelStates(Repository):
    def load(self) -> tuple[int, bytes] | None:
        """(the corpus size it was fitted on, its state), or None before the first fit."""
        with self.read_session() as s:
            row = s.exec(select(ModelState).order_by(col(ModelState.id).desc())).first()
            return (row.fitted_size, row.blob) if row else None

    def save(self, fitted_size: int, blob: bytes, now: datetime) -> None:
        with self.session() as s:
            for old in s.exec(select(ModelState)).all():
                s.delete(old)
            s.add(ModelState(fitted_size=fitted_size, blob=blob, created_at=now))
            s.commit()
