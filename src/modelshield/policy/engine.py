"""Evaluate a policy for a model: choose the profile, apply waivers, run the rules, decide."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from modelshield.errors import UsageError
from modelshield.policy.model import Condition, PolicyFile, Waiver, load_policy, load_policy_text, parse_size
from modelshield.policy.rules import PolicyRule, RuleResult, build_rule
from modelshield.policy.subject import Subject
from modelshield.rules import rule
from modelshield.types import Category, Finding, Location, ScanReport, Severity

WAIVER_EXPIRED = rule(
    "POLICY-WAIVER-EXPIRED",
    "A policy waiver has expired",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "A waiver in the policy file matched this model but its expiry date has passed, so it no longer applies.",
    "Fix what the waiver covered, or renew the waiver with a new owner-approved expiry date.",
)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """Allowed or denied, under which profile and why; rule results; waivers used and expired."""

    allowed: bool
    profile: str
    profile_reason: str
    results: tuple[RuleResult, ...]
    waivers_applied: tuple[Waiver, ...]
    waivers_expired: tuple[Waiver, ...]
    waived_findings: tuple[Finding, ...]
    findings: tuple[Finding, ...]
    source: str

    def to_dict(self) -> dict[str, object]:
        """JSON form, stored in the report's ``policy`` field."""
        return {
            "decision": "allow" if self.allowed else "deny",
            "profile": self.profile,
            "profile_reason": self.profile_reason,
            "source": self.source,
            "rules": [r.to_dict() for r in self.results],
            "passed": [r.rule for r in self.results if r.passed],
            "failed": [r.rule for r in self.results if not r.ok],
            "waivers_applied": [_waiver_dict(w) for w in self.waivers_applied],
            "waivers_expired": [_waiver_dict(w) for w in self.waivers_expired],
            "waived_findings": [f"{f.rule_id} @ {f.location.display()}" for f in self.waived_findings],
            "findings": [f.to_dict() for f in self.findings],
        }


