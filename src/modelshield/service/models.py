"""The catalog's tables as typed SQLAlchemy 2 ORM classes (the schema itself is made by the migrations).

Times are stored as naive UTC and read back as aware UTC (:class:`UTCDateTime`), the same on SQLite
and PostgreSQL. ``tests/service`` checks that these classes and the migrated schema agree.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Model statuses. "scanning" while a worker holds the job; the last four are final for a scan.
STATUSES = ("pending", "scanning", "passed", "warn", "failed", "scan_failed", "revoked")
ROLES = ("viewer", "publisher", "admin")
INDICATORS = ("safe", "suspicious", "unsafe")
WAIVER_STATES = ("requested", "approved", "rejected", "expired")


def utcnow() -> _dt.datetime:
    """Now, aware, in UTC, to the microsecond."""
    return _dt.datetime.now(_dt.UTC)


class UTCDateTime(TypeDecorator[_dt.datetime]):
    """A timestamp stored as naive UTC, returned as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: _dt.datetime | None, dialect: Dialect) -> _dt.datetime | None:
        """Aware -> naive UTC (a naive value is taken to be UTC already)."""
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: _dt.datetime | None, dialect: Dialect) -> _dt.datetime | None:
        """Naive UTC -> aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalog's tables."""

    type_annotation_map = {_dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Model(Base):
    """A registered model: its name, current status and the profile it is governed by."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    profile: Mapped[str] = mapped_column(String(64))
    dynamic: Mapped[bool] = mapped_column(Boolean, default=False)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    root_digest: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    current_scan_id: Mapped[int | None] = mapped_column(Integer, default=None)
    attestation_expires_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    last_verified_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(200), default=None)
    revoke_reason: Mapped[str | None] = mapped_column(Text, default=None)


class Blob(Base):
    """A stored file, by content: the same bytes are stored once whatever models use them."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)


class ModelFile(Base):
    """One file of a model (its relative path) and what the last scan said about it."""

    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("model_id", "path", name="uq_model_files_model_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    indicator: Mapped[str | None] = mapped_column(String(16), default=None)
    findings: Mapped[list[Any]] = mapped_column(default=list)


class Scan(Base):
    """One scan or re-verification of a model: the history the model page shows."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(8), default=None)
    decision: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: The big texts are loaded only when asked for (model pages and lists never need them).
    report: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)
    attestation: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)
    attestation_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    card: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)
    expires_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    rules_version: Mapped[str | None] = mapped_column(String(32), default=None)
    advisory_snapshot: Mapped[str | None] = mapped_column(String(32), default=None)
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    #: True when ``report`` holds a report (kept so pages need not load it).
    has_report: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A fleet entry's artifacts (fleet codec JSON), to re-evaluate it without its bytes.
    artifacts: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)


class Job(Base):
    """A unit of work in the queue: claimed by one worker under a lease, retried when the lease lapses."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_not_before", "state", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    not_before: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    worker_id: Mapped[str | None] = mapped_column(String(64), default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[_dt.datetime | None] = mapped_column(default=None)


class Worker(Base):
    """A worker process, by the heartbeat it sends (for /healthz)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[_dt.datetime] = mapped_column(default=utcnow, index=True)
    current_job_id: Mapped[int | None] = mapped_column(Integer, default=None)


class Token(Base):
    """An API token: only its SHA-256 is stored; the name is the identity of whoever holds it."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[_dt.datetime | None] = mapped_column(default=None)


class UISession(Base):
    """A browser session made by logging in with a token (the cookie value is stored hashed)."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[_dt.datetime] = mapped_column()


class Waiver(Base):
    """A request to waive a finding or policy rule for one model, decided by someone else, until a date."""

    __tablename__ = "waivers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    expires_on: Mapped[_dt.date] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200), default=None)
    decided_at: Mapped[_dt.datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One decision, append-only (the database refuses UPDATE and DELETE on this table)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[_dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Webhook(Base):
    """Where status changes are sent, with the secret their bodies are signed with (HMAC-SHA256)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class Delivery(Base):
    """One event for one webhook: retried with backoff until delivered or given up (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[_dt.datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[_dt.datetime | None] = mapped_column(default=None)


class Setting(Base):
    """Service-wide values: the policy YAML, the versions the catalog was last evaluated against."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Lock(Base):
    """A named lease (the scheduler runs in one worker at a time)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), default=None)
    expires_at: Mapped[_dt.datetime | None] = mapped_column(default=None)


class FleetVerdict(Base):
    """One file's scan result in the fleet sweep's cache, by content and versions (:mod:`modelshield.fleet.cache`)."""

    __tablename__ = "fleet_verdicts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    context: Mapped[str] = mapped_column(String(400), primary_key=True)
    rules_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    engine_version: Mapped[str] = mapped_column(String(200), primary_key=True)
    advisory_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    packages: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))


class FleetResult(Base):
    """One listed file of one sweep (``run_id``), in listing order: the sweep's log."""

    __tablename__ = "fleet_results"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    verdict: Mapped[str] = mapped_column(String(8))
    cached: Mapped[int] = mapped_column(Integer)
    findings: Mapped[str] = mapped_column(Text)
    finished_at: Mapped[str] = mapped_column(String(32))


class ProbeSigner(Base):
    """A public key the catalog trusts to sign ``modelshield probe`` statements (added by an admin)."""

    __tablename__ = "probe_signers"

    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    pem: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)


class ProbeStatement(Base):
    """A signed endpoint probe result attached to a model, verified when it was submitted.

    It is shown alongside the file scan and never changes the model's status (:mod:`.probes`).
    """

    __tablename__ = "probe_statements"
    __table_args__ = (UniqueConstraint("model_id", "statement_sha256", name="uq_probe_statements_model_statement"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(Text)
    served_model: Mapped[str | None] = mapped_column(String(200), default=None)
    verdict: Mapped[str] = mapped_column(String(8))
    profile: Mapped[str] = mapped_column(String(64))
    #: Per family: ``{"hits", "trials", "rate", "low", "high"}`` (the statement's Wilson intervals).
    families: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Findings by severity.
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    coverage_complete: Mapped[bool] = mapped_column(Boolean)
    #: None when the probe ran without a baseline.
    drift: Mapped[bool | None] = mapped_column(Boolean, default=None)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    signer_keyid: Mapped[str] = mapped_column(String(64))
    signer_name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 of the signed payload (the statement), as ``verify --online`` digests attestations.
    statement_sha256: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[str] = mapped_column(Text, deferred=True)
    probed_at: Mapped[_dt.datetime | None] = mapped_column(default=None)
    expires_at: Mapped[_dt.datetime] = mapped_column()
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[_dt.datetime] = mapped_column(default=utcnow)
