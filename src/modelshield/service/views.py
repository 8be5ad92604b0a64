"""JSON views of the catalog's rows, shared by the API and the UI (one shape for both)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelshield.service import badges, catalog
from modelshield.service.models import AuditEntry, Delivery, Job, Model, Scan, Token, Waiver, Webhook


def when(moment: _dt.datetime | _dt.date | None) -> str | None:
    """RFC 3339 UTC (``...Z``) or a date, or None."""
    if moment is None:
        return None
    if isinstance(moment, _dt.datetime):
        return moment.astimezone(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return moment.isoformat()


def model_summary(model: Model) -> dict[str, Any]:
    """A model in lists."""
    return {
        "id": model.id,
        "name": model.name,
        "status": model.status,
        "status_reason": model.status_reason,
        "badge": badges.badge_state(model.status, model.attestation_expires_at),
        "profile": model.profile,
        "dynamic": model.dynamic,
        "created_at": when(model.created_at),
        "updated_at": when(model.updated_at),
        "created_by": model.created_by,
    }


def model_detail(session: Session, model: Model) -> dict[str, Any]:
    """A model with its files, indicators, findings, decision, CVE relevance, waivers and links."""
    files = catalog.files_of(session, model.id)
    scan = session.get(Scan, model.current_scan_id) if model.current_scan_id else None
    cves = [
        {**finding, "file": item.path}
        for item in files
        for finding in item.findings or []
        if finding.get("category") == "vulnerability"
    ]
    has_attestation = scan is not None and scan.attestation_sha256 is not None
    return {
        **model_summary(model),
        "source": {"kind": model.source_kind, "ref": model.source_ref},
        "root_digest": model.root_digest,
        "files": [
            {
                "path": item.path,
                "sha256": item.sha256,
                "size": item.size,
                "indicator": item.indicator,
                "findings": item.findings or [],
            }
            for item in files
        ],
        "verdict": scan.verdict if scan else None,
        "decision": scan.decision if scan else None,
        "cve_findings": cves,
        "rules_version": scan.rules_version if scan else None,
        "advisory_snapshot": scan.advisory_snapshot if scan else None,
        "scanned_at": when(scan.finished_at) if scan else None,
        "attestation_url": f"/api/v1/models/{model.id}/attestation" if has_attestation else None,
        "card_url": f"/api/v1/models/{model.id}/card" if has_attestation else None,
        "report_url": f"/api/v1/models/{model.id}/report" if scan is not None and scan.has_report else None,
        "badge_url": f"/badge/{model.name}.svg",
        "attestation_expires_at": when(model.attestation_expires_at),
        "last_verified_at": when(model.last_verified_at),
        "revoked_at": when(model.revoked_at),
        "revoke_reason": model.revoke_reason,
        "waivers": [waiver(w) for w in waivers_of(session, model.id)],
        "jobs": [job(j) for j in jobs_of(session, model.id)],
    }


def jobs_of(session: Session, model_id: int, limit: int = 10) -> list[Job]:
    """The model's most recent jobs, newest first."""
    return list(session.scalars(select(Job).where(Job.model_id == model_id).order_by(Job.id.desc()).limit(limit)))


def job(row: Job) -> dict[str, Any]:
    """A queue job (what the worker did or is doing for the model)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "reason": row.reason,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "last_error": row.last_error,
        "created_at": when(row.created_at),
        "finished_at": when(row.finished_at),
    }


def waivers_of(session: Session, model_id: int) -> list[Waiver]:
    """The model's waivers, newest first."""
    return list(session.scalars(select(Waiver).where(Waiver.model_id == model_id).order_by(Waiver.id.desc())))


def waiver(row: Waiver) -> dict[str, Any]:
    """A waiver."""
    return {
        "id": row.id,
        "model_id": row.model_id,
        "rule": row.rule,
        "reason": row.reason,
        "state": row.state,
        "expires_at": when(row.expires_on),
        "requested_by": row.requested_by,
        "requested_at": when(row.requested_at),
        "decided_by": row.decided_by,
        "decided_at": when(row.decided_at),
    }


def scan_entry(row: Scan) -> dict[str, Any]:
    """One line of a model's history (scans and re-verifications)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "reason": row.reason,
        "outcome": row.outcome,
        "verdict": row.verdict,
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
        "rules_version": row.rules_version,
        "advisory_snapshot": row.advisory_snapshot,
        "attestation_sha256": row.attestation_sha256,
        "expires_at": when(row.expires_at),
        "detail": row.detail,
    }


def history(session: Session, model_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The model's scans and verifications, newest first."""
    rows = session.scalars(select(Scan).where(Scan.model_id == model_id).order_by(Scan.id.desc()).limit(limit))
    return [scan_entry(r) for r in rows]


def audit_entry(row: AuditEntry) -> dict[str, Any]:
    """An audit log entry."""
    return {
        "id": row.id,
        "at": when(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": row.detail,
    }


def token(row: Token) -> dict[str, Any]:
    """A token, without its value (which is never stored)."""
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "created_at": when(row.created_at),
        "created_by": row.created_by,
        "revoked_at": when(row.revoked_at),
        "last_used_at": when(row.last_used_at),
    }


def webhook(row: Webhook) -> dict[str, Any]:
    """A webhook, without its secret."""
    return {
        "id": row.id,
        "url": row.url,
        "active": row.active,
        "created_at": when(row.created_at),
        "created_by": row.created_by,
    }


def delivery(row: Delivery) -> dict[str, Any]:
    """One entry of a webhook's delivery log."""
    return {
        "id": row.id,
        "event": row.event,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": when(row.created_at),
        "next_attempt_at": when(row.next_attempt_at),
        "delivered_at": when(row.delivered_at),
    }
