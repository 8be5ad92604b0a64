"""The scan attestation: an in-toto Statement v1 whose predicate is a scan summary.

Subjects are the model's files with their SHA-256 digests (and, when the model also carries an
OpenSSF model-signing signature, that signature's manifest digest, so the attestation provably
refers to the signed bytes). The predicate type is a URI modelshield owns.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelshield.attest.manifest import Manifest
from modelshield.errors import ModelShieldError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://modelshield.dev/attestation/scan/v1"
#: Annotation marking the subject that carries an OMS signature's manifest digest.
OMS_SUBJECT_KIND = "oms-manifest"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class StatementError(ModelShieldError):
    """A payload is not a modelshield scan statement."""


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What the scan concluded, as recorded in the predicate."""

    verdict: str
    fail_on: str
    counts: dict[str, int]
    report_sha256: str
    coverage_complete: bool
    coverage_gaps: int
    scanner_version: str
    rules_version: str
    advisory_data_version: str | None = None
    policy: str | None = None
    risk_profile: str = "default"


@dataclass(frozen=True, slots=True)
class ScanPredicate:
    """A parsed predicate: the summary plus the validity window. ``raw`` is the JSON as signed."""

    summary: ScanSummary
    scanned_at: _dt.datetime
    expires_at: _dt.datetime
    model_root_digest: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """pass | warn | fail."""
        return self.summary.verdict


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed statement: file subjects (name -> sha256), the OMS manifest digest if any, predicate."""

    subjects: dict[str, str]
    oms_digest: str | None
    predicate: ScanPredicate


def _timestamp(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_statement(
    manifest: Manifest,
    summary: ScanSummary,
    *,
    scanned_at: _dt.datetime,
    valid_days: float,
    oms_digest: str | None = None,
) -> dict[str, Any]:
    """The statement as JSON-ready data."""
    subjects: list[dict[str, Any]] = [{"name": f.name, "digest": {"sha256": f.sha256}} for f in manifest.files]
    if oms_digest is not None:
        subjects.append(
            {
                "name": "model-signing-manifest",
                "digest": {"sha256": oms_digest},
                "annotations": {"modelshield": OMS_SUBJECT_KIND},
            }
        )
    expires = scanned_at + _dt.timedelta(days=valid_days)
    predicate = {
        "scanner": {"name": "modelshield", "version": summary.scanner_version},
        "rulesVersion": summary.rules_version,
        "advisoryDataVersion": summary.advisory_data_version,
        "policy": summary.policy,
        "riskProfile": summary.risk_profile,
        "verdict": summary.verdict,
        "failOn": summary.fail_on,
        "counts": dict(summary.counts),
        "report": {"sha256": summary.report_sha256, "mediaType": "application/vnd.modelshield.report+json"},
        "coverage": {"complete": summary.coverage_complete, "gaps": summary.coverage_gaps},
        "model": {
            "kind": "folder" if manifest.is_folder else "file",
            "files": len(manifest.files),
            "bytes": manifest.total_bytes,
            "rootDigest": manifest.root_digest(),
        },
        "scannedAt": _timestamp(scanned_at),
        "expiresAt": _timestamp(expires),
    }
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def encode(statement: dict[str, Any]) -> bytes:
    """Canonical-enough bytes to sign (sorted keys, compact separators)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def parse_statement(payload: bytes) -> Statement:
    """Parse and validate a signed payload; StatementError says what is wrong."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatementError(f"payload is not JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("_type") != STATEMENT_TYPE:
        raise StatementError("payload is not an in-toto Statement v1")
    if raw.get("predicateType") != PREDICATE_TYPE:
        raise StatementError(
            f"predicate type is {raw.get('predicateType')!r}, not a modelshield scan ({PREDICATE_TYPE})"
        )
    try:
        subjects, oms = _subjects(raw["subject"])
        predicate = _predicate(raw["predicate"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StatementError(f"malformed statement ({type(exc).__name__}: {exc})") from None
    return Statement(subjects, oms, predicate)


def _subjects(items: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
    files: dict[str, str] = {}
    oms: str | None = None
    for item in items:
        digest = item["digest"]["sha256"]
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ValueError(f"subject {item.get('name')!r} has no valid sha256")
        if (item.get("annotations") or {}).get("modelshield") == OMS_SUBJECT_KIND:
            oms = digest
            continue
        name = item["name"]
        if not isinstance(name, str) or name in files:
            raise ValueError(f"subject name {name!r} is missing or repeated")
        files[name] = digest
    return files, oms


def _predicate(raw: dict[str, Any]) -> ScanPredicate:
    report = raw["report"]
    coverage = raw["coverage"]
    summary = ScanSummary(
        verdict=str(raw["verdict"]),
        fail_on=str(raw.get("failOn", "medium")),
        counts={str(k): int(v) for k, v in raw["counts"].items()},
        report_sha256=str(report["sha256"]),
        coverage_complete=bool(coverage["complete"]),
        coverage_gaps=int(coverage["gaps"]),
        scanner_version=str(raw["scanner"]["version"]),
        rules_version=str(raw["rulesVersion"]),
        advisory_data_version=raw.get("advisoryDataVersion"),
        policy=raw.get("policy"),
        risk_profile=str(raw.get("riskProfile") or "default"),
    )
    return ScanPredicate(
        summary=summary,
        scanned_at=parse_time(raw["scannedAt"]),
        expires_at=parse_time(raw["expiresAt"]),
        model_root_digest=str(raw["model"]["rootDigest"]),
        raw=raw,
    )


def parse_time(text: str) -> _dt.datetime:
    """Parse an RFC 3339 UTC timestamp (``...Z``) into an aware datetime."""
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment
