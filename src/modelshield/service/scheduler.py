"""Continuous verification, run by whichever worker holds the ``scheduler`` lock at the time.

Each tick: fail jobs whose workers died on every attempt (their models become ``scan_failed``);
expire waivers past their date (their models are re-evaluated); re-scan models whose last scan used
other rules or advisory data (a new CVE that matches changes the status); renew attestations that
expire soon; queue re-hashes of stored files that were not verified within the interval.
"""

from __future__ import annotations

import datetime as _dt
import logging

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from modelshield.service import catalog, queue
from modelshield.service.db import Database
from modelshield.service.models import Lock, Model, Scan, UISession, Worker, utcnow
from modelshield.service.scanning import current_advisory_snapshot, mark_scan_failed
from modelshield.service.settings import Settings

log = logging.getLogger("modelshield.service.scheduler")
BATCH = 200
EVALUATED = ("passed", "warn", "failed")


def acquire(db: Database, name: str, holder: str, ttl_s: float) -> bool:
    """Take or extend the named lease; False when another holder has it."""
    with db.write() as session:
        now = utcnow()
        result = session.execute(
            update(Lock)
            .where(Lock.name == name, or_(Lock.holder.is_(None), Lock.holder == holder, Lock.expires_at < now))
            .values(holder=holder, expires_at=now + _dt.timedelta(seconds=ttl_s))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release(db: Database, name: str, holder: str) -> None:
    """Give the named lease up (a worker that stops)."""
    with db.write() as session:
        session.execute(
            update(Lock)
            .where(Lock.name == name, Lock.holder == holder)
            .values(holder=None, expires_at=None)
            .execution_options(synchronize_session=False)
        )


def tick(db: Database, settings: Settings, worker_id: str) -> bool:
    """One scheduler pass if this worker holds the lock; True when it ran."""
    if not acquire(db, "scheduler", worker_id, max(3.0, settings.scheduler_tick_s * 3)):
        return False
    from modelshield.rules import RULES_VERSION

    snapshot = current_advisory_snapshot()
    with db.write() as session:
        for job in queue.exhausted(session):
            if job.kind == "scan":
                error = job.last_error or "the worker died"
                mark_scan_failed(session, job.model_id, job.attempts, error, "system:scheduler")
        catalog.expire_waivers(session, settings, utcnow().date())
    with db.write() as session:
        _rescan_outdated(session, settings, RULES_VERSION, snapshot)
        _renew(session, settings)
        _verify_due(session, settings)
        now = utcnow()
        session.execute(delete(UISession).where(UISession.expires_at < now))
        session.execute(delete(Worker).where(Worker.last_seen < now - _dt.timedelta(days=1)))
    return True


def _rescan_outdated(session: Session, settings: Settings, rules_version: str, snapshot: str) -> None:
    rows = session.execute(
        select(Model.id, Scan.rules_version, Scan.advisory_snapshot)
        .join(Scan, Scan.id == Model.current_scan_id)
        .where(Model.status.in_(EVALUATED), Scan.kind == "scan")
        .where(or_(Scan.rules_version != rules_version, Scan.advisory_snapshot != snapshot))
        .limit(BATCH)
    ).all()
    for model_id, old_rules, old_snapshot in rows:
        why = "rules-changed" if old_rules != rules_version else "advisories-changed"
        log.info("model %s: %s (%s/%s -> %s/%s)", model_id, why, old_rules, old_snapshot, rules_version, snapshot)
        queue.enqueue(session, model_id, "scan", why, settings.max_attempts)
    # A swept model is re-evaluated from its stored artifacts when only the advisory data changed; new
    # rules need its bytes, which the next sweep reads (the verdict cache misses exactly those files).
    swept = session.scalars(
        select(Model.id)
        .join(Scan, Scan.id == Model.current_scan_id)
        .where(Model.status.in_(EVALUATED), Scan.kind == "fleet", Scan.rules_version == rules_version)
        .where(Scan.advisory_snapshot != snapshot)
        .limit(BATCH)
    ).all()
    for model_id in swept:
        queue.enqueue(session, model_id, "scan", "advisories-changed", settings.max_attempts)


def _renew(session: Session, settings: Settings) -> None:
    soon = utcnow() + _dt.timedelta(seconds=settings.renew_window_s)
    ids = session.scalars(
        select(Model.id)
        .where(Model.status.in_(EVALUATED), Model.attestation_expires_at.is_not(None))
        .where(Model.attestation_expires_at < soon)
        .limit(BATCH)
    ).all()
    for model_id in ids:
        queue.enqueue(session, model_id, "scan", "renew", settings.max_attempts)


def _verify_due(session: Session, settings: Settings) -> None:
    due = utcnow() - _dt.timedelta(seconds=settings.verify_interval_s)
    ids = session.scalars(
        select(Model.id)
        .where(Model.status.in_((*EVALUATED, "revoked")), Model.source_kind != "fleet")  # a sweep re-verifies those
        .where(or_(Model.last_verified_at.is_(None), Model.last_verified_at < due))
        .limit(BATCH)
    ).all()
    for model_id in ids:
        queue.enqueue(session, model_id, "verify", "scheduled", settings.max_attempts)
