"""Continuous verification of stored bytes: re-hash every file of a model against its registered digest.

A difference (or a missing blob) is drift: the files turn unsafe, the model ``failed`` with a reason
starting ``drift``, an audit entry and a ``model.drift`` alert. Every run is kept in the model's history.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from modelshield.service import audit, catalog, queue, webhooks
from modelshield.service.db import Database
from modelshield.service.models import Model, Scan, utcnow
from modelshield.service.queue import Claimed
from modelshield.service.scanning import drift_finding
from modelshield.service.settings import Settings
from modelshield.service.storage import Storage

log = logging.getLogger("modelshield.service.verify")


def run_verify(db: Database, settings: Settings, job: Claimed, worker_id: str) -> None:
    """Re-hash the model's stored files; record the outcome (drift changes the status)."""
    actor = f"worker:{worker_id}"
    with db.read() as session:
        model = session.get(Model, job.model_id)
        files = [(f.path, f.sha256) for f in catalog.files_of(session, job.model_id)] if model else []
    storage = Storage(settings)
    drifted: list[tuple[str, str]] = []
    for path, digest in files:
        now_digest = storage.hash_blob(digest)
        if now_digest != digest:
            drifted.append((path, "went missing" if now_digest is None else "changed"))
    with db.write() as session:
        held = queue.held(session, job.id, worker_id)
        if held is None:
            return
        model = session.get(Model, job.model_id)
        if model is None:
            queue.finish(held)
            return
        started = utcnow()
        detail = "; ".join(f"{p} {w}" for p, w in drifted) or f"{len(files)} file(s) match their digests"
        session.add(
            Scan(
                model_id=model.id,
                job_id=job.id,
                kind="verify",
                reason=job.reason,
                started_at=started,
                finished_at=utcnow(),
                outcome="drift" if drifted else "ok",
                detail=detail[:2000],
            )
        )
        model.last_verified_at = utcnow()
        if drifted:
            _mark_drift(session, model, drifted, actor)
        queue.finish(held)


def _mark_drift(session: Session, model: Model, drifted: list[tuple[str, str]], actor: str) -> None:
    bad = dict(drifted)
    for item in catalog.files_of(session, model.id):
        if item.path in bad:
            item.indicator = "unsafe"
            item.findings = [drift_finding(item.path, bad[item.path]), *(item.findings or [])][:200]
    names = ", ".join(f"{p} {w}" for p, w in drifted)
    log.warning("drift in model %s (%s): %s", model.id, model.name, names)
    audit.record(session, actor, "model.drift", f"model:{model.id}", files=[p for p, _ in drifted])
    webhooks.emit(session, "model.drift", {"id": model.id, "name": model.name, "files": [p for p, _ in drifted]})
    reason = f"drift: stored bytes differ from the registered digests ({names})"
    catalog.set_status(session, model, "failed", reason[:2000], actor)
