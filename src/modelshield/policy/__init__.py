"""MAY we use it: risk profiles, composable rules, waivers, and the policy decision.

>>> from modelshield.policy import builtin_policy, evaluate, build_subject   # doctest: +SKIP
>>> evaluate(builtin_policy(), build_subject(report), profile="production").allowed  # doctest: +SKIP
False
"""

from __future__ import annotations

from modelshield.policy.engine import (
    Policy,
    PolicyDecision,
    attach,
    builtin_policy,
    evaluate,
    policy_from_file,
    render_decision,
)
from modelshield.policy.model import PolicyError, PolicyFile, load_policy, load_policy_text
from modelshield.policy.rules import AllOf, AnyOf, PolicyRule, RuleResult
from modelshield.policy.subject import Attestation, Subject, build_subject

__all__ = [
    "AllOf",
    "AnyOf",
    "Attestation",
    "Policy",
    "PolicyDecision",
    "PolicyError",
    "PolicyFile",
    "PolicyRule",
    "RuleResult",
    "Subject",
    "attach",
    "build_subject",
    "builtin_policy",
    "evaluate",
    "load_policy",
    "load_policy_text",
    "policy_from_file",
    "render_decision",
]
