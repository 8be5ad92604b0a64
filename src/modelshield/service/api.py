"""The JSON API under ``/api/v1`` (plus ``/healthz`` and the badges). Bearer tokens; errors are
``{"error": {"code", "message"}}`` (see :mod:`modelshield.service.app`)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from modelshield.service import (
    audit,
    auth,
    badges,
    catalog,
    keys,
    policy_store,
    probes,
    queue,
    registration,
    views,
    webhooks,
)
from modelshield.service.auth import Principal
from modelshield.service.deps import Caller, Parts, Services, services
from modelshield.service.errors import bad_request, invalid, not_found
from modelshield.service.models import STATUSES, Delivery, Model, Scan, Token, Webhook, Worker, utcnow
from modelshield.service.uploads import is_multipart, receive

router = APIRouter()
api = APIRouter(prefix="/api/v1")
MAX_JSON_BYTES = 1 << 20
WORKER_FRESH_S = 15.0


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterBody(_Body):
    """Register from a server-side path (admin) or a Hugging Face cache id."""

    name: str
    path: str | None = None
    hf_cache_id: str | None = None
    profile: str | None = None
    dynamic: bool = False


class RevokeBody(_Body):
    """Why the model is revoked."""

    reason: str = Field(min_length=1, max_length=2000)


class WaiverBody(_Body):
    """A waiver request."""

    rule: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=4000)
    expires_at: _dt.date


class TokenBody(_Body):
    """A new token."""

    role: str
    name: str = Field(min_length=1, max_length=100)


class WebhookBody(_Body):
    """A new webhook."""

    url: str
    secret: str | None = Field(default=None, min_length=16, max_length=128)


class PolicyBody(_Body):
    """A policy as YAML text."""

    yaml: str


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


async def _json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise bad_request("the JSON body is too large", code="payload_too_large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON", code="malformed_json") from None


# --------------------------------------------------------------------------------------------- health, badges


@router.get("/healthz")
def healthz(parts: Parts) -> JSONResponse:
    """Readiness: the database answers (with its schema), workers send heartbeats, the queue depth."""
    with parts.db.read() as session:
        session.execute(select(func.count()).select_from(Model)).scalar()
        fresh = utcnow() - _dt.timedelta(seconds=WORKER_FRESH_S)
        alive = int(session.scalar(select(func.count()).select_from(Worker).where(Worker.last_seen >= fresh)) or 0)
        depth = queue.depth(session)
    degraded = parts.expected_workers > 0 and alive == 0
    return JSONResponse(
        {
            "status": "degraded" if degraded else "ok",
            "database": "ok",
            "workers": {"alive": alive, "expected": parts.expected_workers},
            "queue": depth,
        }
    )


def _badge_state(parts: Parts, ref: str) -> str | None:
    with parts.db.read() as session:
        model = catalog.find_model(session, ref)
        if model is None:
            return None
        return badges.badge_state(model.status, model.attestation_expires_at)


_BADGE_HEADERS = {
    "Cache-Control": "no-cache, max-age=0",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


@router.get("/badge/{ref}.svg")
def badge_svg(ref: str, parts: Parts) -> Response:
    """The model's SVG badge (anonymous)."""
    state = _badge_state(parts, ref)
    return Response(
        badges.svg(state or "unknown"),
        status_code=200 if state else 404,
        media_type="image/svg+xml",
        headers=_BADGE_HEADERS,
    )


@router.get("/badge/{ref}.json")
def badge_json(ref: str, parts: Parts) -> JSONResponse:
    """The model's badge in the shields.io endpoint format (anonymous)."""
    state = _badge_state(parts, ref)
    if state is None:
        raise not_found(f"model {ref!r}")
    return JSONResponse(badges.shields_json(state), headers={"Cache-Control": "no-cache, max-age=0"})


# --------------------------------------------------------------------------------------------- public keys


@api.get("/keys")
def get_keys(parts: Parts) -> dict[str, Any]:
    """The public keys the service signs attestations with (anonymous)."""
    return {"keys": keys.public_keys(parts.settings)}


