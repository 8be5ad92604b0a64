"""Attach a signed probe statement to a model's entry in a modelshield catalog (``modelshield serve``).

``modelshield probe URL --sign KEY --catalog SERVICE_URL --catalog-model REF`` posts the DSSE
envelope it just wrote to ``SERVICE_URL/api/v1/models/REF/probes`` with a publisher token
(``Authorization: Bearer``, read from ``$MODELSHIELD_TOKEN`` by default). The catalog verifies the
statement against the probe signers its admin trusts before it stores it; its refusal comes back
as :class:`CatalogError` with the catalog's error code and message. Standard library only; no
redirect is followed (the token and statement are never re-sent elsewhere).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from modelshield.probe.errors import ProbeError

ENV_TOKEN = "MODELSHIELD_TOKEN"
TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1 << 20
_LATER = "the signed statement file is kept: attach it later with `modelshield probe-attach FILE --catalog ...`"
_HINTS = {
    "unauthorized": "check the token (a publisher token, from `modelshield token create --role publisher`)",
    "insufficient_role": "attaching needs a publisher or admin token",
    "not_found": "check --catalog-model (the model's name or id in the catalog)",
    "untrusted_signer": "an admin adds the signing key's .pub with POST /api/v1/probe-signers",
    "bad_signature": "the statement was changed after signing: probe and sign again",
    "expired_statement": "probe again (or sign with a longer --valid-days)",
    "revoked": "the model is revoked in the catalog",
    "duplicate_statement": "this statement is attached already",
}


class CatalogError(ProbeError):
    """The catalog could not be reached or refused the statement."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer: the token and the statement go nowhere else


_OPENER = urllib.request.build_opener(_NoRedirect)


def probes_url(base_url: str, model: str) -> str:
    """``BASE/api/v1/models/MODEL/probes``; CatalogError for a URL that is not http(s) with a host."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CatalogError(
            f"--catalog needs the http(s) URL of a modelshield catalog, got {base_url!r}",
            hint="e.g. --catalog http://127.0.0.1:8080",
        )
    if not model:
        raise CatalogError("--catalog-model is empty", hint="give the model's name or id in the catalog")
    return f"{base_url.rstrip('/')}/api/v1/models/{quote(model, safe='')}/probes"


def _refusal(status: int, body: bytes) -> tuple[str, str]:
    """(code, message) of the catalog's ``{"error": {"code", "message"}}`` answer, or a generic pair."""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), str(error["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return "http_error", f"HTTP {status} (not a modelshield catalog answer)"


def attach(envelope: bytes, base_url: str, model: str, token: str, *, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """POST the DSSE envelope to the model's probes; the stored statement's summary, or CatalogError."""
    url = probes_url(base_url, model)
    request = urllib.request.Request(
        url,
        data=envelope,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:  # scheme checked in probes_url
            status, body = answer.status, answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        code, message = _refusal(exc.code, exc.read(MAX_ANSWER_BYTES))
        raise CatalogError(
            f"the catalog at {base_url} refused the probe statement for model {model!r}: {exc.code} {code}: {message}",
            hint=_HINTS.get(code, _LATER),
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CatalogError(
            f"cannot reach the catalog at {base_url}: {reason}",
            hint=_LATER,
        ) from None
    try:
        created = json.loads(body)
        if status != 201 or not isinstance(created, dict) or "id" not in created:
            raise ValueError(status)
    except ValueError:
        raise CatalogError(
            f"{url} answered {status} without a stored probe statement", hint="is this a modelshield catalog?"
        ) from None
    return created
