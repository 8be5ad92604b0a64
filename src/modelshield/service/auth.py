"""Identity: API tokens (stored as SHA-256, never in clear), roles, and browser sessions with CSRF tokens.

A token's *name* is the identity of whoever holds it: two tokens with one name are one person (so a
publisher cannot approve their own waiver with a second token). Roles are ordered
viewer < publisher < admin; anonymous callers have no role at all.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelshield.service import audit
from modelshield.service.errors import ServiceError, forbidden, invalid, not_found
from modelshield.service.models import ROLES, Token, UISession, utcnow

TOKEN_PREFIX = "msk_"
MIN_TOKEN_CHARS = 20
_NAME = re.compile(r"^[\w.@+-][\w .@+-]{0,99}$")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
#: last_used_at is refreshed at most this often (a write per request would contend with the workers).
_TOUCH_EVERY = _dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name (the identity) and role."""

    token_id: int
    name: str
    role: str

    def has(self, role: str) -> bool:
        """True when this principal's role is ``role`` or above."""
        return _RANK[self.role] >= _RANK[role]

    def require(self, role: str, action: str) -> None:
        """403 unless the role is ``role`` or above."""
        if not self.has(role):
            raise forbidden(f"{action} needs the {role} role; this token is {self.role}", code="insufficient_role")

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return self.name


def hash_token(token: str) -> str:
    """SHA-256 (hex) of a token: tokens are 256-bit random, so a fast hash is safe and lookups stay indexable."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token_value() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_role(role: str) -> str:
    """The role, or 422 naming the roles there are."""
    if role not in _RANK:
        raise invalid(f"unknown role {role!r}: use one of {', '.join(ROLES)}", code="invalid_role")
    return role


def check_name(name: str) -> str:
    """A token name (letters, digits, space, ._@+-; up to 100), or 422."""
    if not _NAME.match(name):
        raise invalid("a token name is 1-100 letters, digits, spaces or ._@+-", code="invalid_token_name")
    return name


def create_token(
    session: Session, role: str, name: str, created_by: str, value: str | None = None
) -> tuple[Token, str]:
    """Store a new token of ``role`` (only its hash) and return it with its value (shown once)."""
    check_role(role)
    check_name(name)
    token_value = value or new_token_value()
    if len(token_value) < MIN_TOKEN_CHARS:
        raise invalid(f"a token has at least {MIN_TOKEN_CHARS} characters", code="weak_token")
    row = Token(
        name=name,
        role=role,
        token_hash=hash_token(token_value),
        prefix=token_value[:8],
        created_at=utcnow(),
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    audit.record(session, created_by, "token.create", f"token:{row.id}", name=name, role=role)
    return row, token_value


def ensure_token(session: Session, value: str, role: str, name: str, created_by: str) -> Token:
    """The token with this exact value, created with ``role`` when missing (bootstrap from the environment)."""
    existing = session.scalar(select(Token).where(Token.token_hash == hash_token(value)))
    if existing is not None:
        return existing
    row, _ = create_token(session, role, name, created_by, value=value)
    return row


def revoke_token(session: Session, token_id: int, actor: str) -> Token:
    """Revoke a token (its sessions end too)."""
    row = session.get(Token, token_id)
    if row is None:
        raise not_found(f"token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        for ui_session in session.scalars(select(UISession).where(UISession.token_id == token_id)):
            session.delete(ui_session)
        audit.record(session, actor, "token.revoke", f"token:{row.id}", name=row.name, role=row.role)
    return row


def authenticate(session: Session, value: str) -> Principal | None:
    """The principal of a token value, or None when it is unknown or revoked."""
    if not value or len(value) > 512:
        return None
    row = session.scalar(select(Token).where(Token.token_hash == hash_token(value)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, row.role)


def touch(session: Session, principal: Principal) -> None:
    """Record that the token was used (at most every few minutes)."""
    row = session.get(Token, principal.token_id)
    now = utcnow()
    if row is not None and (row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY):
        row.last_used_at = now


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ServiceError(401, "unauthorized", "use Authorization: Bearer <token>")
    return value.strip()


# --------------------------------------------------------------------------------------------- sessions


def create_session(session: Session, principal: Principal, hours: float) -> tuple[str, str]:
    """A new browser session: (cookie value, CSRF token). Only the cookie's hash is stored."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UISession(
            id=hash_token(cookie),
            token_id=principal.token_id,
            csrf=csrf,
            created_at=now,
            expires_at=now + _dt.timedelta(hours=hours),
        )
    )
    audit.record(session, principal.actor, "session.login", f"token:{principal.token_id}")
    return cookie, csrf


def session_principal(session: Session, cookie: str | None) -> tuple[Principal, str] | None:
    """(principal, CSRF token) of a live session cookie, or None."""
    if not cookie or len(cookie) > 256:
        return None
    row = session.get(UISession, hash_token(cookie))
    if row is None or row.expires_at <= utcnow():
        return None
    token = session.get(Token, row.token_id)
    if token is None or token.revoked_at is not None:
        return None
    return Principal(token.id, token.name, token.role), row.csrf


def end_session(session: Session, cookie: str | None) -> None:
    """Log out: forget the session."""
    if cookie:
        row = session.get(UISession, hash_token(cookie))
        if row is not None:
            session.delete(row)


def csrf_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
