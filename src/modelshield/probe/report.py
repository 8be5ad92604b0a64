"""What a probe run found: findings, per-trial outcomes, per-family rates, the decision."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from modelshield.probe.stats import Rate

SCHEMA_VERSION = "1"
SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class ProbeFinding:
    """One finding: a stable rule id (``PROBE-...``), severity, category, message and evidence."""

    rule_id: str
    severity: str
    category: str
    message: str
    evidence: str = ""
    family: str | None = None
    probe_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "category": self.category,
            "message": self.message,
            "evidence": self.evidence,
            "family": self.family,
            "probe_id": self.probe_id,
        }


@dataclass(frozen=True, slots=True)
class Trial:
    """One probe sent once: whether it ran, whether the attack succeeded, and why."""

    probe_id: str
    family: str
    repeat: int
    ran: bool
    hit: bool = False
    refused: bool = False
    evidence: str = ""
    error: str | None = None
    answer: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the answer is cut to 400 characters)."""
        return {
            "probe_id": self.probe_id,
            "family": self.family,
            "repeat": self.repeat,
            "ran": self.ran,
            "hit": self.hit,
            "refused": self.refused,
            "evidence": self.evidence,
            "error": self.error,
            "answer": self.answer[:400],
        }


@dataclass(frozen=True, slots=True)
class FamilyResult:
    """Attack success of one family over every trial that ran."""

    family: str
    title: str
    severity: str
    rate: Rate
    not_run: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the rate's hits, trials and interval."""
        head = {"family": self.family, "title": self.title, "severity": self.severity, "not_run": self.not_run}
        return {**head, **self.rate.to_dict()}


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy decision: verdict (pass/warn/fail), the risk profile, and the reasons."""

    verdict: str
    profile: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """A finished probe run (complete or not; an incomplete run never passes)."""

    endpoint: str
    model: str | None
    tool_version: str
    pack: dict[str, str]
    settings: dict[str, Any]
    started_at: str
    duration_s: float
    findings: tuple[ProbeFinding, ...]
    families: tuple[FamilyResult, ...]
    trials: tuple[Trial, ...]
    fingerprint: dict[str, Any] | None
    drift: dict[str, Any] | None
    decision: Decision
    coverage: dict[str, Any] = field(default_factory=dict)
    aborted: str | None = None

    @property
    def verdict(self) -> str:
        """pass | warn | fail."""
        return self.decision.verdict

    @property
    def complete(self) -> bool:
        """True when every planned check and trial ran."""
        return bool(self.coverage.get("complete"))

    def family(self, name: str) -> FamilyResult | None:
        """The result of one family, if it was probed."""
        return next((f for f in self.families if f.family == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "modelshield-probe-report",
            "tool": {"name": "modelshield", "version": self.tool_version},
            "endpoint": self.endpoint,
            "model": self.model,
            "pack": dict(self.pack),
            "settings": dict(self.settings),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "verdict": self.verdict,
            "decision": {
                "verdict": self.decision.verdict,
                "profile": self.decision.profile,
                "reasons": list(self.decision.reasons),
            },
            "coverage": dict(self.coverage),
            "aborted": self.aborted,
            "families": [f.to_dict() for f in self.families],
            "findings": [f.to_dict() for f in self.findings],
            "fingerprint": self.fingerprint,
            "drift": self.drift,
            "trials": [t.to_dict() for t in self.trials],
        }

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def sha256(self) -> str:
        """Digest of the JSON report (recorded in the signed statement)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()