@api.get("/keys.pem")
def get_keys_pem(parts: Parts) -> PlainTextResponse:
    """The public keys as a trust-store file for ``modelshield verify --trust`` (anonymous)."""
    return PlainTextResponse(keys.trust_file_text(parts.settings), media_type="application/x-pem-file")


@api.get("/revocations")
def get_revocations(parts: Parts) -> dict[str, Any]:
    """Revoked attestations: the root digests of revoked file sets and the payload digests (anonymous)."""
    with parts.db.read() as session:
        revoked = session.scalars(select(Model).where(Model.revoked_at.is_not(None)).order_by(Model.id)).all()
        out = []
        for model in revoked:
            digests = session.scalars(
                select(Scan.attestation_sha256).where(Scan.model_id == model.id, Scan.attestation_sha256.is_not(None))
            ).all()
            out.append(
                {
                    "root_digest": model.root_digest,
                    "attestation_sha256": sorted({d for d in digests if d}),
                    "revoked_at": views.when(model.revoked_at),
                }
            )
    return {"revocations": out, "generated_at": views.when(utcnow())}


@api.get("/me")
def me(who: Caller) -> dict[str, Any]:
    """Who the token belongs to."""
    return {"id": who.token_id, "name": who.name, "role": who.role}


# --------------------------------------------------------------------------------------------- models


@api.post("/models", status_code=201)
async def register_model(request: Request, who: Caller) -> JSONResponse:
    """Register by multipart upload (``name`` + ``file`` parts) or JSON (``path`` / ``hf_cache_id``)."""
    who.require("publisher", "registering a model")
    parts = services(request)
    if is_multipart(request):
        upload = await receive(request, parts.storage, parts.settings.max_upload_bytes)
        try:
            created = await run_in_threadpool(registration.register_upload, parts, upload, who)
        finally:
            upload.discard()
        return JSONResponse(created, status_code=201)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise bad_request("send multipart/form-data (name + file parts) or application/json", code="bad_content_type")
    try:
        body = RegisterBody.model_validate(await _json(request))
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from None
    if (body.path is None) == (body.hf_cache_id is None):
        raise invalid("give exactly one of path and hf_cache_id (or upload files as multipart)")
    if body.path is not None:
        created = await run_in_threadpool(
            registration.register_path, parts, body.name, body.path, body.profile, body.dynamic, who
        )
    else:
        created = await run_in_threadpool(
            registration.register_hf, parts, body.name, str(body.hf_cache_id), body.profile, body.dynamic, who
        )
    return JSONResponse(created, status_code=201)


