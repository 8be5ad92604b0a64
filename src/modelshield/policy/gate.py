"""The post-scan gate used by ``modelshield scan`` and ``modelshield policy check``.

``Gate.prepare`` reads the policy completely *before* the scan starts (a malformed policy stops
everything); ``Gate.apply`` adds the CVE findings, evaluates the policy and records the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelshield._record import field, record
from modelshield.types import ScanReport

if TYPE_CHECKING:  # the policy engine (pydantic) is only imported when a policy is in play
    from pathlib import Path

    from modelshield.advisories.environment import Environment
    from modelshield.policy.engine import Policy, PolicyDecision
    from modelshield.policy.subject import Attestation


@record(frozen=False)
class Gate:
    """Vulnerability assessment plus (optionally) a policy decision for one scan."""

    policy: Policy | None
    profile: str | None
    environment: Environment | None
    decision: PolicyDecision | None = field(default=None)
    trust: Path | None = None
    dynamic_scanned: bool = False

    @classmethod
    def prepare(
        cls,
        policy_file: Path | None,
        profile: str | None,
        use_env: bool,
        always: bool = False,
        trust: Path | None = None,
        dynamic_scanned: bool = False,
    ) -> Gate:
        """Load the policy and the environment.

        Without a file the built-in policy is used when a profile is given or ``always`` is set.
        ``trust`` (a trust store) lets signature and attestation rules see the model's verified
        attestation; ``dynamic_scanned`` tells the "dynamic scan required" rule that one ran.
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
        return cls(policy, profile, environment, trust=trust, dynamic_scanned=dynamic_scanned)

    def apply(self, report: ScanReport) -> ScanReport:
        """Add CVE findings and the advisory snapshot; evaluate and attach the policy decision."""
        from modelshield.advisories.assess import assess

        assessment = assess(report, self.environment)
        report = assessment.report
        if self.policy is None:
            return report
        from modelshield.policy.engine import attach, evaluate
        from modelshield.policy.subject import build_subject

        subject = build_subject(
            report, assessment.facts, attestation=self._attestation(report), dynamic_scanned=self.dynamic_scanned
        )
        self.decision = evaluate(self.policy, subject, self.profile)
        return attach(report, self.decision)

    def blocking(self, report: ScanReport) -> bool:
        """Exit 1? The policy decides when one ran; otherwise the report's fail threshold."""
        if self.decision is not None:
            return not self.decision.allowed
        return report.blocking

    def _attestation(self, report: ScanReport) -> Attestation | None:
        """The verified attestation of the scanned model (one target), or None.

        Only a VERIFIED outcome counts (trusted signer, files unchanged, not expired); the attested
        verdict itself is judged by the policy's own rules, so verification here accepts any verdict.
        """
        if self.trust is None or len(report.targets) != 1:
            return None
        import datetime as _dt

        from modelshield.attest.verify import allow_any, verify
        from modelshield.policy.subject import Attestation

        result = verify(report.targets[0], self.trust, policy=allow_any, check_card=False)
        if not result.ok or result.predicate is None:
            return None
        age = (_dt.datetime.now(_dt.UTC) - result.predicate.scanned_at).total_seconds() / 86400
        return Attestation(signed_by=tuple(n for n in (result.signer, result.keyid) if n), age_days=age)
