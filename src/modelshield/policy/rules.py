"""Policy rules: small objects behind one protocol, composed with :class:`AllOf` / :class:`AnyOf`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Protocol

from modelshield.policy.model import RuleSpec
from modelshield.policy.subject import Subject
from modelshield.types import Category, Finding, Severity


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Outcome of one rule: passed or not, why, and (for compositions) the children's results."""

    rule: str
    passed: bool
    reasons: tuple[str, ...] = ()
    waived_by: str | None = None
    children: tuple[RuleResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Passed, or failed but waived."""
        return self.passed or self.waived_by is not None

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        out: dict[str, object] = {"rule": self.rule, "passed": self.passed, "reasons": list(self.reasons)}
        if self.waived_by:
            out["waived_by"] = self.waived_by
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


class PolicyRule(Protocol):
    """A policy rule: judge the subject (with the findings that are not waived)."""

    @property
    def id(self) -> str:
        """Stable id of the rule (its kind), used in decisions and waivers."""

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Return whether the subject satisfies the rule, with reasons."""


def _result(rule_id: str, failures: list[str], ok_text: str) -> RuleResult:
    return RuleResult(rule_id, not failures, tuple(failures[:10]) if failures else (ok_text,))


@dataclass(frozen=True, slots=True)
class MaxSeverity:
    """No finding (coverage gaps included: fail closed) above ``limit``."""

    limit: Severity
    id: str = "max_severity"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Fail on every finding above the limit."""
        bad = [f"{f.severity.label} {f.rule_id}: {f.message[:120]}" for f in findings if f.severity > self.limit]
        return _result(self.id, bad, f"no finding above {self.limit.label}")


@dataclass(frozen=True, slots=True)
class CveMax:
    """No vulnerability finding above ``limit``."""

    limit: Severity
    id: str = "cve"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Fail on vulnerability findings above the limit."""
        bad = [
            f"{f.severity.label} {f.message[:120]}"
            for f in findings
            if f.category is Category.VULNERABILITY and f.severity > self.limit
        ]
        return _result(self.id, bad, f"no CVE finding above {self.limit.label}")


@dataclass(frozen=True, slots=True)
class Formats:
    """Allowed (every format matches) or denied (no format matches) format globs."""

    patterns: tuple[str, ...]
    allow: bool
    id: str = "formats"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Check every format the scan saw."""
        if self.allow:
            bad = [f"format {f} is not allowed" for f in sorted(subject.formats) if not _any(f, self.patterns)]
        else:
            bad = [f"format {f} is denied" for f in sorted(subject.formats) if _any(f, self.patterns)]
        return _result(self.id, bad, "formats: " + (", ".join(sorted(subject.formats)) or "none"))


def _any(value: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch(value.lower(), p.lower()) for p in patterns)


@dataclass(frozen=True, slots=True)
class RemoteCodeRule:
    """Remote code only when allowed, and then only with pinned file hashes (when pins are given)."""

    allow: bool
    pinned: frozenset[str]
    id: str = "remote_code"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Judge the code files the model ships."""
        if not subject.remote_code:
            return RuleResult(self.id, True, ("no remote code",))
        if not self.allow:
            files = ", ".join(p for p, _ in subject.code_files) or "auto_map in config"
            return RuleResult(self.id, False, (f"model ships remote code ({files})",))
        if self.pinned:
            bad = [f"{p} sha256 {d[:16]}... is not pinned" for p, d in subject.code_files if d not in self.pinned]
            if not subject.code_files:
                bad = ["auto_map points at code that is not in the scanned files; it cannot be pinned"]
            return _result(self.id, bad, "every remote code file has a pinned hash")
        return RuleResult(self.id, True, ("remote code allowed",))


@dataclass(frozen=True, slots=True)
class Signature:
    """A verified signature by a trusted key."""

    trusted: tuple[str, ...]
    id: str = "signature_required"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Check the signer identities the attestation stage verified."""
        signers = subject.attestation.signed_by if subject.attestation else ()
        if not signers:
            return RuleResult(self.id, False, ("no verified signature",))
        if self.trusted and not any(s in self.trusted for s in signers):
            return RuleResult(self.id, False, (f"signed by {', '.join(signers)}, none of them trusted",))
        return RuleResult(self.id, True, (f"signed by {', '.join(signers)}",))


@dataclass(frozen=True, slots=True)
class AttestationFresh:
    """A scan attestation no older than ``max_age_days``."""

    max_age_days: int
    id: str = "attestation_required"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Check the attestation's age."""
        age = subject.attestation.age_days if subject.attestation else None
        if age is None:
            return RuleResult(self.id, False, ("no scan attestation",))
        if age > self.max_age_days:
            return RuleResult(self.id, False, (f"attestation is {age:.0f} days old (max {self.max_age_days})",))
        return RuleResult(self.id, True, (f"attestation is {age:.0f} days old",))


@dataclass(frozen=True, slots=True)
class AllowedValues:
    """The publisher or licence must match one of the allowed globs (unknown fails)."""

    attribute: str
    allowed: tuple[str, ...]
    id: str = "allowed"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Compare the subject's attribute with the list."""
        value = getattr(subject, self.attribute)
        if value is None:
            return RuleResult(self.id, False, (f"{self.attribute} unknown",))
        if not _any(value, self.allowed):
            return RuleResult(self.id, False, (f"{self.attribute} {value!r} is not allowed",))
        return RuleResult(self.id, True, (f"{self.attribute} {value!r}",))


@dataclass(frozen=True, slots=True)
class Flag:
    """A yes/no requirement: dynamic scan done, or coverage complete."""

    what: str
    id: str = "flag"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Check the flag."""
        if self.what == "dynamic":
            ok = subject.dynamic_scanned
            return RuleResult(self.id, ok, ("dynamic scan done" if ok else "no dynamic scan was run",))
        gaps = [f"{f.rule_id}: {f.location.display()}" for f in findings if f.category is Category.COVERAGE]
        return _result(self.id, gaps, "coverage complete")


@dataclass(frozen=True, slots=True)
class AllOf:
    """Passes when every child passes."""

    rules: tuple[PolicyRule, ...]
    id: str = "all_of"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Evaluate every child."""
        results = tuple(r.evaluate(subject, findings) for r in self.rules)
        failed = [f"{r.rule} failed" for r in results if not r.ok]
        return RuleResult(self.id, not failed, tuple(failed) or ("all passed",), children=results)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Passes when at least one child passes."""

    rules: tuple[PolicyRule, ...]
    id: str = "any_of"

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        """Evaluate every child (all results are reported)."""
        results = tuple(r.evaluate(subject, findings) for r in self.rules)
        passed = [r.rule for r in results if r.ok]
        reasons = (f"passed: {', '.join(passed)}",) if passed else ("none of the alternatives passed",)
        return RuleResult(self.id, bool(passed), reasons, children=results)


def build_rule(spec: RuleSpec) -> PolicyRule:
    """The rule object of one validated rule spec."""
    kind = spec.kind
    if spec.max_severity is not None:
        return MaxSeverity(Severity.parse(spec.max_severity))
    if spec.cve is not None:
        return CveMax(Severity.parse(spec.cve.max_severity))
    if spec.allowed_formats is not None:
        return Formats(tuple(spec.allowed_formats), True, kind)
    if spec.denied_formats is not None:
        return Formats(tuple(spec.denied_formats), False, kind)
    if spec.remote_code is not None:
        return RemoteCodeRule(spec.remote_code.allow, frozenset(spec.remote_code.pinned_sha256))
    if spec.signature_required is not None:
        return Signature(tuple(spec.signature_required.trusted_keys))
    if spec.attestation_required is not None:
        return AttestationFresh(spec.attestation_required.max_age_days)
    if spec.allowed_publishers is not None:
        return AllowedValues("publisher", tuple(spec.allowed_publishers), kind)
    if spec.allowed_licenses is not None:
        return AllowedValues("license", tuple(spec.allowed_licenses), kind)
    if spec.dynamic_scan_required is not None:
        return (
            Flag("dynamic" if spec.dynamic_scan_required else "none", kind)
            if spec.dynamic_scan_required
            else _Pass(kind)
        )
    if spec.coverage_complete is not None:
        return Flag("coverage", kind) if spec.coverage_complete else _Pass(kind)
    if spec.all_of is not None:
        return AllOf(tuple(build_rule(s) for s in spec.all_of))
    assert spec.any_of is not None  # the model validator guarantees one kind
    return AnyOf(tuple(build_rule(s) for s in spec.any_of))


@dataclass(frozen=True, slots=True)
class _Pass:
    id: str

    def evaluate(self, subject: Subject, findings: Sequence[Finding]) -> RuleResult:
        return RuleResult(self.id, True, ("not required",))
