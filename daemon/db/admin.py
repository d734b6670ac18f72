"""The admin's records: the audit log of every admin action, and the console's sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select

from daemon.db.engine import Repository
from daemon.db.models import AdminSession, AuditEntry

DETAIL_CHARS = 500


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    admin: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class SessionRow:
    admin: str
    csrf_token: str
    expires_at: datetime
    password_stamp: str  # of the password hash the admin logged in with


class AdminRecords(Repository):
    # ---- audit log -----------------------------------------------------------------------------

    def audit(
        self, now: datetime, admin: str, action: str, target: str = "", detail: str = ""
    ) -> None:
        """Record one admin action (`detail` must never hold a secret)."""
        with self.session() as s:
            s.add(
                AuditEntry(
                    at=now, admin=admin, action=action, target=target, detail=detail[:DETAIL_CHARS]
                )
            )
            s.commit()

    def audit_log(self, limit: int = 100, offset: int = 0) -> list[AuditRow]:
        """The newest entries first."""
        with self.read_session() as s:
            q = (
                select(AuditEntry)
                .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return [AuditRow(e.at, e.admin, e.action, e.target, e.detail) for e in s.exec(q).all()]

    # ---- console sessions ----------------------------------------------------------------------

    def open_session(
        self,
        token_hash: str,
        admin: str,
        csrf_token: str,
        now: datetime,
        expires: datetime,
        password_stamp: str,
    ) -> None:
        with self.session() as s:
            s.execute(sa.delete(AdminSession).where(col(AdminSession.expires_at) <= now))
            s.add(
                AdminSession(
                    token_hash=token_hash,
                    admin=admin,
                    csrf_token=csrf_token,
                    password_stamp=password_stamp,
                    created_at=now,
                    expires_at=expires,
                )
            )
            s.commit()

    def find_session(self, token_hash: str, now: datetime) -> SessionRow | None:
        """The session of this token, unless it has expired."""
        with self.read_session() as s:
            row = s.exec(
                select(AdminSession).where(
                    AdminSession.token_hash == token_hash, col(AdminSession.expires_at) > now
                )
            ).first()
            if row is None:
                return None
            return SessionRow(row.admin, row.csrf_token, row.expires_at, row.password_stamp)

    def close_session(self, token_hash: str) -> None:
        with self.session() as s:
            s.execute(sa.delete(AdminSession).where(col(AdminSession.token_hash) == token_hash))
            s.commit()

    def close_sessions_of(self, admin: str) -> int:
        """End every session of an admin (password changed or removed). Returns how many."""
        with self.session() as s:
            result = s.execute(sa.delete(AdminSession).where(col(AdminSession.admin) == admin))
            s.commit()
            return int(getattr(result, "rowcount", 0))
