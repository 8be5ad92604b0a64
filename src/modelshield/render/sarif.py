"""SARIF 2.1.0 output that GitHub code scanning accepts.

Rules carry descriptions, help and ``security-severity``; results carry a physical location
(the file, relative to the working folder when possible), the member chain as a logical
location, and a stable partial fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from modelshield.rules import get_rule
from modelshield.types import Finding, ScanReport, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/modelshield/modelshield"

_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _uri(path: str) -> str:
    rel = os.path.relpath(path) if not path.startswith("..") else path
    if rel.startswith(".."):
        rel = os.path.abspath(path)
        return "file://" + rel.replace(os.sep, "/")
    return rel.replace(os.sep, "/")


def _rule_descriptor(rule_id: str) -> dict[str, Any]:
    rule = get_rule(rule_id)
    help_text = rule.description + (f"\n\nRemediation: {rule.remediation}" if rule.remediation else "")
    refs = "".join(f"\n- {r}" for r in rule.references)
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": help_text + refs, "markdown": f"**{rule.title}**\n\n{help_text}" + refs},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[rule.severity],
            "tags": ["security", rule.category.value],
            "precision": "high",
            "problem.severity": "error" if rule.severity >= Severity.HIGH else "warning",
        },
    }


def fingerprint(finding: Finding) -> str:
    """A stable hash of what identifies a finding across runs (not its wording or offset)."""
    key = "\x00".join([finding.rule_id, finding.location.path, finding.location.member or "", finding.evidence[:500]])
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    loc = finding.location
    region: dict[str, Any] = {"startLine": 1}
    if loc.offset is not None:
        region["byteOffset"] = loc.offset
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": _uri(loc.path)}, "region": region},
    }
    if loc.member:
        location["logicalLocations"] = [{"fullyQualifiedName": loc.member, "kind": "member"}]
    text = finding.message + (f" [member {loc.member}]" if loc.member else "")
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {"modelshieldFinding/v1": fingerprint(finding)},
        "properties": {
            "severity": finding.severity.label,
            "security-severity": _SECURITY_SEVERITY[finding.severity],
            "category": finding.category.value,
            "evidence": finding.evidence,
            "references": list(finding.references),
            "remediation": finding.remediation,
        },
    }
    return result


def sarif_dict(report: ScanReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log (one run)."""
    rule_ids = sorted({f.rule_id for f in report.findings})
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    artifacts = sorted({a.path for a in report.artifacts})
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelshield",
                        "version": report.tool_version,
                        "semanticVersion": report.tool_version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule_descriptor(r) for r in rule_ids],
                        "properties": {"rulesVersion": report.rules_version},
                    }
                },
                "artifacts": [{"location": {"uri": _uri(p)}} for p in artifacts],
                "results": [_result(f, index[f.rule_id]) for f in report.findings],
                "invocations": [
                    {"executionSuccessful": True, "startTimeUtc": report.started_at.replace("+00:00", "Z")}
                ],
                "properties": {"verdict": report.verdict.value, "failOn": report.fail_on.label},
            }
        ],
    }


def render_sarif(report: ScanReport) -> str:
    """Serialize the report as SARIF 2.1.0 JSON."""
    return json.dumps(sarif_dict(report), indent=2) + "\n"