def _waiver_dict(waiver: Waiver) -> dict[str, str]:
    return {
        "rule": waiver.rule,
        "model": waiver.model,
        "owner": waiver.owner,
        "reason": waiver.reason,
        "expires": waiver.expires.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy file with its rules built once (evaluation then only runs the rules)."""

    spec: PolicyFile
    source: str
    rules: dict[str, tuple[tuple[str, PolicyRule], ...]]

    @classmethod
    def from_spec(cls, spec: PolicyFile, source: str) -> Policy:
        """Build the rule objects of every profile (ids made unique within a profile)."""
        built: dict[str, tuple[tuple[str, PolicyRule], ...]] = {}
        for name, profile in spec.profiles.items():
            seen: dict[str, int] = {}
            rules = []
            for item in profile.rules:
                rule_obj = build_rule(item)
                seen[rule_obj.id] = seen.get(rule_obj.id, 0) + 1
                rid = rule_obj.id if seen[rule_obj.id] == 1 else f"{rule_obj.id}#{seen[rule_obj.id]}"
                rules.append((rid, rule_obj))
            built[name] = tuple(rules)
        return cls(spec, source, built)


def builtin_policy() -> Policy:
    """The built-in policy (the starter file, parsed)."""
    from modelshield.policy.defaults import STARTER

    return Policy.from_spec(load_policy_text(STARTER, "<built-in policy>"), "built-in")


def policy_from_file(path: Path) -> Policy:
    """A policy read completely from ``path`` (PolicyError naming file/line/field otherwise)."""
    return Policy.from_spec(load_policy(path), str(path))


def choose_profile(policy: Policy, subject: Subject, explicit: str | None = None) -> tuple[str, str]:
    """(profile, why): explicit choice, else the first matching selection rule, else the default."""
    if explicit is not None:
        if explicit not in policy.spec.profiles:
            known = ", ".join(policy.spec.profiles)
            raise UsageError(f"unknown profile {explicit!r} in {policy.source}", hint=f"choose one of: {known}")
        return explicit, "set explicitly"
    for i, selection in enumerate(policy.spec.profile_selection):
        if matches(selection.when, subject):
            return selection.profile, f"profile_selection[{i}] matched ({_describe(selection.when)})"
    return policy.spec.default_profile, "default profile"


def _describe(cond: Condition) -> str:
    return ", ".join(f"{k}={v}" for k, v in cond.model_dump(exclude_none=True).items())


def matches(cond: Condition, subject: Subject) -> bool:
    """True when every fact given in ``cond`` holds for the subject."""
    checks: list[bool] = []
    for name in ("executes_code_at_load", "remote_code", "pickle", "chat_template"):
        wanted = getattr(cond, name)
        if wanted is not None:
            checks.append(getattr(subject, name) is wanted)
    if cond.size_over is not None:
        checks.append(subject.size_bytes > parse_size(cond.size_over))
    if cond.publisher_in is not None:
        checks.append(subject.publisher is not None and any(fnmatch(subject.publisher, p) for p in cond.publisher_in))
    if cond.license_in is not None:
        checks.append(subject.license is not None and any(fnmatch(subject.license, p) for p in cond.license_in))
    if cond.format_in is not None:
        checks.append(any(fnmatch(f, p) for f in subject.formats for p in cond.format_in))
    if cond.any_of is not None:
        checks.append(any(matches(c, subject) for c in cond.any_of))
    return bool(checks) and all(checks)


def _applies(waiver: Waiver, subject: Subject) -> bool:
    if waiver.model.startswith("sha256:"):
        return waiver.model.removeprefix("sha256:") in subject.digests
    return any(fnmatch(p, waiver.model) or fnmatch(Path(p).name, waiver.model) for p in subject.paths)


def _covers(waiver: Waiver, finding: Finding) -> bool:
    return waiver.rule == finding.rule_id or waiver.rule in finding.references


def _expired_finding(waiver: Waiver, policy: Policy, today: _dt.date) -> Finding:
    return Finding(
        WAIVER_EXPIRED.id,
        WAIVER_EXPIRED.severity,
        WAIVER_EXPIRED.category,
        f"waiver for {waiver.rule} (owner {waiver.owner}) expired on {waiver.expires.isoformat()}",
        Location(policy.source, None, None, None, f"waiver {waiver.rule}"),
        evidence=f"reason: {waiver.reason}; today is {today.isoformat()}",
        remediation=WAIVER_EXPIRED.remediation,
    )


def evaluate(
    policy: Policy, subject: Subject, profile: str | None = None, today: _dt.date | None = None
) -> PolicyDecision:
    """Decide whether the subject is allowed under the policy."""
    today = today or _dt.date.today()
    name, why = choose_profile(policy, subject, profile)
    relevant = [w for w in policy.spec.waivers if _applies(w, subject)]
    active = [w for w in relevant if w.expires >= today]
    expired = [w for w in relevant if w.expires < today]
    extra = tuple(_expired_finding(w, policy, today) for w in expired)
    findings: list[Finding] = []
    waived: list[Finding] = []
    for finding in subject.report.findings:
        (waived if any(_covers(w, finding) for w in active) else findings).append(finding)
    findings.extend(extra)
    results = []
    for rid, rule_obj in policy.rules[name]:
        result = dataclasses.replace(rule_obj.evaluate(subject, findings), rule=rid)
        waiver = next((w for w in active if w.rule in (rid, rule_obj.id)), None)
        if not result.passed and waiver is not None:
            result = dataclasses.replace(result, waived_by=f"{waiver.owner} until {waiver.expires.isoformat()}")
        results.append(result)
    used = tuple(w for w in active if any(_covers(w, f) for f in waived) or any(r.waived_by for r in results))
    return PolicyDecision(
        allowed=all(r.ok for r in results),
        profile=name,
        profile_reason=why,
        results=tuple(results),
        waivers_applied=used,
        waivers_expired=tuple(expired),
        waived_findings=tuple(waived),
        findings=extra,
        source=policy.source,
    )


def attach(report: ScanReport, decision: PolicyDecision) -> ScanReport:
    """The report with the decision recorded and expired-waiver findings added to its first file."""
    artifacts = report.artifacts
    if decision.findings and artifacts:
        first = artifacts[0]
        artifacts = (dataclasses.replace(first, findings=first.findings + decision.findings), *artifacts[1:])
    return dataclasses.replace(report, artifacts=artifacts, policy=decision.to_dict())


def render_decision(decision: PolicyDecision) -> str:
    """The decision for people: verdict, profile, then every rule with its reasons."""
    verdict = "ALLOWED" if decision.allowed else "DENIED"
    lines = [f"policy: {verdict} under profile '{decision.profile}' ({decision.profile_reason}; {decision.source})"]
    for result in decision.results:
        lines.extend(_result_lines(result, 1))
    for waiver in decision.waivers_applied:
        lines.append(f"  waiver applied: {waiver.rule} by {waiver.owner} until {waiver.expires} ({waiver.reason})")
    for waiver in decision.waivers_expired:
        lines.append(f"  waiver EXPIRED: {waiver.rule} by {waiver.owner} on {waiver.expires} ({waiver.reason})")
    return "\n".join(lines)


def _result_lines(result: RuleResult, depth: int) -> list[str]:
    mark = "pass" if result.passed else ("WAIVED" if result.waived_by else "FAIL")
    pad = "  " * depth
    head = f"{pad}[{mark}] {result.rule}: {'; '.join(result.reasons[:3])}"
    if len(result.reasons) > 3:
        head += f" (+{len(result.reasons) - 3} more)"
    if result.waived_by:
        head += f" (waived by {result.waived_by})"
    lines = [head]
    for child in result.children:
        lines.extend(_result_lines(child, depth + 1))
    return lines
