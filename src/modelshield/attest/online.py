"""The online half of verification: ask the catalog that issued an attestation whether it was revoked.

``modelshield verify MODEL --trust KEYS --online URL`` and the load guard (``online=URL``) fetch
``URL/api/v1/revocations`` (standard library only, nothing else is sent) and refuse an attestation
whose payload digest, or whose model root digest, the catalog lists as revoked. The check fails
closed: when the list cannot be fetched or read, verification stops with an error instead of
passing a model that might be revoked. Everything else about verification stays offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import modelshield.attest.dsse as dsse
from modelshield.attest.results import Outcome, VerifyResult
from modelshield.errors import ModelShieldError

REVOCATIONS_PATH = "/api/v1/revocations"
TIMEOUT_S = 10.0
MAX_BYTES = 16 << 20
ENV_TOKEN = "MODELSHIELD_TOKEN"


class RevocationCheckError(ModelShieldError):
    """The revocation list could not be fetched or read (verification fails closed)."""


@dataclass(frozen=True, slots=True)
class Revocations:
    """What a catalog revoked: model root digests and attestation payload digests (SHA-256, hex)."""

    source: str
    root_digests: frozenset[str]
    attestation_digests: frozenset[str]

    def reason(self, root_digest: str | None, payload_sha256: str | None) -> str | None:
        """Why an attestation with these digests is revoked, or None."""
        if payload_sha256 and payload_sha256 in self.attestation_digests:
            return f"the catalog at {self.source} revoked this attestation"
        if root_digest and root_digest in self.root_digests:
            return f"the catalog at {self.source} revoked the attested model (root digest {root_digest[:16]}...)"
        return None


def _url(base: str) -> str:
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RevocationCheckError(
            f"--online needs an http(s) URL of a modelshield catalog, got {base!r}", hint="e.g. http://127.0.0.1:8080"
        )
    return base.rstrip("/") + REVOCATIONS_PATH


def fetch_revocations(base_url: str, *, token: str | None = None, timeout: float = TIMEOUT_S) -> Revocations:
    """The catalog's revocation list; RevocationCheckError when it cannot be had."""
    url = _url(base_url)
    headers = {"Accept": "application/json"}
    bearer = token or os.environ.get(ENV_TOKEN)
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - scheme checked above
            body = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise RevocationCheckError(
            f"the catalog answered {exc.code} for {url}", hint="check the URL (and MODELSHIELD_TOKEN)"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RevocationCheckError(
            f"cannot reach the catalog at {base_url}: {reason}",
            hint="the revocation check fails closed; retry when the catalog is reachable",
        ) from None
    if len(body) > MAX_BYTES:
        raise RevocationCheckError(f"the revocation list from {url} is too large", hint="check the URL")
    try:
        data = json.loads(body)
        items = data["revocations"]
        roots = frozenset(str(i["root_digest"]) for i in items if i.get("root_digest"))
        payloads = frozenset(str(d) for i in items for d in i.get("attestation_sha256") or [])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RevocationCheckError(
            f"{url} did not return a revocation list ({type(exc).__name__})", hint="is this a modelshield catalog?"
        ) from None
    return Revocations(base_url, roots, payloads)


def payload_digest(attestation: str | os.PathLike[str]) -> str | None:
    """SHA-256 (hex) of the signed payload of an attestation file (None when it cannot be read)."""
    try:
        envelope = dsse.parse(Path(attestation).read_bytes(), str(attestation))
    except (OSError, dsse.EnvelopeError):
        return None
    return hashlib.sha256(envelope.payload).hexdigest()


def check(result: VerifyResult, revocations: Revocations) -> VerifyResult:
    """``result``, turned into REVOKED when the catalog revoked its attestation."""
    if result.predicate is None:
        return result
    payload = payload_digest(result.attestation) if result.attestation else None
    why = revocations.reason(result.predicate.model_root_digest, payload)
    if why is None:
        return result
    return dataclasses.replace(result, outcome=Outcome.REVOKED, reasons=(why, *result.reasons))


def check_online(result: VerifyResult, base_url: str, *, token: str | None = None) -> VerifyResult:
    """Fetch the catalog's revocations and apply them to ``result`` (fails closed)."""
    return check(result, fetch_revocations(base_url, token=token))
