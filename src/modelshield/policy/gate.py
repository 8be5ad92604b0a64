"""The post-scan gate used by ``modelshield scan`` and ``modelshield policy check``.

``Gate.prepare`` reads the policy completely *before* the scan starts (a malformed policy stops
everything); ``Gate.apply`` adds the CVE findings, evaluates the policy and records the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.types import ScanReport

if TYPE_CHECKING:  # the policy engine (pydantic) is only imported when a policy is in play
    from modelshield.advisories.environment import Environment
    from modelshield.policy.engine import Policy, PolicyDecision


@dataclass(slots=True)
class Gate:
    """Vulnerability assessment plus (optionally) a policy decision for one scan."""

    policy: Policy | None
    profile: str | None
    environment: Environment | None
    decision: PolicyDecision | None = field(default=None)

    @classmethod
    def prepare(cls, policy_file: Path | None, profile: str | None, use_env: bool, always: bool = False) -> Gate:
        """Load the policy and the environment.

        Without a file the built-in policy is used when a profile is given or ``always`` is set.
        """
        policy: Policy | None = None
        if policy_file or profile or always:
            from modelshield.policy.engine import builtin_policy, policy_from_file

            policy = policy_from_file(policy_file) if policy_file else builtin_policy()
        if policy is not None and profile is not None and profile not in policy.spec.profiles:
            from modelshield.errors import UsageError

            known = ", ".join(policy.spec.profiles)
            raise UsageError(f"unknown profile {profile!r} in {policy.source}", hint=f"choose one of: {known}")
        environment: Environment | None = None
        if use_env:
            from modelshield.advisories.environment import current_environment

            environment = current_environment()
        return cls(policy, profile, environment)

    def apply(self, report: ScanReport) -> ScanReport:
        """Add CVE findings and the advisory snapshot; evaluate and attach the policy decision."""
        from modelshield.advisories.assess import assess

        assessment = assess(report, self.environment)
        report = assessment.report
        if self.policy is None:
            return report
        from modelshield.policy.engine import attach, evaluate
        from modelshield.policy.subject import build_subject

        subject = build_subject(report, assessment.facts)
        self.decision = evaluate(self.policy, subject, self.profile)
        return attach(report, self.decision)

    def blocking(self, report: ScanReport) -> bool:
        """Exit 1? The policy decides when one ran; otherwise the report's fail threshold."""
        if self.decision is not None:
            return not self.decision.allowed
        return report.blocking
