"""The model card indicator: a ``modelshield:`` block in README.md front matter and a badge line.

Only the block and the badge line are ever written; every other byte of the card is kept as it
was. The card is not signed (it is excluded from the subjects): it points at the attestation, and
``modelshield verify`` reports a card that claims a pass without a valid attestation behind it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelshield.attest.manifest import CARD_NAME
from modelshield.errors import ModelShieldError

BLOCK_KEY = "modelshield"
BADGE_MARKER = "<!-- modelshield:badge -->"
_BOM = "\ufeff"
_PASS_WORDS = frozenset({"pass", "passed", "verified", "ok", "clean", "safe", "success"})
_COLORS = {"pass": "brightgreen", "warn": "yellow", "fail": "red"}


class CardError(ModelShieldError):
    """The model card could not be read or written."""


@dataclass(frozen=True, slots=True)
class CardClaims:
    """What the card says about the model (all strings; anything may be missing on a hand-made card)."""

    verdict: str | None = None
    scanned: str | None = None
    expires: str | None = None
    policy: str | None = None
    profile: str | None = None
    attestation: str | None = None
    subject_digest: str | None = None
    signer: str | None = None
    badge_verdict: str | None = None

    @property
    def claims_pass(self) -> bool:
        """True when the block or the badge says the model passed."""
        words = {str(v).strip().lower() for v in (self.verdict, self.badge_verdict) if v is not None}
        return bool(words & _PASS_WORDS)

    def fields(self) -> dict[str, str | None]:
        """The block's fields in the order they are written."""
        return {
            "verdict": self.verdict,
            "scanned": self.scanned,
            "expires": self.expires,
            "policy": self.policy,
            "profile": self.profile,
            "attestation": self.attestation,
            "subject_digest": self.subject_digest,
            "signer": self.signer,
        }


def card_path(model: str | os.PathLike[str]) -> Path:
    """The card of a model: ``README.md`` in the folder (or next to a single-file model)."""
    path = Path(model)
    return path / CARD_NAME if path.is_dir() else path.parent / CARD_NAME


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def render_block(claims: CardClaims, newline: str = "\n") -> str:
    """The ``modelshield:`` YAML block (JSON-quoted strings are valid YAML)."""
    lines = [f"{BLOCK_KEY}:"]
    for key, value in claims.fields().items():
        lines.append(f"  {key}: {'null' if value is None else json.dumps(value)}")
    return newline.join(lines) + newline


def render_badge(claims: CardClaims, newline: str = "\n") -> str:
    """One Markdown line: a badge with the verdict, linking to the attestation file."""
    verdict = (claims.verdict or "unknown").lower()
    color = _COLORS.get(verdict, "lightgrey")
    target = claims.attestation or "#"
    return (
        f"[![modelshield: {verdict}](https://img.shields.io/badge/modelshield-{verdict}-{color})]({target})"
        f" {BADGE_MARKER}{newline}"
    )


def _split(text: str) -> tuple[list[str], list[str] | None, list[str]]:
    """(opening lines, front matter lines or None, body lines); all keep their line endings."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return [], None, lines
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n") in {"---", "..."}:
            return lines[:1], lines[1:index], lines[index:]
    return [], None, lines


def _block_span(front: list[str]) -> tuple[int, int] | None:
    for start, line in enumerate(front):
        if line.rstrip("\r\n").rstrip() == f"{BLOCK_KEY}:":
            end = start + 1
            while end < len(front) and (front[end][:1] in {" ", "\t"} or not front[end].strip()):
                end += 1
            return start, end
    return None


def update_text(text: str, claims: CardClaims) -> str:
    """``text`` with the block and badge written or refreshed; every other byte unchanged."""
    bom = _BOM if text.startswith(_BOM) else ""
    text = text[len(bom) :]
    newline = _newline(text)
    opening, front, rest = _split(text)
    block = render_block(claims, newline)
    if front is None:
        opening, front, closing = [f"---{newline}"], [], [f"---{newline}"]
        body = rest
    else:
        closing, body = rest[:1], rest[1:]
        if not closing[0].endswith("\n"):  # the card ends right after the front matter
            closing = [closing[0] + newline]
    if front and not front[-1].endswith("\n"):
        front[-1] += newline
    span = _block_span(front)
    front = front[: span[0]] + [block] + front[span[1] :] if span else [*front, block]
    body = _with_badge(body, render_badge(claims, newline))
    return bom + "".join(opening + front + closing + body)


def _with_badge(body: list[str], badge: str) -> list[str]:
    for index, line in enumerate(body):
        if BADGE_MARKER in line:
            return body[:index] + [badge] + body[index + 1 :]
    return [badge, *body]


def remove_from_text(text: str) -> str:
    """Undo :func:`update_text`: drop the block (and a front matter that held only it) and the badge."""
    bom = _BOM if text.startswith(_BOM) else ""
    opening, front, rest = _split(text[len(bom) :])
    body = [line for line in (rest[1:] if front is not None else rest) if BADGE_MARKER not in line]
    if front is None:
        return bom + "".join(body)
    span = _block_span(front)
    if span:
        front = front[: span[0]] + front[span[1] :]
    if not front:
        return bom + "".join(body)
    return bom + "".join(opening + front + rest[:1] + body)


def read_claims(text: str) -> CardClaims | None:
    """The card's ``modelshield`` claims, or None when the card makes none."""
    _, front, rest = _split(text.lstrip(_BOM))
    data: dict[str, Any] = {}
    if front is not None:
        span = _block_span(front)
        if span:
            data = _load_block("".join(front[span[0] : span[1]]))
    badge = _badge_verdict(rest)
    if not data and badge is None:
        return None

    def text_of(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    return CardClaims(
        verdict=text_of("verdict"),
        scanned=text_of("scanned"),
        expires=text_of("expires"),
        policy=text_of("policy"),
        profile=text_of("profile"),
        attestation=text_of("attestation"),
        subject_digest=text_of("subject_digest"),
        signer=text_of("signer"),
        badge_verdict=badge,
    )


def _load_block(block: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(block)
    except yaml.YAMLError:
        return {"verdict": "unparseable"}
    inner = loaded.get(BLOCK_KEY) if isinstance(loaded, dict) else None
    return inner if isinstance(inner, dict) else {"verdict": str(inner)}


def _badge_verdict(lines: list[str]) -> str | None:
    for line in lines:
        if BADGE_MARKER in line or "img.shields.io/badge/modelshield-" in line:
            marker = "modelshield-"
            start = line.find(marker)
            if start >= 0:
                return line[start + len(marker) :].split("-", 1)[0]
            return "unknown"
    return None


def write_card(model: str | os.PathLike[str], claims: CardClaims) -> Path:
    """Write or refresh the block and badge in the model's README.md (created if missing)."""
    path = card_path(model)
    try:
        original = path.read_bytes().decode("utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"cannot read model card {path}: {exc}", hint="fix the card's encoding (UTF-8)") from None
    updated = update_text(original, claims)
    try:
        path.write_bytes(updated.encode("utf-8"))
    except OSError as exc:
        raise CardError(f"cannot write model card {path}: {exc.strerror}", hint="check permissions") from None
    return path


def load_card(model: str | os.PathLike[str]) -> CardClaims | None:
    """The claims of the model's card, or None when there is no card or it claims nothing."""
    path = card_path(model)
    try:
        return read_claims(path.read_bytes().decode("utf-8", "replace"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CardError(f"cannot read model card {path}: {exc.strerror}", hint="check permissions") from None
