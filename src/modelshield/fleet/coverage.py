"""The coverage rules of fleet scans: a file that could not be fetched or changed while listed."""

from __future__ import annotations

from modelshield.rules import rule
from modelshield.types import Artifact, Category, Finding, Location, Severity

FETCH_FAILED = rule(
    "FLEET-FETCH-FAILED",
    "A listed file could not be fetched",
    Severity.MEDIUM,
    Category.COVERAGE,
    "A file named in the fleet list could not be opened (missing, HTTP error, missing credentials, "
    "no driver for its URL scheme). It was not analysed; the verdict cannot be a pass.",
    "Check the URL and the credentials of the storage it names (e.g. AWS_PROFILE for s3://), then scan again.",
)
FILE_CHANGED = rule(
    "FLEET-FILE-CHANGED",
    "The file changed between listing and scanning",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The file's size, modification time or SHA-256 when it was scanned differs from when it was listed, so "
    "the result would describe bytes nobody listed. It is reported instead of being mixed up with them.",
    "Scan again once the file has stopped changing (a download or a copy still in progress).",
)


def coverage_artifact(path: str, rule_id: str, message: str, evidence: str = "", size: int = -1) -> Artifact:
    """A top-level artifact standing for an unscanned file, with one coverage finding."""
    from modelshield.rules import get_rule

    declared = get_rule(rule_id)
    finding = Finding(
        rule_id,
        declared.severity,
        declared.category,
        message,
        Location(path),
        evidence=evidence[:4000],
        references=declared.references,
        remediation=declared.remediation,
    )
    return Artifact(path, None, "unscanned", size, None, (finding,))
