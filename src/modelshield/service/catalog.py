"""What the catalog does, whoever asks (API or UI): register, change status, waivers, revocation.

Every function works inside the caller's write transaction and writes its audit entries and webhook
events into it, so a change, its audit entry and its alert exist together or not at all.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelshield.attest.manifest import is_ignored
from modelshield.service import audit, policy_store, queue, webhooks
from modelshield.service.auth import Principal
from modelshield.service.errors import ServiceError, conflict, forbidden, invalid, not_found
from modelshield.service.models import Blob, Job, Model, ModelFile, Scan, Waiver, utcnow
from modelshield.service.settings import Settings
from modelshield.service.storage import StoredFile

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")
FINAL = ("passed", "warn", "failed", "scan_failed")
MAX_WAIVER_DAYS = 366
MAX_FILES = 10_000
#: Rule ids a waiver may name: finding rule ids, advisory ids, policy rule ids (``denied_formats``, ``cve#2``).
WAIVER_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#-]{0,199}$")


def check_model_name(name: str) -> str:
    """A model name: a letter, then up to 99 letters, digits or ``._-`` (URL- and path-safe), or 422."""
    if not isinstance(name, str) or not NAME.match(name):
        raise invalid(
            "a model name starts with a letter and has up to 100 letters, digits, '.', '_' or '-'",
            code="invalid_name",
        )
    return name


def name_taken(session: Session, name: str) -> bool:
    """True when a model already has this name."""
    return session.scalar(select(Model.id).where(Model.name == name)) is not None


def register(
    session: Session,
    settings: Settings,
    *,
    name: str,
    files: Sequence[StoredFile],
    profile: str | None,
    dynamic: bool,
    source_kind: str,
    source_ref: str,
    principal: Principal,
) -> Model:
    """Create the model, its files and its first scan job (409 when the name is taken)."""
    check_model_name(name)
    if not files:
        raise invalid("a model needs at least one file", code="empty_model")
    if len(files) > MAX_FILES:
        raise invalid(f"a model has at most {MAX_FILES} files", code="too_many_files")
    paths = [f.relpath for f in files]
    if len(set(paths)) != len(paths):
        raise ServiceError(400, "duplicate_file_name", "two files of the upload have the same name")
    folders = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    clash = sorted(folders & set(paths))
    if clash:
        raise invalid(f"{clash[0]!r} is both a file and a folder of the upload", code="conflicting_file_names")
    if all(is_ignored(p) for p in paths):
        raise invalid("a model needs at least one file besides its card (README.md)", code="empty_model")
    chosen = policy_store.check_profile(session, profile)
    if name_taken(session, name):
        raise conflict(f"a model named {name!r} exists already", code="name_taken")
    now = utcnow()
    model = Model(
        name=name,
        status="pending",
        status_reason="queued for scanning",
        profile=chosen,
        dynamic=dynamic,
        source_kind=source_kind,
        source_ref=source_ref[:2000],
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(model)
    for item in {f.sha256: f for f in files}.values():
        add_blob(session, item.sha256, item.size)
    try:
        session.flush()
    except IntegrityError:
        raise conflict(f"a model named {name!r} exists already", code="name_taken") from None
    for item in sorted(files, key=lambda f: f.relpath):
        session.add(ModelFile(model_id=model.id, path=item.relpath, sha256=item.sha256, size=item.size, findings=[]))
    queue.enqueue(session, model.id, "scan", "registered", settings.max_attempts)
    audit.record(
        session,
        principal.actor,
        "model.register",
        f"model:{model.id}",
        name=name,
        source=source_kind,
        files=len(files),
        profile=chosen,
        dynamic=dynamic,
    )
    webhooks.emit(session, "model.registered", {"id": model.id, "name": name, "status": "pending"})
    return model


def add_blob(session: Session, sha256: str, size: int) -> None:
    """Record stored bytes once, even when two registrations of the same new bytes race."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(Blob).values(sha256=sha256, size=size, created_at=utcnow()).on_conflict_do_nothing())
    elif session.get(Blob, sha256) is None:  # SQLite: write transactions are serialised (BEGIN IMMEDIATE)
        session.add(Blob(sha256=sha256, size=size, created_at=utcnow()))


