"""The catalog UI: server-rendered Jinja2 pages (autoescaped), a session cookie, CSRF tokens on forms.

Log in with an API token: the session cookie (HttpOnly, SameSite=Strict) stands for that token until
it expires or the token is revoked. Every form that changes something carries the session's CSRF
token; a POST without the right one is refused. Text that came from a model or a user (names,
file names, findings, reasons) is only ever rendered escaped. Selectors for the browser test are
listed in the service contract (ids and ``data-testid`` attributes).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from modelshield.service import audit, auth, catalog, policy_store, probes, registration, views, webhooks
from modelshield.service.auth import Principal
from modelshield.service.deps import Services, services
from modelshield.service.errors import ServiceError, forbidden, invalid, not_found, unauthorized
from modelshield.service.models import STATUSES, Model, Token, Waiver, Webhook
from modelshield.service.uploads import receive

router = APIRouter()
TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "modelshield_session"
_ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
INDICATOR_LABELS = {"safe": "Safe", "suspicious": "Suspicious", "unsafe": "Unsafe", None: "Pending"}
DONE_MESSAGES = {
    "waiver-requested": "Waiver requested; someone else must approve it.",
    "waiver-approved": "Waiver approved; the model is being evaluated again.",
    "waiver-rejected": "Waiver rejected.",
    "rescan": "Scan queued.",
    "verify": "Verification queued.",
    "revoked": "Model revoked.",
    "token-revoked": "Token revoked.",
    "policy": "Policy stored; every model is being evaluated again.",
    "webhook": "Webhook added.",
}


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page (the logged-in user, if any, is in ``user``)."""
    body = _ENV.get_template(template).render(
        user=getattr(request.state, "user", None),
        csrf=getattr(request.state, "csrf", ""),
        indicator_labels=INDICATOR_LABELS,
        statuses=STATUSES,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An error as a page."""
    return render(request, "error.html", status=status, status_code=status, message=message)


def _user(request: Request) -> tuple[Services, Principal]:
    parts = services(request)
    with parts.db.read() as session:
        found = auth.session_principal(session, request.cookies.get(COOKIE))
    if found is None:
        raise unauthorized("log in first")
    request.state.user, request.state.csrf = found
    return parts, found[0]


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _check_csrf(request: Request, form: dict[str, str]) -> None:
    if not auth.csrf_ok(getattr(request.state, "csrf", ""), form.get("csrf_token")):
        raise forbidden("the form expired or did not come from this site; reload the page", code="csrf")


def _back(path: str, done: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}" if done else path, status_code=303)


# --------------------------------------------------------------------------------------------- login


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    """The model list, or the login page."""
    return RedirectResponse("/ui/models", status_code=303)


@router.get("/ui/login", include_in_schema=False)
def login_page(request: Request) -> HTMLResponse:
    """The login form."""
    return render(request, "login.html")


@router.post("/ui/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Exchange a token for a session cookie."""
    form = await _form(request)
    parts = services(request)

    def start() -> tuple[str, str] | None:
        with parts.db.write() as session:
            who = auth.authenticate(session, form.get("token", "").strip())
            if who is None:
                return None
            auth.touch(session, who)
            return auth.create_session(session, who, parts.settings.session_hours)

    created = await run_in_threadpool(start)
    if created is None:
        return render(request, "login.html", status=401, error="Unknown or revoked token.")
    cookie, _csrf = created
    response = RedirectResponse("/ui/models", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(parts.settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session."""
    parts, _ = await run_in_threadpool(_user, request)
    _check_csrf(request, await _form(request))

    def end() -> None:
        with parts.db.write() as session:
            auth.end_session(session, request.cookies.get(COOKIE))

    await run_in_threadpool(end)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --------------------------------------------------------------------------------------------- models


@router.get("/ui/models", include_in_schema=False)
def models_page(request: Request, status: str | None = None) -> HTMLResponse:
    """Every model with its status."""
    parts, _ = _user(request)
    if status is not None and status not in STATUSES:
        raise invalid(f"unknown status {status!r}")
    query = select(Model).order_by(Model.id.desc()).limit(500)
    if status:
        query = query.where(Model.status == status)
    with parts.db.read() as session:
        rows = [views.model_summary(m) for m in session.scalars(query)]
        counts = dict(session.execute(select(Model.status, func.count()).group_by(Model.status)).all())
    busy = any(m["status"] in ("pending", "scanning") for m in rows)
    return render(request, "models.html", models=rows, counts=counts, current=status, refresh=busy)


@router.get("/ui/models/{model_id}", include_in_schema=False)
def model_page(request: Request, model_id: int, done: str | None = None) -> HTMLResponse:
    """A model: files with indicators, findings, decision, CVEs, attestation, endpoint probes, history, waivers."""
    parts, who = _user(request)
    with parts.db.read() as session:
        model = catalog.get_model(session, model_id)
        detail = views.model_detail(session, model)
        history = views.history(session, model_id)
        probe_results = probes.latest(session, model_id, limit=10)
    decision = detail.get("decision") or {}
    suggestions = sorted(
        {str(r) for r in decision.get("failed") or []}
        | {str(f.get("rule_id")) for item in detail["files"] for f in item["findings"] if f.get("rule_id")}
    )
    busy = detail["status"] in ("pending", "scanning")
    return render(
        request,
        "model.html",
        model=detail,
        history=history,
        probes=probe_results,
        decision=decision,
        suggestions=suggestions,
        refresh=busy,
        done=DONE_MESSAGES.get(done or ""),
        can_publish=who.has("publisher"),
        is_admin=who.has("admin"),
        me=who.actor,
        default_expiry=(_dt.date.today() + _dt.timedelta(days=30)).isoformat(),
    )


def _scan_download(request: Request, model_id: int, what: str) -> Response:
    parts, _ = _user(request)
    with parts.db.read() as session:
        body = catalog.current_scan_text(session, model_id, what)
    names = {"attestation": "modelshield.attestation.dsse.json", "card": "README.md", "report": "report.json"}
    media = {"attestation": "application/json", "card": "text/markdown; charset=utf-8", "report": "application/json"}
    return Response(
        body, media_type=media[what], headers={"Content-Disposition": f'attachment; filename="{names[what]}"'}
    )


@router.get("/ui/models/{model_id}/attestation", include_in_schema=False)
def download_attestation(request: Request, model_id: int) -> Response:
    """The attestation as a download."""
    return _scan_download(request, model_id, "attestation")


@router.get("/ui/models/{model_id}/card", include_in_schema=False)
def download_card(request: Request, model_id: int) -> Response:
    """The model card as a download."""
    return _scan_download(request, model_id, "card")


@router.get("/ui/models/{model_id}/report", include_in_schema=False)
def download_report(request: Request, model_id: int) -> Response:
    """The JSON report as a download."""
    return _scan_download(request, model_id, "report")


@router.get("/ui/models/{model_id}/probes/{probe_id}/statement", include_in_schema=False)
def download_probe_statement(request: Request, model_id: int, probe_id: int) -> Response:
    """An attached probe statement (DSSE envelope) as a download."""
    parts, who = _user(request)
    return probes.get_probe_statement(str(model_id), probe_id, who, parts)


async def _action(request: Request, role: str, what: str) -> tuple[Services, Principal, dict[str, str]]:
    parts, who = await run_in_threadpool(_user, request)
    form = await _form(request)
    _check_csrf(request, form)
    who.require(role, what)
    return parts, who, form


@router.post("/ui/models/{model_id}/rescan", include_in_schema=False)
async def rescan(request: Request, model_id: int) -> Response:
    """Queue a scan."""
    parts, who, _ = await _action(request, "publisher", "rescanning")

    def run() -> None:
        with parts.db.write() as session:
            catalog.rescan(session, parts.settings, catalog.get_model(session, model_id), who.actor, "rescan")

    await run_in_threadpool(run)
    return _back(f"/ui/models/{model_id}", "rescan")


@router.post("/ui/models/{model_id}/verify", include_in_schema=False)
async def verify(request: Request, model_id: int) -> Response:
    """Queue a re-hash of the stored files."""
    parts, who, _ = await _action(request, "publisher", "verifying")

    def run() -> None:
        with parts.db.write() as session:
            catalog.verify_now(session, parts.settings, catalog.get_model(session, model_id), who.actor)

    await run_in_threadpool(run)
    return _back(f"/ui/models/{model_id}", "verify")


@router.post("/ui/models/{model_id}/revoke", include_in_schema=False)
async def revoke(request: Request, model_id: int) -> Response:
    """Revoke the model."""
    parts, who, form = await _action(request, "admin", "revoking")

    def run() -> None:
        with parts.db.write() as session:
            catalog.revoke(session, catalog.get_model(session, model_id), form.get("reason", ""), who)

    await run_in_threadpool(run)
    return _back(f"/ui/models/{model_id}", "revoked")


# --------------------------------------------------------------------------------------------- upload


def _profiles(parts: Services) -> tuple[dict[str, str], str]:
    with parts.db.read() as session:
        spec = policy_store.load(session)
        return {n: p.description for n, p in spec.profiles.items()}, spec.default_profile


@router.get("/ui/upload", include_in_schema=False)
def upload_page(request: Request) -> HTMLResponse:
    """The upload form."""
    parts, who = _user(request)
    profiles, default = _profiles(parts)
    return render(request, "upload.html", profiles=profiles, default_profile=default, can_publish=who.has("publisher"))


@router.post("/ui/upload", include_in_schema=False)
async def upload(request: Request) -> Response:
    """Receive the upload form and register the model."""
    parts, who = await run_in_threadpool(_user, request)
    received = await receive(request, parts.storage, parts.settings.max_upload_bytes)
    try:
        _check_csrf(request, received.fields)
        try:
            who.require("publisher", "uploading a model")
            created = await run_in_threadpool(registration.register_upload, parts, received, who)
        except ServiceError as exc:
            if exc.status in (401, 403) and exc.code == "csrf":
                raise
            profiles, default = _profiles(parts)
            return render(
                request,
                "upload.html",
                status=exc.status,
                profiles=profiles,
                default_profile=default,
                can_publish=who.has("publisher"),
                error=exc.message,
                name=received.fields.get("name", ""),
            )
    finally:
        received.discard()
    return RedirectResponse(f"/ui/models/{created['id']}", status_code=303)


# --------------------------------------------------------------------------------------------- waivers


@router.post("/ui/models/{model_id}/waivers", include_in_schema=False)
async def request_waiver(request: Request, model_id: int) -> Response:
    """Request a waiver from the model page."""
    parts, who, form = await _action(request, "publisher", "requesting a waiver")
    try:
        expires = _dt.date.fromisoformat(form.get("expires_at", ""))
    except ValueError:
        raise invalid("the expiry is a date (YYYY-MM-DD)", code="invalid_expiry") from None

    def run() -> None:
        with parts.db.write() as session:
            model = catalog.get_model(session, model_id)
            catalog.request_waiver(session, model, form.get("rule", "").strip(), form.get("reason", ""), expires, who)

    await run_in_threadpool(run)
    return _back(f"/ui/models/{model_id}", "waiver-requested")


@router.post("/ui/waivers/{waiver_id}/{decision}", include_in_schema=False)
async def decide_waiver(request: Request, waiver_id: int, decision: str) -> Response:
    """Approve or reject a waiver (not your own)."""
    if decision not in ("approve", "reject"):
        raise not_found("page")
    parts, who, form = await _action(request, "publisher", "deciding a waiver")

    def run() -> int:
        with parts.db.write() as session:
            waiver = catalog.get_waiver(session, waiver_id)
            catalog.decide_waiver(session, parts.settings, waiver, decision == "approve", who)
            return waiver.model_id

    model_id = await run_in_threadpool(run)
    done = "waiver-approved" if decision == "approve" else "waiver-rejected"
    if form.get("back") == "waivers":
        return _back("/ui/waivers", done)
    return _back(f"/ui/models/{model_id}", done)


@router.get("/ui/waivers", include_in_schema=False)
def waivers_page(request: Request, done: str | None = None) -> HTMLResponse:
    """Every waiver."""
    parts, who = _user(request)
    with parts.db.read() as session:
        rows = session.execute(
            select(Waiver, Model.name).join(Model, Model.id == Waiver.model_id).order_by(Waiver.id.desc()).limit(500)
        ).all()
        waivers = [{**views.waiver(w), "model_name": name} for w, name in rows]
    return render(
        request,
        "waivers.html",
        waivers=waivers,
        can_publish=who.has("publisher"),
        me=who.actor,
        done=DONE_MESSAGES.get(done or ""),
    )


# --------------------------------------------------------------------------------------------- audit, admin


@router.get("/ui/audit", include_in_schema=False)
def audit_page(request: Request, offset: int = 0) -> HTMLResponse:
    """The audit log."""
    parts, _ = _user(request)
    offset = max(0, offset)
    with parts.db.read() as session:
        rows, total = audit.entries(session, limit=100, offset=offset)
        entries = [views.audit_entry(r) for r in rows]
    return render(request, "audit.html", entries=entries, total=total, offset=offset)


def _admin_context(parts: Services) -> dict[str, Any]:
    with parts.db.read() as session:
        return {
            "tokens": [views.token(t) for t in session.scalars(select(Token).order_by(Token.id))],
            "profiles": policy_store.profiles(session),
            "policy_yaml": policy_store.policy_text(session),
            "policy_builtin": policy_store.is_builtin(session),
            "webhooks": [views.webhook(w) for w in session.scalars(select(Webhook).order_by(Webhook.id))],
        }


@router.get("/ui/admin", include_in_schema=False)
def admin_page(request: Request, done: str | None = None) -> HTMLResponse:
    """Tokens, policy profiles and webhooks."""
    parts, who = _user(request)
    who.require("admin", "the admin page")
    return render(request, "admin.html", done=DONE_MESSAGES.get(done or ""), **_admin_context(parts))


@router.post("/ui/admin/tokens", include_in_schema=False)
async def admin_create_token(request: Request) -> Response:
    """Create a token and show it once."""
    parts, who, form = await _action(request, "admin", "creating tokens")

    def run() -> str:
        with parts.db.write() as session:
            _row, value = auth.create_token(session, form.get("role", ""), form.get("name", "").strip(), who.actor)
            return value

    try:
        value = await run_in_threadpool(run)
    except ServiceError as exc:
        return render(request, "admin.html", status=exc.status, error=exc.message, **_admin_context(parts))
    return render(request, "admin.html", new_token=value, **_admin_context(parts))


@router.post("/ui/admin/tokens/{token_id}/revoke", include_in_schema=False)
async def admin_revoke_token(request: Request, token_id: int) -> Response:
    """Revoke a token."""
    parts, who, _ = await _action(request, "admin", "revoking tokens")

    def run() -> None:
        with parts.db.write() as session:
            auth.revoke_token(session, token_id, who.actor)

    await run_in_threadpool(run)
    return _back("/ui/admin", "token-revoked")


@router.post("/ui/admin/policy", include_in_schema=False)
async def admin_policy(request: Request) -> Response:
    """Replace the policy."""
    parts, who, form = await _action(request, "admin", "changing the policy")

    def run() -> None:
        with parts.db.write() as session:
            catalog.replace_policy(session, parts.settings, form.get("policy", ""), who.actor)

    try:
        await run_in_threadpool(run)
    except ServiceError as exc:
        context = {**_admin_context(parts), "policy_yaml": form.get("policy", "")}
        return render(request, "admin.html", status=exc.status, error=exc.message, **context)
    return _back("/ui/admin", "policy")


@router.post("/ui/admin/webhooks", include_in_schema=False)
async def admin_webhook(request: Request) -> Response:
    """Add a webhook; its secret is shown once."""
    parts, who, form = await _action(request, "admin", "managing webhooks")

    def run() -> str:
        secret = webhooks.new_secret()
        with parts.db.write() as session:
            row = Webhook(
                url=webhooks.check_url(form.get("url", "").strip()), secret=secret, active=True, created_by=who.actor
            )
            session.add(row)
            session.flush()
            audit.record(session, who.actor, "webhook.create", f"webhook:{row.id}", url=row.url)
        return secret

    try:
        secret = await run_in_threadpool(run)
    except ServiceError as exc:
        return render(request, "admin.html", status=exc.status, error=exc.message, **_admin_context(parts))
    return render(request, "admin.html", new_secret=secret, **_admin_context(parts))
