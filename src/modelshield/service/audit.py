"""The append-only audit log: who decided what, when, about which target.

Only :func:`record` writes to it (the database itself refuses UPDATE and DELETE on the table).
Every decision goes through here: registrations, scan results, drift, waivers and their decisions,
revocations, token and policy changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modelshield.service.models import AuditEntry, utcnow


def record(session: Session, actor: str, action: str, target: str, **detail: Any) -> AuditEntry:
    """Append one entry (committed with the caller's transaction, so it exists exactly when the change does)."""
    entry = AuditEntry(at=utcnow(), actor=actor[:200], action=action[:64], target=target[:200], detail=detail)
    session.add(entry)
    return entry


def entries(
    session: Session, *, limit: int = 100, offset: int = 0, target: str | None = None, action: str | None = None
) -> tuple[list[AuditEntry], int]:
    """The newest entries first, and how many there are in all (for paging)."""
    query = select(AuditEntry)
    count = select(func.count()).select_from(AuditEntry)
    if target is not None:
        query = query.where(AuditEntry.target == target)
        count = count.where(AuditEntry.target == target)
    if action is not None:
        query = query.where(AuditEntry.action == action)
        count = count.where(AuditEntry.action == action)
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(session.scalar(count) or 0)
