"""The probe result as a signed in-toto Statement v1 with its own predicate type.

The subject is the endpoint and model (its digest is the identity fingerprint's, so a statement
names the exact model that answered); the predicate carries the per-family rates, the decision,
coverage, drift and the digest of the full JSON report. It is wrapped in a DSSE envelope signed
with a ``modelshield keygen`` key, and ``modelshield verify FILE --trust KEYS`` checks it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelshield.attest import dsse
from modelshield.attest.intoto import STATEMENT_TYPE, encode, parse_time
from modelshield.attest.results import Outcome
from modelshield.attest.truststore import TrustStore
from modelshield.probe.errors import ProbeError
from modelshield.probe.report import ProbeReport

PROBE_PREDICATE_TYPE = "https://modelshield.dev/attestation/probe/v1"
#: Statements larger than this are not probe statements (verify reads no model file whole).
MAX_STATEMENT_BYTES = 4 << 20


def _timestamp(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_statement(
    report: ProbeReport, *, valid_days: float = 30.0, now: _dt.datetime | None = None
) -> dict[str, Any]:
    """The statement as JSON-ready data."""
    moment = now or _dt.datetime.now(_dt.UTC)
    identity = (report.fingerprint or {}).get("sha256") or hashlib.sha256(report.endpoint.encode()).hexdigest()
    predicate = {
        "prober": {"name": "modelshield", "version": report.tool_version},
        "endpoint": report.endpoint,
        "model": report.model,
        "pack": dict(report.pack),
        "settings": dict(report.settings),
        "riskProfile": report.decision.profile,
        "verdict": report.verdict,
        "reasons": list(report.decision.reasons),
        "families": {f.family: f.rate.to_dict() for f in report.families},
        "findings": {
            sev: sum(1 for f in report.findings if f.severity == sev)
            for sev in ("critical", "high", "medium", "low", "info")
        },
        "coverage": {"complete": report.complete, "gaps": len(report.coverage.get("gaps") or [])},
        "identity": {
            "fingerprintSha256": (report.fingerprint or {}).get("sha256"),
            "drift": None if report.drift is None else bool(report.drift["drift"]),
        },
        "report": {"sha256": report.sha256(), "mediaType": "application/vnd.modelshield.probe-report+json"},
        "probedAt": report.started_at,
        "expiresAt": _timestamp(moment + _dt.timedelta(days=valid_days)),
    }
    subject = {"name": f"endpoint:{report.endpoint}#{report.model or ''}", "digest": {"sha256": identity}}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": PROBE_PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign_report(report: ProbeReport, key: str | os.PathLike[str], out: Path, *, valid_days: float = 30.0) -> str:
    """Sign the report's statement with ``key`` into a DSSE envelope at ``out``; returns the key id."""
    from modelshield.attest.signers import load_signer

    signer = load_signer(key)
    envelope = dsse.sign(encode(build_statement(report, valid_days=valid_days)), dsse.INTOTO_PAYLOAD_TYPE, signer)
    try:
        out.write_text(envelope.to_json(), encoding="utf-8")
    except OSError as exc:
        raise ProbeError(f"cannot write the probe statement {out}: {exc.strerror}", hint="check the folder") from None
    return signer.keyid


def is_probe_statement(path: Path) -> bool:
    """True when ``path`` is a small DSSE envelope whose payload has the probe predicate type."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_STATEMENT_BYTES:
            return False
        data = path.read_bytes()
    except OSError:
        return False
    if data.lstrip()[:1] != b"{":
        return False
    try:
        envelope = dsse.parse(data, str(path))
        payload = json.loads(envelope.payload)
    except (dsse.EnvelopeError, ValueError):
        return False
    return isinstance(payload, dict) and payload.get("predicateType") == PROBE_PREDICATE_TYPE


@dataclass(frozen=True, slots=True)
class ProbeVerifyResult:
    """The outcome of verifying a probe statement (same outcomes and exit codes as ``verify``)."""

    outcome: Outcome
    path: str
    reasons: tuple[str, ...] = ()
    signer: str | None = None
    keyid: str | None = None
    predicate: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The CLI exit code."""
        return self.outcome.exit_code

    def message(self) -> str:
        """Human summary."""
        head = f"{self.outcome.value}: {self.path}"
        if self.predicate:
            head += (
                f" (probe of {self.predicate.get('endpoint')} model {self.predicate.get('model')}: "
                f"verdict {self.predicate.get('verdict')}, profile {self.predicate.get('riskProfile')}"
            )
            head += f", signed by {self.signer})" if self.signer else ")"
        return "\n".join([head, *(f"  - {r}" for r in self.reasons)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "statement": self.path,
            "reasons": list(self.reasons),
            "signer": self.signer,
            "keyid": self.keyid,
            "verdict": self.predicate.get("verdict"),
            "predicate": self.predicate or None,
        }


def verify_statement(
    path: Path, trust: TrustStore, *, require_pass: bool = True, now: _dt.datetime | None = None
) -> ProbeVerifyResult:
    """Check signature, trust, predicate type, expiry and (``require_pass``) the attested verdict."""
    shown = str(path)
    try:
        envelope = dsse.parse(path.read_bytes(), shown)
    except dsse.EnvelopeError as exc:
        return ProbeVerifyResult(Outcome.TAMPERED, shown, (f"the statement is damaged: {exc.message}",))
    except OSError as exc:
        return ProbeVerifyResult(Outcome.UNSIGNED, shown, (f"cannot read {path}: {exc.strerror}",))
    verifier = dsse.verify(envelope, trust)
    hinted = sorted({s.keyid for s in envelope.signatures})
    if verifier is None:
        known = [trust.name_of(k) for k in hinted if trust.name_of(k)]
        if known:
            reason = f"the statement names trusted key {known[0]!r} but its signature does not match: it was altered"
            return ProbeVerifyResult(Outcome.TAMPERED, shown, (reason,))
        reason = f"signed by key {', '.join(hinted) or '(no key id)'}, which is not in the trust store"
        return ProbeVerifyResult(Outcome.UNTRUSTED_SIGNER, shown, (reason,))
    signer, keyid = trust.name_of(verifier.keyid), verifier.keyid
    try:
        raw = json.loads(envelope.payload)
        predicate = raw["predicate"]
        ok_type = raw.get("_type") == STATEMENT_TYPE and raw.get("predicateType") == PROBE_PREDICATE_TYPE
        expires = parse_time(predicate["expiresAt"])
        verdict = str(predicate["verdict"])
    except (ValueError, KeyError, TypeError) as exc:
        return ProbeVerifyResult(Outcome.TAMPERED, shown, (f"malformed probe statement ({exc})",), signer, keyid)
    if envelope.payload_type != dsse.INTOTO_PAYLOAD_TYPE or not ok_type:
        return ProbeVerifyResult(Outcome.TAMPERED, shown, ("not a modelshield probe statement",), signer, keyid)
    if (now or _dt.datetime.now(_dt.UTC)) >= expires:
        reason = f"the statement expired at {predicate['expiresAt']}; probe again"
        return ProbeVerifyResult(Outcome.EXPIRED, shown, (reason,), signer, keyid, predicate)
    if require_pass and verdict != "pass":
        reasons: tuple[str, ...] = (f"the attested probe verdict is {verdict!r}; the policy requires 'pass'",)
        reasons += tuple(str(r) for r in predicate.get("reasons") or [])[:5]
        return ProbeVerifyResult(Outcome.POLICY_DENIED, shown, reasons, signer, keyid, predicate)
    return ProbeVerifyResult(Outcome.VERIFIED, shown, (), signer, keyid, predicate)
