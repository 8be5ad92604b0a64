"""Endpoint probe results on catalog entries: signed ``modelshield probe`` statements, verified, then stored.

``POST /api/v1/models/{ref}/probes`` (publisher) takes the DSSE envelope ``modelshield probe --sign``
writes. Before anything is stored the service checks, in this order: a JSON DSSE envelope of an
in-toto statement; the probe predicate type (a scan attestation is refused as such); a signature by
a key an admin trusts for probe statements (``/api/v1/probe-signers``; the service's own key signs
scans, not probes, and is not one of them); a well-formed predicate; not expired; the model exists
and is not revoked; the same statement is not attached twice. Every refusal is a 4xx in the one
error format and stores nothing; an accepted statement, its audit entry and its ``model.probe``
webhook event are written in one transaction.

A probe result is shown alongside the file scan and never changes the model's status: the status
says what the stored files are, a probe says how one endpoint serving the model behaved when it was
probed. Nothing binds the endpoint to the stored bytes cryptographically (the statement's subject is
the endpoint's identity fingerprint), so attaching records who vouched for that link
(``submitted_by``, in the audit log too). The trust decision is kept with the row (signer key id and
name at submission); removing a signer later does not rewrite history, it refuses new statements.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from modelshield.attest import dsse
from modelshield.attest.intoto import PREDICATE_TYPE as SCAN_PREDICATE_TYPE
from modelshield.attest.intoto import STATEMENT_TYPE, parse_time
from modelshield.attest.signers import KeyFileError, KeyVerifier, load_verifier, public_pem
from modelshield.attest.truststore import TrustedKey, TrustStore
from modelshield.probe.statement import MAX_STATEMENT_BYTES, PROBE_PREDICATE_TYPE
from modelshield.service import audit, catalog, views, webhooks
from modelshield.service.auth import Principal
from modelshield.service.deps import Caller, Parts, Services, services
from modelshield.service.errors import ServiceError, bad_request, conflict, invalid, not_found
from modelshield.service.models import Model, ProbeSigner, ProbeStatement, utcnow

router = APIRouter(prefix="/api/v1")
VERDICTS = ("pass", "warn", "fail")
SEVERITIES = ("critical", "high", "medium", "low", "info")
MAX_FAMILIES = 64
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FAMILY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIGNER_NAME = re.compile(r"^[\w.@+-][\w .@+-]{0,99}$")
_ADD_SIGNER = "an admin adds the prober's public key with POST /api/v1/probe-signers"


@dataclass(frozen=True, slots=True)
class CheckedStatement:
    """What a verified probe statement says (the columns of :class:`ProbeStatement`)."""

    endpoint: str
    served_model: str | None
    verdict: str
    profile: str
    families: dict[str, dict[str, float | int]]
    findings: dict[str, int]
    coverage_complete: bool
    drift: bool | None
    fingerprint_sha256: str | None
    signer_keyid: str
    signer_name: str
    statement_sha256: str
    envelope: str
    probed_at: _dt.datetime | None
    expires_at: _dt.datetime


# --------------------------------------------------------------------------------------------- checking


def trusted_signers(session: Session) -> TrustStore:
    """The keys an admin trusts to sign probe statements."""
    rows = session.scalars(select(ProbeSigner).order_by(ProbeSigner.added_at)).all()
    return TrustStore([TrustedKey(r.name, load_verifier(r.pem.encode(), f"probe signer {r.name}")) for r in rows])


def _malformed(what: str) -> ServiceError:
    return invalid(f"malformed probe statement: {what}", code="malformed_statement")


def _envelope(body: bytes) -> tuple[dsse.Envelope, dict[str, Any]]:
    """The DSSE envelope and its (not yet trusted) in-toto statement, or 400/422 saying what it is instead."""
    if len(body) > MAX_STATEMENT_BYTES:
        raise ServiceError(413, "payload_too_large", f"a probe statement is at most {MAX_STATEMENT_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_request(
            "the body is not valid JSON: send the DSSE envelope `modelshield probe --sign` wrote",
            code="malformed_json",
        ) from None
    if not isinstance(raw, dict) or not {"payload", "payloadType", "signatures"} <= set(raw):
        raise bad_request(
            "the body is not a DSSE envelope (payloadType, payload, signatures): "
            "send the file `modelshield probe --sign` wrote",
            code="invalid_envelope",
        )
    try:
        envelope = dsse.parse(body, "the body")
    except dsse.EnvelopeError as exc:
        raise bad_request(exc.message, code="invalid_envelope") from None
    if envelope.payload_type != dsse.INTOTO_PAYLOAD_TYPE:
        raise invalid(
            f"the envelope's payload type is {envelope.payload_type[:100]!r}, not an in-toto statement "
            f"({dsse.INTOTO_PAYLOAD_TYPE})",
            code="not_a_probe_statement",
        )
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _malformed("the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise _malformed(f"the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    kind = statement.get("predicateType")
    if kind == SCAN_PREDICATE_TYPE:
        raise invalid(
            "this is a modelshield scan attestation, not a probe statement: the catalog makes scan "
            "attestations itself; attach the statement `modelshield probe --sign` wrote",
            code="not_a_probe_statement",
        )
    if kind != PROBE_PREDICATE_TYPE:
        raise invalid(
            f"the statement's predicate type is {str(kind)[:200]!r}, not a modelshield probe statement "
            f"({PROBE_PREDICATE_TYPE})",
            code="not_a_probe_statement",
        )
    return envelope, statement


def _signer(envelope: dsse.Envelope, trust: TrustStore) -> tuple[str, str]:
    """(key id, name) of the trusted key that signed the envelope, or 422 saying why none did."""
    verifier = dsse.verify(envelope, trust)
    if verifier is not None:
        return verifier.keyid, trust.name_of(verifier.keyid) or verifier.keyid[:16]
    hinted = sorted({s.keyid for s in envelope.signatures})
    known = [name for name in (trust.name_of(k) for k in hinted) if name]
    if known:
        raise invalid(
            f"the statement names trusted probe signer {known[0]!r} but its signature does not match: "
            "it was altered after signing (or signed by another key); probe and sign again",
            code="bad_signature",
        )
    if not len(trust):
        raise invalid(f"this catalog trusts no probe signer yet: {_ADD_SIGNER}", code="untrusted_signer")
    shown = ", ".join(k[:16] for k in hinted) or "(no key id)"
    raise invalid(f"signed by key {shown}, which this catalog does not trust: {_ADD_SIGNER}", code="untrusted_signer")


def _text(value: object, where: str, limit: int, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _malformed(f"{where} is not a string of 1-{limit} characters")
    return value


def _families(value: object) -> dict[str, dict[str, float | int]]:
    if not isinstance(value, dict) or len(value) > MAX_FAMILIES:
        raise _malformed(f"predicate.families is not an object of at most {MAX_FAMILIES} families")
    out: dict[str, dict[str, float | int]] = {}
    for name, rate in value.items():
        if not _FAMILY.match(name) or not isinstance(rate, dict):
            raise _malformed(f"predicate.families has a bad entry {str(name)[:64]!r}")
        hits, trials = rate.get("hits"), rate.get("trials")
        if not (isinstance(hits, int) and isinstance(trials, int) and 0 <= hits <= trials):
            raise _malformed(f"predicate.families.{name}: hits and trials are counts, hits <= trials")
        bounds = [rate.get(k) for k in ("rate", "low", "high")]
        if not all(isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b <= 1 for b in bounds):
            raise _malformed(f"predicate.families.{name}: rate, low and high are numbers in [0, 1]")
        rate_value, low, high = (float(b) for b in bounds)  # type: ignore[arg-type]
        out[name] = {"hits": hits, "trials": trials, "rate": rate_value, "low": low, "high": high}
    return out


def _time(value: object, where: str) -> _dt.datetime:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise _malformed(f"{where} is not an RFC 3339 time with a time zone")


def check_statement(body: bytes, trust: TrustStore, *, now: _dt.datetime | None = None) -> CheckedStatement:
    """Verify a submitted envelope against the trusted probe signers; ServiceError (4xx) saying what is wrong."""
    envelope, statement = _envelope(body)
    keyid, name = _signer(envelope, trust)
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise _malformed("predicate is not an object")
    verdict = predicate.get("verdict")
    if verdict not in VERDICTS:
        raise _malformed(f"predicate.verdict is not one of {', '.join(VERDICTS)}")
    coverage, identity = predicate.get("coverage"), predicate.get("identity")
    if not isinstance(coverage, dict) or not isinstance(coverage.get("complete"), bool):
        raise _malformed("predicate.coverage.complete is not true or false")
    if not isinstance(identity, dict) or not (identity.get("drift") is None or isinstance(identity["drift"], bool)):
        raise _malformed("predicate.identity.drift is not true, false or null")
    fingerprint = identity.get("fingerprintSha256")
    if fingerprint is not None and not (isinstance(fingerprint, str) and _SHA256.match(fingerprint)):
        raise _malformed("predicate.identity.fingerprintSha256 is not a SHA-256")
    counts = predicate.get("findings") or {}
    if not isinstance(counts, dict) or not all(isinstance(counts.get(s, 0), int) for s in SEVERITIES):
        raise _malformed("predicate.findings is not a count per severity")
    expires = _time(predicate.get("expiresAt"), "predicate.expiresAt")
    probed = _time(predicate["probedAt"], "predicate.probedAt") if predicate.get("probedAt") else None
    if (now or utcnow()) >= expires:
        raise invalid(
            f"the probe statement expired at {predicate['expiresAt']}: probe the endpoint again and attach the new one",
            code="expired_statement",
        )
    return CheckedStatement(
        endpoint=str(_text(predicate.get("endpoint"), "predicate.endpoint", 2000)),
        served_model=_text(predicate.get("model"), "predicate.model", 200, optional=True),
        verdict=str(verdict),
        profile=str(_text(predicate.get("riskProfile"), "predicate.riskProfile", 64)),
        families=_families(predicate.get("families")),
        findings={s: int(counts.get(s, 0)) for s in SEVERITIES},
        coverage_complete=bool(coverage["complete"]),
        drift=identity.get("drift"),
        fingerprint_sha256=fingerprint,
        signer_keyid=keyid,
        signer_name=name,
        statement_sha256=hashlib.sha256(envelope.payload).hexdigest(),
        envelope=envelope.to_json(),
        probed_at=probed,
        expires_at=expires,
    )


# --------------------------------------------------------------------------------------------- storing


def _model(session: Session, ref: str) -> Model:
    model = catalog.find_model(session, ref)
    if model is None:
        raise not_found(f"model {ref[:100]!r}")
    return model


def attach(session: Session, ref: str, checked: CheckedStatement, principal: Principal) -> ProbeStatement:
    """Store a verified statement on the model ``ref`` (404 missing, 409 revoked or attached already)."""
    model = _model(session, ref)
    if model.status == "revoked":
        raise conflict("the model is revoked: no probe results are attached to it", code="revoked")
    if session.get(ProbeSigner, checked.signer_keyid) is None:  # removed since the statement was checked
        raise invalid(f"the statement's signer is no longer trusted: {_ADD_SIGNER}", code="untrusted_signer")
    same = select(ProbeStatement.id).where(
        ProbeStatement.model_id == model.id, ProbeStatement.statement_sha256 == checked.statement_sha256
    )
    if session.scalar(same) is not None:
        raise conflict("this probe statement is attached to the model already", code="duplicate_statement")
    row = ProbeStatement(model_id=model.id, submitted_by=principal.actor, submitted_at=utcnow(), **_columns(checked))
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise conflict("this probe statement is attached to the model already", code="duplicate_statement") from None
    audit.record(
        session,
        principal.actor,
        "probe.attach",
        f"model:{model.id}",
        probe=row.id,
        endpoint=row.endpoint[:500],
        served_model=row.served_model,
        verdict=row.verdict,
        signer=row.signer_name,
        statement_sha256=row.statement_sha256,
    )
    webhooks.emit(
        session,
        "model.probe",
        {
            "id": model.id,
            "name": model.name,
            "probe": row.id,
            "endpoint": row.endpoint[:500],
            "served_model": row.served_model,
            "verdict": row.verdict,
            "drift": row.drift,
            "coverage_complete": row.coverage_complete,
            "signer": row.signer_name,
        },
    )
    return row


def _columns(checked: CheckedStatement) -> dict[str, Any]:
    return {f.name: getattr(checked, f.name) for f in dataclasses.fields(checked)}


def summary(row: ProbeStatement, now: _dt.datetime | None = None) -> dict[str, Any]:
    """The JSON form of an attached statement (the envelope itself is at ``statement_url``)."""
    return {
        "id": row.id,
        "model_id": row.model_id,
        "endpoint": row.endpoint,
        "served_model": row.served_model,
        "verdict": row.verdict,
        "profile": row.profile,
        "families": row.families,
        "hits": sum(int(f.get("hits", 0)) for f in row.families.values()),
        "trials": sum(int(f.get("trials", 0)) for f in row.families.values()),
        "findings": row.findings,
        "coverage_complete": row.coverage_complete,
        "drift": row.drift,
        "fingerprint_sha256": row.fingerprint_sha256,
        "signer": {"keyid": row.signer_keyid, "name": row.signer_name},
        "statement_sha256": row.statement_sha256,
        "probed_at": views.when(row.probed_at),
        "expires_at": views.when(row.expires_at),
        "expired": (now or utcnow()) >= row.expires_at,
        "submitted_by": row.submitted_by,
        "submitted_at": views.when(row.submitted_at),
        "statement_url": f"/api/v1/models/{row.model_id}/probes/{row.id}/statement",
    }


def latest(session: Session, model_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The model's attached statements, newest first."""
    rows = session.scalars(
        select(ProbeStatement)
        .where(ProbeStatement.model_id == model_id)
        .order_by(ProbeStatement.submitted_at.desc(), ProbeStatement.id.desc())
        .limit(limit)
    )
    now = utcnow()
    return [summary(r, now) for r in rows]


