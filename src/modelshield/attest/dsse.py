"""DSSE envelopes (https://github.com/secure-systems-lab/dsse): PAE signing and verification."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelshield.attest.signers import Signer, Verifier
from modelshield.errors import ModelShieldError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ModelShieldError):
    """An envelope is not valid DSSE JSON."""


@dataclass(frozen=True, slots=True)
class Signature:
    """One DSSE signature: key id and raw signature bytes."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: the payload bytes, their type, and signatures over PAE(type, payload)."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        """The standard JSON form (base64 payload and signatures)."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures],
        }

    def to_json(self) -> str:
        """Serialize as indented JSON."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, payload_type: str, signer: Signer) -> Envelope:
    """Sign ``payload`` with ``signer`` into a one-signature envelope."""
    return Envelope(payload_type, payload, (Signature(signer.keyid, signer.sign(pae(payload_type, payload))),))


def verify(envelope: Envelope, verifiers: Iterable[Verifier]) -> Verifier | None:
    """The first verifier whose key made one of the envelope's signatures, or None."""
    message = pae(envelope.payload_type, envelope.payload)
    candidates = list(verifiers)
    for signature in envelope.signatures:
        # A key id is only a hint: try the matching key first, then every other key.
        ordered = sorted(candidates, key=lambda v: v.keyid != signature.keyid)
        for verifier in ordered:
            if verifier.verify(signature.sig, message):
                return verifier
    return None


def parse(data: bytes | str, origin: str = "envelope") -> Envelope:
    """Parse DSSE JSON (also accepts a Sigstore bundle, taking its ``dsseEnvelope``)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"{origin}: not JSON ({exc})", hint="the attestation file is damaged") from None
    if isinstance(raw, dict) and isinstance(raw.get("dsseEnvelope"), dict):
        raw = raw["dsseEnvelope"]
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{origin}: not a DSSE envelope (expected an object)", hint="the file is damaged")
    try:
        payload = base64.b64decode(raw["payload"], validate=True)
        payload_type = raw["payloadType"]
        signatures = tuple(
            Signature(str(s.get("keyid") or ""), base64.b64decode(s["sig"], validate=True)) for s in raw["signatures"]
        )
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EnvelopeError(f"{origin}: malformed DSSE envelope ({exc!r})", hint="the file is damaged") from None
    if not isinstance(payload_type, str) or not signatures:
        raise EnvelopeError(f"{origin}: DSSE envelope without payload type or signatures", hint="the file is damaged")
    return Envelope(payload_type, payload, signatures)
