"""MAY we use it: risk profiles, composable rules, waivers, and the policy decision.

>>> from modelshield.policy import builtin_policy, evaluate, build_subject   # doctest: +SKIP
>>> evaluate(builtin_policy(), build_subject(report), profile="production").allowed  # doctest: +SKIP
False
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> module that defines it (imported on first use: the engine needs pydantic,
#: which a plain scan without a policy should not pay for)
_EXPORTS = {
    **dict.fromkeys(
        ["Policy", "PolicyDecision", "attach", "builtin_policy", "evaluate", "policy_from_file", "render_decision"],
        "modelshield.policy.engine",
    ),
    **dict.fromkeys(["PolicyError", "PolicyFile", "load_policy", "load_policy_text"], "modelshield.policy.model"),
    **dict.fromkeys(["AllOf", "AnyOf", "PolicyRule", "RuleResult"], "modelshield.policy.rules"),
    **dict.fromkeys(["Attestation", "Subject", "build_subject"], "modelshield.policy.subject"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(import_module(module), name)


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
