"""Attest a scan: hash once, scan, sign the summary, write the sidecar and the card.

The order guarantees one hash pass and no check-then-swap window: the manifest is built first,
the scan reuses its digests, and after the scan the files' stamps (size, mtime, inode) are checked
again so the attestation never vouches for bytes other than the ones scanned.

The signing half (:func:`attest_report`, :class:`AttestRun`, :class:`Attestation`) lives in
:mod:`modelshield.attest.attestation`, below the scan pipeline that uses it, and is re-exported here.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import modelshield.attest.dsse as dsse
from modelshield.attest.attestation import (
    DEFAULT_VALID_DAYS,
    Attestation,
    AttestError,
    AttestRun,
    attest_report,
    summarize,
)
from modelshield.attest.card import CardClaims, write_card
from modelshield.attest.manifest import build_manifest, check_unchanged, sidecar_path, with_digests
from modelshield.attest.signers import Signer, load_signer
from modelshield.types import ScanReport

__all__ = [
    "DEFAULT_VALID_DAYS",
    "AttestError",
    "AttestRun",
    "Attestation",
    "attest_report",
    "refresh_card",
    "scan_and_attest",
    "summarize",
]


def scan_and_attest(
    model: str | os.PathLike[str],
    key: str | os.PathLike[str] | Signer,
    *,
    valid_days: float = DEFAULT_VALID_DAYS,
    card: bool = True,
    fail_on: str = "medium",
    now: _dt.datetime | None = None,
) -> tuple[ScanReport, Attestation]:
    """Library one-shot: hash, scan, attest. Returns the report (with digests) and what was written."""
    from modelshield.scan import scan

    signer = load_signer(key) if isinstance(key, str | os.PathLike) else key
    manifest = build_manifest(model)
    report = scan(str(model), fail_on=fail_on)
    check_unchanged(manifest)
    report = with_digests(report, manifest.digests_by_path())
    return report, attest_report(report, manifest, signer, valid_days=valid_days, card=card, now=now)


def refresh_card(model: str | os.PathLike[str]) -> Path:
    """Rewrite the card block and badge from the model's existing attestation (its signature is not checked)."""
    from modelshield.attest.intoto import StatementError, parse_statement

    path = sidecar_path(model)
    try:
        envelope = dsse.parse(path.read_bytes(), str(path))
        statement = parse_statement(envelope.payload)
    except OSError as exc:
        raise AttestError(
            f"cannot read the attestation {path}: {exc.strerror}", hint="scan with --attest first"
        ) from None
    except StatementError as exc:
        raise AttestError(f"{path}: {exc.message}", hint="scan with --attest again") from None
    predicate = statement.predicate
    claims = CardClaims(
        verdict=predicate.verdict,
        scanned=str(predicate.raw.get("scannedAt")),
        expires=str(predicate.raw.get("expiresAt")),
        policy=predicate.summary.policy or "default",
        profile=predicate.summary.risk_profile,
        attestation=path.name,
        subject_digest=f"sha256:{predicate.model_root_digest}",
        signer=envelope.signatures[0].keyid,
    )
    return write_card(model, claims)
