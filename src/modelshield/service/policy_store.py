"""The service's policy: the CLI's built-in policy (risk profiles) unless an admin stored another.

The stored YAML is validated by the policy engine (:mod:`modelshield.policy.model`) before it is
accepted. For a scan, the policy and the model's approved, unexpired waivers are written out as one
policy file that the pipeline's gate reads, so waivers go through the same engine as in the CLI.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable

import yaml
from sqlalchemy.orm import Session

from modelshield.errors import ModelShieldError
from modelshield.policy.model import PolicyFile, load_policy_text
from modelshield.service import audit
from modelshield.service.errors import invalid
from modelshield.service.models import Setting, Waiver

POLICY_KEY = "policy_yaml"
MAX_POLICY_CHARS = 256 * 1024


def policy_text(session: Session) -> str:
    """The policy YAML in force (the built-in one when none is stored)."""
    row = session.get(Setting, POLICY_KEY)
    if row is not None:
        return row.value
    from modelshield.policy.defaults import STARTER

    return STARTER


def is_builtin(session: Session) -> bool:
    """True when no policy has been stored (the built-in one applies)."""
    return session.get(Setting, POLICY_KEY) is None


def load(session: Session) -> PolicyFile:
    """The policy in force, parsed."""
    return load_policy_text(policy_text(session), "service policy")


def version(session: Session) -> str:
    """A short digest naming the policy in force (a change re-evaluates every model)."""
    return hashlib.sha256(policy_text(session).encode()).hexdigest()[:16]


def profiles(session: Session) -> dict[str, str]:
    """Profile name -> description."""
    return {name: profile.description for name, profile in load(session).profiles.items()}


def check_profile(session: Session, name: str | None) -> str:
    """The profile to use (the policy's default when ``name`` is None), or 422."""
    spec = load(session)
    chosen = name or spec.default_profile
    if chosen not in spec.profiles:
        raise invalid(f"unknown profile {chosen!r}: use one of {', '.join(spec.profiles)}", code="invalid_profile")
    return chosen


def store(session: Session, text: str, actor: str) -> PolicyFile:
    """Validate and store a new policy (422 with the file, line and field at fault)."""
    if len(text) > MAX_POLICY_CHARS:
        raise invalid(f"the policy is longer than {MAX_POLICY_CHARS} characters", code="invalid_policy")
    try:
        spec = load_policy_text(text, "policy")
    except ModelShieldError as exc:
        raise invalid(exc.message, code="invalid_policy") from None
    row = session.get(Setting, POLICY_KEY)
    if row is None:
        session.add(Setting(key=POLICY_KEY, value=text))
    else:
        row.value = text
    audit.record(
        session,
        actor,
        "policy.update",
        "policy",
        version=hashlib.sha256(text.encode()).hexdigest()[:16],
        profiles=sorted(spec.profiles),
    )
    return spec


def scan_policy_yaml(spec: PolicyFile, waivers: Iterable[Waiver]) -> str:
    """The policy plus the model's waivers, as the policy file a scan's gate reads."""
    data = spec.model_dump(mode="json")
    data["waivers"] = list(data.get("waivers") or []) + [
        {
            "rule": w.rule,
            "model": "*",
            "owner": w.requested_by,
            "reason": f"{w.reason} (service waiver #{w.id}, approved by {w.decided_by})",
            "expires": w.expires_on.isoformat(),
        }
        for w in waivers
    ]
    text = yaml.safe_dump(data, sort_keys=False)
    load_policy_text(text, "scan policy")  # never hand the gate a file it would refuse
    return text


def waivers_key(waivers: Iterable[Waiver], today: _dt.date) -> list[tuple[str, str]]:
    """What of the waivers changes a decision (for the scan cache key)."""
    return sorted((w.rule, w.expires_on.isoformat()) for w in waivers if w.expires_on >= today)