def get_model(session: Session, model_id: int) -> Model:
    """The model with this id, or 404."""
    model = session.get(Model, model_id)
    if model is None:
        raise not_found(f"model {model_id}")
    return model


def current_scan_text(session: Session, model_id: int, what: str) -> str:
    """The ``report``, ``attestation`` or ``card`` of the model's current scan; 404 when there is none."""
    if what not in ("report", "attestation", "card"):
        raise ValueError(what)
    model = get_model(session, model_id)
    scan = session.get(Scan, model.current_scan_id) if model.current_scan_id else None
    text: str | None = getattr(scan, what) if scan is not None else None
    if not text:
        raise not_found(f"the {what} of model {model_id}")
    return text


def find_model(session: Session, ref: str) -> Model | None:
    """A model by numeric id or by name."""
    if ref.isdigit():
        return session.get(Model, int(ref))
    return session.scalar(select(Model).where(Model.name == ref))


def files_of(session: Session, model_id: int) -> list[ModelFile]:
    """The model's files, by path."""
    return list(session.scalars(select(ModelFile).where(ModelFile.model_id == model_id).order_by(ModelFile.path)))


def set_status(session: Session, model: Model, status: str, reason: str, actor: str, **detail: object) -> None:
    """Change the model's status; a change is audited and alerted. A revoked model stays revoked."""
    if model.status == "revoked" and status != "revoked":
        return
    previous = model.status
    model.status = status
    model.status_reason = reason[:2000]
    model.updated_at = utcnow()
    if previous != status:
        audit.record(
            session, actor, "model.status", f"model:{model.id}", status=status, previous=previous, reason=reason[:500]
        )
        webhooks.emit(
            session,
            "model.status",
            {"id": model.id, "name": model.name, "status": status, "previous": previous, "reason": reason[:500]},
        )


def rescan(session: Session, settings: Settings, model: Model, actor: str, reason: str) -> Job:
    """Queue a fresh scan and evaluation of the model (not for revoked models)."""
    if model.status == "revoked":
        raise conflict("a revoked model is not scanned again", code="revoked")
    job = queue.enqueue(session, model.id, "scan", reason, settings.max_attempts)
    audit.record(session, actor, "model.rescan", f"model:{model.id}", reason=reason, job=job.id)
    return job


def verify_now(session: Session, settings: Settings, model: Model, actor: str) -> Job:
    """Queue a re-hash of the model's stored files (drift check); 409 for a fleet entry (no stored bytes)."""
    if model.source_kind == "fleet":
        raise conflict(
            "the catalog holds no bytes of a swept model: the next fleet sweep re-verifies it "
            f"(modelshield fleet scan ... --database-url), target {model.source_ref[:200]}",
            code="fleet_entry",
        )
    job = queue.enqueue(session, model.id, "verify", "requested", settings.max_attempts)
    audit.record(session, actor, "model.verify", f"model:{model.id}", job=job.id)
    return job


def revoke(session: Session, model: Model, reason: str, principal: Principal) -> None:
    """Revoke the model and every attestation issued for it (final)."""
    if not reason.strip():
        raise invalid("a revocation needs a reason", code="reason_required")
    if model.status == "revoked":
        raise conflict("the model is revoked already", code="revoked")
    model.revoked_at = utcnow()
    model.revoked_by = principal.actor
    model.revoke_reason = reason[:2000]
    audit.record(session, principal.actor, "model.revoke", f"model:{model.id}", reason=reason[:500])
    set_status(session, model, "revoked", f"revoked by {principal.actor}: {reason}"[:2000], principal.actor)


def replace_policy(session: Session, settings: Settings, text: str, actor: str) -> dict[str, object]:
    """Store a new policy (422 when invalid) and queue every evaluated model for re-evaluation."""
    spec = policy_store.store(session, text, actor)
    used = set(session.scalars(select(Model.profile).where(Model.status != "revoked").distinct()))
    missing = sorted(used - set(spec.profiles))
    if missing:
        raise invalid(
            f"models still use profile(s) {', '.join(missing)}: keep them in the policy", code="invalid_policy"
        )
    ids = session.scalars(select(Model.id).where(Model.status.in_(("passed", "warn", "failed")))).all()
    for model_id in ids:
        queue.enqueue(session, model_id, "scan", "policy-changed", settings.max_attempts)
    return {"profiles": sorted(spec.profiles), "requeued": len(ids)}