@api.get("/models")
def list_models(
    who: Caller,
    parts: Parts,
    status: str | None = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Models, newest first, optionally by status or name."""
    if status is not None and status not in STATUSES:
        raise invalid(f"unknown status {status!r}: use one of {', '.join(STATUSES)}", code="invalid_status")
    query = select(Model)
    count = select(func.count()).select_from(Model)
    if status is not None:
        query, count = query.where(Model.status == status), count.where(Model.status == status)
    if name is not None:
        query, count = query.where(Model.name == name), count.where(Model.name == name)
    with parts.db.read() as session:
        rows = session.scalars(query.order_by(Model.id.desc()).limit(limit).offset(offset)).all()
        total = int(session.scalar(count) or 0)
        return {"models": [views.model_summary(m) for m in rows], "total": total}


@api.get("/models/{model_id}")
def get_model(model_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """One model with files, indicators, findings, decision, links and its latest endpoint probes."""
    with parts.db.read() as session:
        detail = views.model_detail(session, catalog.get_model(session, model_id))
        detail["probes"] = probes.latest(session, model_id, limit=10)
        detail["probes_url"] = f"/api/v1/models/{model_id}/probes"
        return detail


def scan_text(parts: Services, model_id: int, what: str) -> str:
    """The report, attestation or card of the model's current scan; 404 when there is none."""
    with parts.db.read() as session:
        return catalog.current_scan_text(session, model_id, what)


@api.get("/models/{model_id}/report")
def get_report(model_id: int, who: Caller, parts: Parts) -> Response:
    """The full JSON report of the model's current scan."""
    return Response(scan_text(parts, model_id, "report"), media_type="application/json")


@api.get("/models/{model_id}/attestation")
def get_attestation(model_id: int, who: Caller, parts: Parts) -> Response:
    """The signed attestation (DSSE envelope): save it as ``modelshield.attestation.dsse.json`` in the model folder."""
    return Response(
        scan_text(parts, model_id, "attestation"),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="modelshield.attestation.dsse.json"'},
    )


@api.get("/models/{model_id}/card")
def get_card(model_id: int, who: Caller, parts: Parts) -> Response:
    """The model card (README.md) with the modelshield block and badge that point at the attestation."""
    return Response(
        scan_text(parts, model_id, "card"),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="README.md"'},
    )


@api.get("/models/{model_id}/history")
def get_history(model_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Scans and re-verifications of the model, newest first."""
    with parts.db.read() as session:
        catalog.get_model(session, model_id)
        return {"history": views.history(session, model_id)}


@api.post("/models/{model_id}/rescan", status_code=202)
def rescan_model(model_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Scan and evaluate the model again."""
    who.require("publisher", "rescanning")
    with parts.db.write() as session:
        job = catalog.rescan(session, parts.settings, catalog.get_model(session, model_id), who.actor, "rescan")
        return {"job": job.id, "state": job.state}


@api.post("/models/{model_id}/verify", status_code=202)
def verify_model(model_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Re-hash the model's stored files now (drift check)."""
    who.require("publisher", "verifying stored files")
    with parts.db.write() as session:
        job = catalog.verify_now(session, parts.settings, catalog.get_model(session, model_id), who.actor)
        return {"job": job.id, "state": job.state}


@api.post("/models/{model_id}/revoke")
def revoke_model(model_id: int, body: RevokeBody, who: Caller, parts: Parts) -> dict[str, Any]:
    """Revoke the model and its attestations (``modelshield verify --online`` refuses them)."""
    who.require("admin", "revoking")
    with parts.db.write() as session:
        model = catalog.get_model(session, model_id)
        catalog.revoke(session, model, body.reason, who)
        return views.model_summary(model)


# --------------------------------------------------------------------------------------------- waivers


@api.post("/models/{model_id}/waivers", status_code=201)
def request_waiver(model_id: int, body: WaiverBody, who: Caller, parts: Parts) -> dict[str, Any]:
    """Ask for a waiver; someone else approves it."""
    who.require("publisher", "requesting a waiver")
    with parts.db.write() as session:
        model = catalog.get_model(session, model_id)
        return views.waiver(catalog.request_waiver(session, model, body.rule, body.reason, body.expires_at, who))


@api.get("/waivers")
def list_waivers(who: Caller, parts: Parts, state: str | None = None) -> dict[str, Any]:
    """Waivers, newest first."""
    from modelshield.service.models import WAIVER_STATES, Waiver

    if state is not None and state not in WAIVER_STATES:
        raise invalid(f"unknown state {state!r}: use one of {', '.join(WAIVER_STATES)}", code="invalid_state")
    query = select(Waiver).order_by(Waiver.id.desc()).limit(500)
    if state is not None:
        query = query.where(Waiver.state == state)
    with parts.db.read() as session:
        return {"waivers": [views.waiver(w) for w in session.scalars(query)]}


def _decide(waiver_id: int, approve: bool, who: Caller, parts: Parts) -> dict[str, Any]:
    who.require("publisher", "deciding a waiver")
    with parts.db.write() as session:
        waiver = catalog.get_waiver(session, waiver_id)
        catalog.decide_waiver(session, parts.settings, waiver, approve, who)
        return views.waiver(waiver)


@api.post("/waivers/{waiver_id}/approve")
def approve_waiver(waiver_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Approve (not by the requester); the model is evaluated again with it."""
    return _decide(waiver_id, True, who, parts)


@api.post("/waivers/{waiver_id}/reject")
def reject_waiver(waiver_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Reject (not by the requester)."""
    return _decide(waiver_id, False, who, parts)


# --------------------------------------------------------------------------------------------- audit, admin


@api.get("/audit")
def get_audit(
    who: Caller,
    parts: Parts,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    target: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """The audit log, newest first."""
    with parts.db.read() as session:
        rows, total = audit.entries(session, limit=limit, offset=offset, target=target, action=action)
        return {"entries": [views.audit_entry(r) for r in rows], "total": total}


@api.post("/tokens", status_code=201)
def create_token(body: TokenBody, who: Caller, parts: Parts) -> dict[str, Any]:
    """Create a token (its value is shown this once)."""
    who.require("admin", "creating tokens")
    with parts.db.write() as session:
        row, value = auth.create_token(session, body.role, body.name, who.actor)
        return {**views.token(row), "token": value}


@api.get("/tokens")
def list_tokens(who: Caller, parts: Parts) -> dict[str, Any]:
    """Every token (without values)."""
    who.require("admin", "listing tokens")
    with parts.db.read() as session:
        return {"tokens": [views.token(t) for t in session.scalars(select(Token).order_by(Token.id))]}


@api.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Revoke a token (its sessions end)."""
    who.require("admin", "revoking tokens")
    with parts.db.write() as session:
        return views.token(auth.revoke_token(session, token_id, who.actor))


@api.get("/policy")
def get_policy(who: Caller, parts: Parts) -> dict[str, Any]:
    """The policy in force and its profiles."""
    with parts.db.read() as session:
        return {
            "builtin": policy_store.is_builtin(session),
            "version": policy_store.version(session),
            "profiles": policy_store.profiles(session),
            "yaml": policy_store.policy_text(session),
        }


@api.put("/policy")
async def put_policy(request: Request, who: Caller) -> dict[str, Any]:
    """Replace the policy (YAML as text/plain, or JSON ``{"yaml": ...}``); every model is evaluated again."""
    who.require("admin", "changing the policy")
    parts = services(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/json":
        try:
            text = PolicyBody.model_validate(await _json(request)).yaml
        except ValidationError as exc:
            raise invalid(_first_error(exc)) from None
    else:
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise bad_request("the policy is too large", code="payload_too_large")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the policy is not UTF-8", code="malformed_policy") from None
    return await run_in_threadpool(_store_policy, parts, text, who)


def _store_policy(parts: Services, text: str, who: Principal) -> dict[str, Any]:
    with parts.db.write() as session:
        return catalog.replace_policy(session, parts.settings, text, who.actor)


@api.post("/webhooks", status_code=201)
def create_webhook(body: WebhookBody, who: Caller, parts: Parts) -> dict[str, Any]:
    """Register a webhook; its secret is shown this once."""
    who.require("admin", "managing webhooks")
    secret = body.secret or webhooks.new_secret()
    with parts.db.write() as session:
        row = Webhook(url=webhooks.check_url(body.url), secret=secret, active=True, created_by=who.actor)
        session.add(row)
        session.flush()
        audit.record(session, who.actor, "webhook.create", f"webhook:{row.id}", url=row.url)
        return {**views.webhook(row), "secret": secret}


@api.get("/webhooks")
def list_webhooks(who: Caller, parts: Parts) -> dict[str, Any]:
    """Webhooks (without secrets)."""
    who.require("admin", "managing webhooks")
    with parts.db.read() as session:
        return {"webhooks": [views.webhook(w) for w in session.scalars(select(Webhook).order_by(Webhook.id))]}


@api.delete("/webhooks/{webhook_id}")
def delete_webhook(webhook_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """Stop sending to a webhook (its delivery log stays)."""
    who.require("admin", "managing webhooks")
    with parts.db.write() as session:
        row = session.get(Webhook, webhook_id)
        if row is None:
            raise not_found(f"webhook {webhook_id}")
        row.active = False
        audit.record(session, who.actor, "webhook.disable", f"webhook:{row.id}")
        return views.webhook(row)


@api.get("/webhooks/{webhook_id}/deliveries")
def list_deliveries(webhook_id: int, who: Caller, parts: Parts) -> dict[str, Any]:
    """The webhook's delivery log, newest first."""
    who.require("admin", "managing webhooks")
    with parts.db.read() as session:
        if session.get(Webhook, webhook_id) is None:
            raise not_found(f"webhook {webhook_id}")
        rows = session.scalars(
            select(Delivery).where(Delivery.webhook_id == webhook_id).order_by(Delivery.id.desc()).limit(500)
        )
        return {"deliveries": [views.delivery(d) for d in rows]}


router.include_router(api)
