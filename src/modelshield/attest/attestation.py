"""Sign one scan: the predicate's summary, the signed sidecar and the model card.

:func:`attest_report` signs a report of the model a :class:`~modelshield.attest.manifest.Manifest`
describes; :class:`AttestRun` wraps that around the pipeline's scan (``scan --attest``: key and
manifest before the scan, signature after it). Nothing here scans, so the pipeline
(:mod:`modelshield.scan`) imports it, and the one-shot :func:`~modelshield.attest.workflow.scan_and_attest`
above both calls the pipeline and this.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import modelshield.attest.dsse as dsse
from modelshield.attest.card import CardClaims, write_card
from modelshield.attest.intoto import ScanSummary, build_statement, encode
from modelshield.attest.manifest import Manifest, build_manifest, check_unchanged, sidecar_path, with_digests
from modelshield.attest.signers import Signer, load_signer
from modelshield.errors import ModelShieldError, UsageError
from modelshield.types import ScanReport

DEFAULT_VALID_DAYS = 90.0


class AttestError(ModelShieldError):
    """The attestation could not be written."""


@dataclass(frozen=True, slots=True)
class Attestation:
    """What was written: the sidecar, the card (if any), the statement's summary and signer."""

    model: str
    path: Path
    card: Path | None
    keyid: str
    verdict: str
    expires_at: str
    statement: dict[str, object]


def summarize(report: ScanReport, *, policy: str | None = None, risk_profile: str = "default") -> ScanSummary:
    """The predicate's scan summary; the report digest is over its JSON rendering."""
    from modelshield.render.json import render_json

    gaps = report.coverage_gaps
    decision = report.policy or {}
    policy = policy or _text(decision.get("policy") or decision.get("name"))
    risk_profile = _text(decision.get("profile")) or risk_profile
    return ScanSummary(
        verdict=report.verdict.value,
        fail_on=report.fail_on.label,
        counts=report.counts(),
        report_sha256=hashlib.sha256(render_json(report).encode()).hexdigest(),
        coverage_complete=not gaps,
        coverage_gaps=len(gaps),
        scanner_version=report.tool_version,
        rules_version=report.rules_version,
        advisory_data_version=report.advisory_snapshot,
        policy=policy,
        risk_profile=risk_profile,
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def attest_report(
    report: ScanReport,
    manifest: Manifest,
    signer: Signer,
    *,
    valid_days: float = DEFAULT_VALID_DAYS,
    card: bool = True,
    now: _dt.datetime | None = None,
    policy: str | None = None,
    risk_profile: str = "default",
) -> Attestation:
    """Sign a scan of the model described by ``manifest``; write the sidecar and (optionally) the card."""
    from modelshield.attest.oms import oms_root_digest, oms_signature_path

    model = manifest.root
    oms_sig = oms_signature_path(model)
    oms_digest = oms_root_digest(oms_sig) if oms_sig.is_file() else None
    moment = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    summary = summarize(report, policy=policy, risk_profile=risk_profile)
    statement = build_statement(manifest, summary, scanned_at=moment, valid_days=valid_days, oms_digest=oms_digest)
    envelope = dsse.sign(encode(statement), dsse.INTOTO_PAYLOAD_TYPE, signer)
    path = sidecar_path(model)
    _write_atomic(path, envelope.to_json().encode())
    predicate = statement["predicate"]
    card_file = None
    if card:
        claims = CardClaims(
            verdict=summary.verdict,
            scanned=predicate["scannedAt"],
            expires=predicate["expiresAt"],
            policy=policy or "default",
            profile=summary.risk_profile,  # the profile the decision used (as signed), not only the argument
            attestation=path.name,
            subject_digest=f"sha256:{manifest.root_digest()}",
            signer=signer.keyid,
        )
        card_file = write_card(model, claims)
    return Attestation(model, path, card_file, signer.keyid, summary.verdict, predicate["expiresAt"], statement)


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".modelshield-", dir=path.parent)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise AttestError(f"cannot write the attestation {path}: {exc.strerror}", hint="check permissions") from None


@dataclass(slots=True)
class AttestRun:
    """``scan --attest`` in two steps around the scan: :meth:`start` (key + manifest), :meth:`finish`."""

    manifest: Manifest
    signer: Signer
    valid_days: float
    card: bool

    @classmethod
    def start(cls, targets: Sequence[str], key: str | None, *, valid_days: float, card: bool) -> AttestRun:
        """Check the options, load the key (before a long scan) and hash the model once."""
        if key is None:
            raise UsageError("--attest needs --key KEY", hint="make one with: modelshield keygen --out mykey")
        if len(targets) != 1:
            raise UsageError("--attest attests one model: give exactly one file or folder", hint="run scan per model")
        if valid_days <= 0:
            raise UsageError("--valid-days must be positive", hint="e.g. --valid-days 90")
        signer = load_signer(key)
        return cls(build_manifest(targets[0]), signer, valid_days, card)

    def digests(self) -> dict[str, str]:
        """SHA-256 by absolute path, for the scan report (reused, not recomputed)."""
        return self.manifest.digests_by_path()

    def finish(self, report: ScanReport) -> tuple[ScanReport, Attestation]:
        """Fill the report's digests, make sure nothing changed during the scan, sign and write."""
        check_unchanged(self.manifest)
        report = with_digests(report, self.digests())
        return report, attest_report(report, self.manifest, self.signer, valid_days=self.valid_days, card=self.card)
