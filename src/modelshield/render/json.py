"""The JSON report (schema: modelshield/schemas/report.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from modelshield.types import ScanReport

SCHEMA_VERSION = "1.0"
SCHEMA_ID = "https://modelshield.dev/schemas/report-1.0.json"


def report_dict(report: ScanReport) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    gaps = report.coverage_gaps
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "modelshield", "version": report.tool_version, "rules_version": report.rules_version},
        "targets": list(report.targets),
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 4),
        "fail_on": report.fail_on.label,
        "verdict": report.verdict.value,
        "summary": {
            "findings": report.counts(),
            "files_scanned": report.files_scanned,
            "files_skipped": report.files_skipped,
            "artifacts": len(report.artifacts),
            "bytes": report.bytes_scanned,
        },
        "artifacts": [a.to_dict(report.fail_on) for a in report.artifacts],
        "coverage": {"complete": not gaps, "gaps": [g.to_dict() for g in gaps]},
        "advisories": {"snapshot": report.advisory_snapshot},
        **({"policy": report.policy} if report.policy is not None else {}),
    }


def render_json(report: ScanReport) -> str:
    """Serialize the report as indented JSON."""
    return json.dumps(report_dict(report), indent=2, sort_keys=False) + "\n"


def schema_path() -> str:
    """Path of the published JSON Schema of the report."""
    from importlib.resources import files

    return str(files("modelshield") / "schemas" / "report.schema.json")
