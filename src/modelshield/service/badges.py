"""The indicator everyone may read: an SVG badge and a shields.io endpoint JSON, from a model's state.

States: passed, warn, failed (``scan_failed`` too), pending (``scanning`` too), expired (the last
attestation is past its date), revoked. Text is escaped; the SVG has no scripts and no links.
"""

from __future__ import annotations

import datetime as _dt
from html import escape

LABEL = "modelshield"
COLORS = {
    "passed": ("#4c1", "brightgreen"),
    "warn": ("#dfb317", "yellow"),
    "failed": ("#e05d44", "red"),
    "pending": ("#9f9f9f", "lightgrey"),
    "expired": ("#fe7d37", "orange"),
    "revoked": ("#e05d44", "red"),
    "unknown": ("#9f9f9f", "lightgrey"),
}


def badge_state(status: str | None, expires_at: _dt.datetime | None, now: _dt.datetime | None = None) -> str:
    """What the badge says for a model in ``status`` whose attestation expires at ``expires_at``."""
    if status is None:
        return "unknown"
    if status == "revoked":
        return "revoked"
    if status in ("pending", "scanning"):
        return "pending"
    if status in ("failed", "scan_failed"):
        return "failed"
    moment = now or _dt.datetime.now(_dt.UTC)
    if expires_at is not None and expires_at <= moment:
        return "expired"
    return status if status in ("passed", "warn") else "unknown"


def _width(text: str) -> int:
    return 10 + 7 * len(text)  # Verdana 11px is ~7 px per character for these words


def svg(state: str) -> str:
    """A flat badge: ``modelshield | <state>``."""
    color = COLORS.get(state, COLORS["unknown"])[0]
    left, right = _width(LABEL), _width(state)
    total = left + right
    label, message = escape(LABEL), escape(state)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label}: {message}"><title>{label}: {message}</title>'
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        f'<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{color}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{label}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{message}</text></g></svg>'
    )


def shields_json(state: str) -> dict[str, object]:
    """The shields.io endpoint badge format (https://shields.io/badges/endpoint-badge)."""
    return {"schemaVersion": 1, "label": LABEL, "message": state, "color": COLORS.get(state, COLORS["unknown"])[1]}
