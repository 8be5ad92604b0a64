"""Alerts: status changes posted to webhooks as JSON, signed with HMAC-SHA256, retried with backoff.

Each event becomes one delivery row per active webhook (the delivery log). Workers claim due
deliveries under a short lease, post them with the standard library (no redirects followed, 5 s
timeout) and record the answer; a failure is retried after 1, 2, 4 ... s (at most 5 min apart) up to
:data:`MAX_ATTEMPTS` times. The receiver checks ``X-Modelshield-Signature: sha256=<hex>`` over the raw
body with the webhook's secret, and may use ``X-Modelshield-Delivery`` to drop duplicates.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from modelshield._version import __version__
from modelshield.service.db import Database
from modelshield.service.errors import invalid
from modelshield.service.models import Delivery, Webhook, utcnow

MAX_ATTEMPTS = 8
TIMEOUT_S = 5.0
LEASE_S = 30.0
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def check_url(url: str) -> str:
    """An http(s) URL with a host, or 422."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise invalid("a webhook URL is http:// or https:// with a host", code="invalid_url")
    return url


def new_secret() -> str:
    """A random signing secret."""
    return secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Modelshield-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def emit(session: Session, event: str, data: dict[str, Any]) -> int:
    """Queue ``event`` for every active webhook (in the caller's transaction); returns how many."""
    hooks = session.scalars(select(Webhook).where(Webhook.active.is_(True))).all()
    now = utcnow()
    for hook in hooks:
        body = {"event": event, "created_at": now.isoformat().replace("+00:00", "Z"), "data": data}
        session.add(
            Delivery(
                webhook_id=hook.id,
                event=event,
                payload=json.dumps(body, sort_keys=True, separators=(",", ":")),
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error="",
                created_at=now,
            )
        )
    return len(hooks)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer, not an instruction: the body is never re-sent elsewhere


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as answer:
            return int(answer.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:500]


def deliver_due(db: Database, limit: int = 10) -> int:
    """Send up to ``limit`` due deliveries; returns how many were attempted."""
    attempted = 0
    for _ in range(limit):
        claimed = _claim(db)
        if claimed is None:
            break
        delivery_id, url, secret, payload, event = claimed
        body = payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"modelshield/{__version__}",
            "X-Modelshield-Event": event,
            "X-Modelshield-Delivery": str(delivery_id),
            "X-Modelshield-Signature": signature(secret, body),
        }
        status, error = _post(url, body, headers)
        _record(db, delivery_id, status, error)
        attempted += 1
    return attempted


def _claim(db: Database) -> tuple[int, str, str, str, str] | None:
    with db.write() as session:
        now = utcnow()
        due = and_(
            Delivery.state == PENDING,
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        )
        pick = select(Delivery.id).where(due).order_by(Delivery.id).limit(1)
        if not db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        delivery_id = session.scalar(pick)
        if delivery_id is None:
            return None
        result = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, due)
            .values(lease_until=now + _dt.timedelta(seconds=LEASE_S), attempts=Delivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.get(Delivery, delivery_id, populate_existing=True)
        hook = session.get(Webhook, row.webhook_id) if row is not None else None
        if row is None or hook is None:
            return None
        return row.id, hook.url, hook.secret, row.payload, row.event


def _record(db: Database, delivery_id: int, status: int | None, error: str) -> None:
    with db.write() as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            return
        now = utcnow()
        row.last_status = status
        row.lease_until = None
        if status is not None and 200 <= status < 300:
            row.state = DELIVERED
            row.delivered_at = now
            row.last_error = ""
            return
        row.last_error = error or f"HTTP {status}"
        if row.attempts >= MAX_ATTEMPTS:
            row.state = FAILED
            return
        row.next_attempt_at = now + _dt.timedelta(seconds=min(300.0, 2.0 ** (row.attempts - 1)))
