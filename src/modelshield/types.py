"""Core values of modelshield: severities, findings, artifacts, reports.

Values are frozen dataclasses; pydantic is only used where data is serialized.
"""

from __future__ import annotations

import enum
from typing import Any

from modelshield._record import field, record


class Severity(enum.IntEnum):
    """Ordered finding severity (info < low < medium < high < critical)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """Lower-case name used in reports and on the command line."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a severity name (case-insensitive); raise ValueError with the choices."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; choose one of: {choices}") from None


class Category(enum.StrEnum):
    """What kind of problem a finding describes."""

    MALICIOUS_CODE = "malicious-code"
    VULNERABILITY = "vulnerability"
    TAMPERING = "tampering"
    BACKDOOR = "backdoor"
    UNSAFE_CONFIG = "unsafe-config"
    COVERAGE = "coverage"
    INTEGRITY = "integrity"


class VerdictKind(enum.StrEnum):
    """Overall outcome of a scan or of one artifact."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@record
class Location:
    """Where inside an artifact a finding points.

    ``path`` is the file on disk, ``member`` the chain of archive members
    (joined with ``!/``) or None, and the optional fields narrow it down.
    """

    path: str
    member: str | None = None
    offset: int | None = None
    opcode_index: int | None = None
    detail: str | None = None

    def display(self) -> str:
        """Human-readable location, e.g. ``model.pt!/archive/data.pkl @ 0x1f``."""
        text = self.path if self.member is None else f"{self.path}!/{self.member}"
        if self.offset is not None:
            text += f" @ byte {self.offset}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def __reduce__(self) -> tuple[type[Location], tuple[Any, ...]]:
        # Plain-tuple pickling: worker processes send thousands of these (dataclass slots pickling
        # goes through fields() per object, several times slower).
        return Location, (self.path, self.member, self.offset, self.opcode_index, self.detail)

    def to_dict(self) -> dict[str, Any]:
        """Serialize for the JSON report."""
        return {
            "path": self.path,
            "member": self.member,
            "offset": self.offset,
            "opcode_index": self.opcode_index,
            "detail": self.detail,
        }


@record
class Finding:
    """One problem found in an artifact."""

    rule_id: str
    severity: Severity
    category: Category
    message: str
    location: Location
    evidence: str = ""
    references: tuple[str, ...] = ()
    remediation: str = ""
    #: How the finding was established: ``static`` (parsed bytes) or ``dynamic`` (observed in the sandbox).
    source: str = "static"

    def __reduce__(self) -> tuple[type[Finding], tuple[Any, ...]]:
        return Finding, (
            self.rule_id,
            self.severity,
            self.category,
            self.message,
            self.location,
            self.evidence,
            self.references,
            self.remediation,
            self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize for the JSON report."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "category": self.category.value,
            "message": self.message,
            "location": self.location.to_dict(),
            "evidence": self.evidence,
            "references": list(self.references),
            "remediation": self.remediation,
            "source": self.source,
        }


@record
class CoverageGap:
    """Something that could not be fully analysed, and why."""

    path: str
    member: str | None
    reason: str
    rule_id: str

    def to_dict(self) -> dict[str, Any]:
        """Serialize for the JSON report."""
        return {"path": self.path, "member": self.member, "reason": self.reason, "rule_id": self.rule_id}


@record
class Artifact:
    """One scanned file or archive member, with its findings."""

    path: str
    member: str | None
    format: str
    size: int
    sha256: str | None
    findings: tuple[Finding, ...] = ()
    #: What the file says about the frameworks it needs (``advisories.requirements.ModelFacts``),
    #: gathered while the file is scanned (in the worker that scans it) for the vulnerability
    #: stage: None = not gathered, () = nothing to say. Not part of the report's JSON.
    facts: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[type[Artifact], tuple[Any, ...]]:
        return Artifact, (self.path, self.member, self.format, self.size, self.sha256, self.findings, self.facts)

    def verdict(self, fail_on: Severity) -> VerdictKind:
        """Verdict of this artifact alone (see :func:`decide`)."""
        return decide(self.findings, fail_on)

    def to_dict(self, fail_on: Severity) -> dict[str, Any]:
        """Serialize for the JSON report."""
        return {
            "path": self.path,
            "member": self.member,
            "format": self.format,
            "size": self.size,
            "sha256": self.sha256,
            "verdict": self.verdict(fail_on).value,
            "findings": [f.to_dict() for f in self.findings],
        }


def decide(findings: tuple[Finding, ...] | list[Finding], fail_on: Severity) -> VerdictKind:
    """Turn findings into a verdict.

    ``fail``: a finding at or above ``fail_on`` that is not a coverage gap.
    ``warn``: incomplete coverage, or findings of low severity or above under the threshold.
    ``pass``: nothing but informational notes.
    """
    verdict = VerdictKind.PASS
    for finding in findings:
        if finding.severity >= fail_on and finding.category is not Category.COVERAGE:
            return VerdictKind.FAIL
        if finding.severity >= Severity.LOW or finding.category is Category.COVERAGE:
            verdict = VerdictKind.WARN
    return verdict


def blocks(findings: tuple[Finding, ...] | list[Finding], fail_on: Severity) -> bool:
    """True when any finding (coverage gaps included: fail closed) is at or above ``fail_on``."""
    return any(f.severity >= fail_on for f in findings)


@record
class ScanReport:
    """The frozen result of a scan."""

    tool_version: str
    rules_version: str
    targets: tuple[str, ...]
    artifacts: tuple[Artifact, ...]
    fail_on: Severity
    started_at: str
    duration_s: float
    files_scanned: int
    files_skipped: int
    bytes_scanned: int
    errors: tuple[str, ...] = field(default=())
    #: Snapshot date of the advisory data the CVE findings were matched against (None: not assessed).
    advisory_snapshot: str | None = None
    #: The policy decision (profile, rules passed/failed, waivers) as JSON-ready data, when a policy ran.
    policy: dict[str, Any] | None = None

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding of every artifact."""
        return tuple(f for a in self.artifacts for f in a.findings)

    @property
    def coverage_gaps(self) -> tuple[CoverageGap, ...]:
        """Findings of category coverage, as gaps."""
        return tuple(
            CoverageGap(f.location.path, f.location.member, f.message, f.rule_id)
            for f in self.findings
            if f.category is Category.COVERAGE
        )

    @property
    def verdict(self) -> VerdictKind:
        """Overall verdict."""
        return decide(self.findings, self.fail_on)

    @property
    def blocking(self) -> bool:
        """True when the CLI must exit 1 (fail closed on coverage gaps too)."""
        return blocks(self.findings, self.fail_on)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity label."""
        counts = {s.label: 0 for s in Severity}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        return counts
