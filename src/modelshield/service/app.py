"""The web application: API, UI, badges; one error format; security headers; body limits.

Errors are ``{"error": {"code", "message"}}`` with the status that says what happened (400, 401,
403, 404, 409, 413, 422, 503); an unexpected error is logged here with its traceback and answered
with a plain 500 ``internal_error``: no traceback, SQL or path ever reaches a client. A database that
does not answer is 503 ``database_unavailable`` with ``Retry-After``; the next request tries again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelshield._version import __version__
from modelshield.service.db import UNAVAILABLE_ERRORS, Database
from modelshield.service.deps import Services
from modelshield.service.errors import ServiceError, too_large
from modelshield.service.settings import Settings
from modelshield.service.storage import Storage

log = logging.getLogger("modelshield.service.app")
STATIC = Path(__file__).resolve().parent / "static"
#: Routes that stream uploads and enforce their own (much larger) limit.
UPLOAD_ROUTES = frozenset({("POST", "/api/v1/models"), ("POST", "/ui/upload")})
MAX_BODY = 1 << 20
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_CSP = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _wants_html(request: Request) -> bool:
    return request.url.path.startswith("/ui")


class _Guard:
    """Pure ASGI middleware: security headers on every answer; a size limit on bodies outside uploads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = (scope["method"], scope["path"]) not in UPLOAD_ROUTES
        if limited:
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
                    response = _error(413, "payload_too_large", f"the body is larger than {MAX_BODY} bytes")
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if limited and message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise too_large(MAX_BODY)
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name for name, _ in headers}
                headers.extend(h for h in _HEADERS if h[0] not in names)
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", _CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, counted, with_headers)


def create_app(settings: Settings, *, expected_workers: int = 0, db: Database | None = None) -> FastAPI:
    """The application for one data dir and database (migrations must have run)."""
    from modelshield.service import api, probes, ui

    app = FastAPI(
        title="modelshield catalog",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    database = db or Database(settings.database_url, pool_size=10)
    app.state.services = Services(settings, database, Storage(settings), expected_workers)
    app.include_router(api.router)
    app.include_router(probes.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_handlers(app)
    app.add_middleware(_Guard)
    return app


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if _wants_html(request) and exc.status == 401:
            return RedirectResponse("/ui/login", status_code=303)
        if _wants_html(request):
            from modelshield.service.ui import error_page

            return error_page(request, exc.status, exc.message)
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _CODES.get(exc.status_code, "http_error")
        message = "no such resource" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "malformed_json", "the body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "invalid request"))
        return _error(422, "invalid_request", message)

    async def database_down(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return _error(
            503, "database_unavailable", "the database is unavailable; try again shortly", {"Retry-After": "5"}
        )

    for error_type in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_down)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        from modelshield.service.db import is_unavailable

        if is_unavailable(exc):
            return await database_down(request, exc)
        log.error("internal error in %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", "internal error; the server log has the details")