# --------------------------------------------------------------------------------------------- routes


def _store(parts: Services, ref: str, body: bytes, who: Principal) -> dict[str, Any]:
    with parts.db.read() as session:
        _model(session, ref)  # a missing model is 404 whatever the body holds
        trust = trusted_signers(session)
    checked = check_statement(body, trust)  # outside the write transaction: SQLite has one writer
    with parts.db.write() as session:
        return summary(attach(session, ref, checked, who))


@router.post("/models/{ref}/probes", status_code=201)
async def attach_probe(ref: str, request: Request, who: Caller) -> Response:
    """Attach a signed ``modelshield probe`` statement (the DSSE envelope JSON) to the model (publisher)."""
    who.require("publisher", "attaching probe results")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("application/json", ""):
        raise bad_request("send the DSSE envelope as application/json", code="bad_content_type")
    body = await request.body()
    created = await run_in_threadpool(_store, services(request), ref, body, who)
    return JSONResponse(created, status_code=201)


@router.get("/models/{ref}/probes")
def list_probes(ref: str, who: Caller, parts: Parts, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """The model's attached probe statements, newest first (viewer)."""
    with parts.db.read() as session:
        model = _model(session, ref)
        return {"model": {"id": model.id, "name": model.name}, "probes": latest(session, model.id, limit)}


@router.get("/models/{ref}/probes/{probe_id}/statement")
def get_probe_statement(ref: str, probe_id: int, who: Caller, parts: Parts) -> Response:
    """The attached DSSE envelope, for ``modelshield verify FILE --trust KEYS`` (viewer)."""
    with parts.db.read() as session:
        model = _model(session, ref)
        row = session.get(ProbeStatement, probe_id)
        if row is None or row.model_id != model.id:
            raise not_found(f"probe statement {probe_id} of model {ref[:100]!r}")
        text = row.envelope
    return Response(
        text,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="probe-statement.dsse.json"'},
    )


class SignerBody(BaseModel):
    """A public key to trust for probe statements, and the name it is shown by."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    pem: str = Field(min_length=1, max_length=10_000)


def _signer_view(row: ProbeSigner) -> dict[str, Any]:
    return {
        "keyid": row.keyid,
        "name": row.name,
        "pem": row.pem,
        "added_by": row.added_by,
        "added_at": views.when(row.added_at),
    }


@router.get("/probe-signers")
def list_signers(who: Caller, parts: Parts) -> dict[str, Any]:
    """The public keys trusted to sign probe statements (viewer)."""
    with parts.db.read() as session:
        rows = session.scalars(select(ProbeSigner).order_by(ProbeSigner.added_at)).all()
        return {"signers": [_signer_view(r) for r in rows]}


@router.post("/probe-signers", status_code=201)
async def add_signer(request: Request, who: Caller) -> dict[str, Any]:
    """Trust a public key (PEM, e.g. the ``.pub`` of ``modelshield keygen``) for probe statements (admin)."""
    who.require("admin", "trusting probe signers")
    body = await request.body()
    try:
        spec = SignerBody.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            raise bad_request("the body is not valid JSON", code="malformed_json") from None
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise invalid(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))) from None
    if not _SIGNER_NAME.match(spec.name):
        raise invalid("a signer name is 1-100 letters, digits, spaces or ._@+-", code="invalid_name")
    if "PRIVATE KEY" in spec.pem:
        raise invalid("that is a private key: send only the public key (the .pub file)", code="invalid_key")
    try:
        verifier = load_verifier(spec.pem.encode(), "pem")
    except KeyFileError as exc:
        raise invalid(exc.message, code="invalid_key") from None
    return await run_in_threadpool(_add_signer, services(request), spec.name, verifier, who)


def _add_signer(parts: Services, name: str, verifier: KeyVerifier, who: Principal) -> dict[str, Any]:
    with parts.db.write() as session:
        if session.get(ProbeSigner, verifier.keyid) is not None:
            raise conflict("this key is trusted already", code="signer_exists")
        row = ProbeSigner(
            keyid=verifier.keyid,
            name=name,
            pem=public_pem(verifier.public_key).decode(),
            added_by=who.actor,
            added_at=utcnow(),
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise conflict("this key is trusted already", code="signer_exists") from None
        audit.record(session, who.actor, "probe_signer.add", f"probe-signer:{row.keyid}", name=name)
        return _signer_view(row)


@router.delete("/probe-signers/{keyid}")
def remove_signer(keyid: str, who: Caller, parts: Parts) -> dict[str, Any]:
    """Stop trusting a key for new probe statements; statements attached before stay (admin)."""
    who.require("admin", "trusting probe signers")
    with parts.db.write() as session:
        row = session.get(ProbeSigner, keyid)
        if row is None:
            raise not_found(f"probe signer {keyid[:64]!r}")
        shown = _signer_view(row)
        session.delete(row)
        audit.record(session, who.actor, "probe_signer.remove", f"probe-signer:{keyid}", name=row.name)
        return shown