# --------------------------------------------------------------------------------------------- waivers


def request_waiver(
    session: Session, model: Model, rule: str, reason: str, expires_on: _dt.date, principal: Principal
) -> Waiver:
    """Ask for a waiver of ``rule`` on the model until ``expires_on``; someone else must approve it."""
    if not WAIVER_RULE.match(rule or ""):
        raise invalid("the rule is a finding rule id, an advisory id or a policy rule id", code="invalid_rule")
    if not reason or not reason.strip():
        raise invalid("a waiver needs a reason", code="reason_required")
    today = utcnow().date()
    if expires_on <= today:
        raise invalid("the expiry date must be in the future", code="invalid_expiry")
    if expires_on > today + _dt.timedelta(days=MAX_WAIVER_DAYS):
        raise invalid(f"a waiver lasts at most {MAX_WAIVER_DAYS} days", code="invalid_expiry")
    if model.status == "revoked":
        raise conflict("a revoked model cannot be waived", code="revoked")
    waiver = Waiver(
        model_id=model.id,
        rule=rule,
        reason=reason.strip()[:4000],
        state="requested",
        expires_on=expires_on,
        requested_by=principal.actor,
        requested_at=utcnow(),
    )
    session.add(waiver)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "waiver.request",
        f"model:{model.id}",
        waiver=waiver.id,
        rule=rule,
        expires=expires_on.isoformat(),
        reason=waiver.reason[:500],
    )
    return waiver


def get_waiver(session: Session, waiver_id: int) -> Waiver:
    """The waiver with this id, or 404."""
    waiver = session.get(Waiver, waiver_id)
    if waiver is None:
        raise not_found(f"waiver {waiver_id}")
    return waiver


def decide_waiver(session: Session, settings: Settings, waiver: Waiver, approve: bool, principal: Principal) -> None:
    """Approve or reject a requested waiver: never by its requester; approval re-evaluates the model."""
    if waiver.state != "requested":
        raise conflict(f"the waiver is {waiver.state} already", code="waiver_decided")
    if principal.actor == waiver.requested_by:
        raise forbidden("a waiver must be decided by someone other than its requester", code="self_approval")
    if approve and waiver.expires_on <= utcnow().date():
        raise conflict("the waiver has expired", code="waiver_expired")
    waiver.state = "approved" if approve else "rejected"
    waiver.decided_by = principal.actor
    waiver.decided_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "waiver.approve" if approve else "waiver.reject",
        f"model:{waiver.model_id}",
        waiver=waiver.id,
        rule=waiver.rule,
        requested_by=waiver.requested_by,
    )
    model = get_model(session, waiver.model_id)
    if approve and model.status != "revoked":
        queue.enqueue(session, model.id, "scan", "waiver", settings.max_attempts)


def active_waivers(session: Session, model_id: int, today: _dt.date) -> list[Waiver]:
    """Approved waivers of the model that have not expired."""
    return list(
        session.scalars(
            select(Waiver)
            .where(Waiver.model_id == model_id, Waiver.state == "approved", Waiver.expires_on >= today)
            .order_by(Waiver.id)
        )
    )


def expire_waivers(session: Session, settings: Settings, today: _dt.date) -> list[Waiver]:
    """Mark approved waivers past their date expired and queue their models' re-evaluation."""
    rows = list(session.scalars(select(Waiver).where(Waiver.state == "approved", Waiver.expires_on < today)))
    for waiver in rows:
        waiver.state = "expired"
        audit.record(
            session, "system:scheduler", "waiver.expire", f"model:{waiver.model_id}", waiver=waiver.id, rule=waiver.rule
        )
        model = session.get(Model, waiver.model_id)
        if model is not None and model.status != "revoked":
            queue.enqueue(session, model.id, "scan", "waiver-expired", settings.max_attempts)
    return rows
