"""The job queue, in the database: no broker. A job is claimed under a lease that its worker keeps
alive with heartbeats; a worker that dies (SIGKILL, crash, lost machine) stops heartbeating, its lease
lapses and the next claim takes the job again. After ``max_attempts`` claims the job fails for good.

Claiming is one transaction: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` picks a row no
other worker is looking at; on SQLite the write transaction is ``BEGIN IMMEDIATE`` (one writer at a
time). Either way the conditional ``UPDATE`` re-checks the row's state, so a job has one holder.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from modelshield.service.db import Database
from modelshield.service.models import Job, utcnow

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
ACTIVE = (QUEUED, RUNNING)
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this worker now holds: what to do and for which model."""

    id: int
    model_id: int
    kind: str
    reason: str
    attempts: int
    max_attempts: int


def enqueue(session: Session, model_id: int, kind: str, reason: str, max_attempts: int) -> Job:
    """Queue ``kind`` for the model, unless the same kind is already queued or running for it."""
    existing = session.scalar(
        select(Job).where(Job.model_id == model_id, Job.kind == kind, Job.state.in_(ACTIVE)).limit(1)
    )
    if existing is not None:
        return existing
    now = utcnow()
    job = Job(
        model_id=model_id,
        kind=kind,
        reason=reason,
        state=QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        not_before=now,
        created_at=now,
        updated_at=now,
        last_error="",
    )
    session.add(job)
    session.flush()
    return job


def _claimable(now: _dt.datetime) -> object:
    return or_(
        and_(Job.state == QUEUED, Job.not_before <= now),
        and_(Job.state == RUNNING, Job.lease_expires_at < now, Job.attempts < Job.max_attempts),
    )


def claim(db: Database, worker_id: str, lease_s: float) -> Claimed | None:
    """Take the oldest claimable job (queued, or running under a lapsed lease with attempts left)."""
    with db.write() as session:
        now = utcnow()
        condition = _claimable(now)
        pick = select(Job.id).where(condition).order_by(Job.id).limit(1)  # type: ignore[arg-type]
        if not db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        job_id = session.scalar(pick)
        if job_id is None:
            return None
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, condition)  # type: ignore[arg-type]
            .values(
                state=RUNNING,
                attempts=Job.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + _dt.timedelta(seconds=lease_s),
                heartbeat_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        job = session.get(Job, job_id, populate_existing=True)
        if job is None:  # pragma: no cover - the row was just updated in this transaction
            return None
        return Claimed(job.id, job.model_id, job.kind, job.reason, job.attempts, job.max_attempts)


def heartbeat(db: Database, job_id: int, worker_id: str, lease_s: float) -> bool:
    """Extend the lease; False when this worker no longer holds the job."""
    with db.write() as session:
        now = utcnow()
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == RUNNING)
            .values(lease_expires_at=now + _dt.timedelta(seconds=lease_s), heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def held(session: Session, job_id: int, worker_id: str) -> Job | None:
    """The job, locked for this transaction, if this worker still holds it (else None: drop the result)."""
    query = select(Job).where(Job.id == job_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    job = session.scalar(query)
    if job is None or job.worker_id != worker_id or job.state != RUNNING:
        return None
    return job


def finish(job: Job, state: str = DONE, error: str = "") -> None:
    """Mark a held job done (or failed for good)."""
    now = utcnow()
    job.state = state
    job.last_error = error[:4000]
    job.finished_at = now
    job.updated_at = now
    job.lease_expires_at = None


def retry_later(job: Job, error: str) -> bool:
    """After a failed attempt: queue it again with backoff (True), or fail it when attempts are used up (False)."""
    if job.attempts >= job.max_attempts:
        finish(job, FAILED, error)
        return False
    now = utcnow()
    job.state = QUEUED
    job.last_error = error[:4000]
    job.worker_id = None
    job.lease_expires_at = None
    job.updated_at = now
    job.not_before = now + _dt.timedelta(seconds=min(MAX_BACKOFF_S, 2.0**job.attempts))
    return True


def exhausted(session: Session) -> list[Job]:
    """Running jobs whose lease lapsed with no attempts left (their workers died every time): fail them."""
    now = utcnow()
    rows = session.scalars(
        select(Job).where(Job.state == RUNNING, Job.lease_expires_at < now, Job.attempts >= Job.max_attempts)
    ).all()
    for job in rows:
        finish(job, FAILED, job.last_error or f"the worker stopped responding {job.attempts} time(s)")
    return list(rows)


def depth(session: Session) -> dict[str, int]:
    """How many jobs are queued and running."""
    counts = dict.fromkeys(ACTIVE, 0)
    for state, count in session.execute(
        select(Job.state, func.count()).where(Job.state.in_(ACTIVE)).group_by(Job.state)
    ):
        counts[state] = int(count)
    return counts
