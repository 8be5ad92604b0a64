"""The JSON report (schema: modelshield/schemas/report.schema.json)."""

from __future__ import annotations

import json
import os
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
    """Serialize the report as indented JSON; artifacts without findings take one line each.

    Indented output goes through the json module's pure-Python encoder, ~5x slower than its C
    encoder; on a folder of thousands of files that cost more than a third of the scan. So clean
    artifacts are encoded compactly (C encoder), one per line, and only the rest is indented.
    """
    data = report_dict(report)
    artifacts = data["artifacts"]
    marker = f"@artifacts-{os.urandom(8).hex()}@"  # cannot occur in the rest of the report
    data["artifacts"] = [marker] if artifacts else []
    text = json.dumps(data, indent=2)
    if artifacts:
        lines = ",\n    ".join(
            json.dumps(a, indent=2).replace("\n", "\n    ") if a["findings"] else json.dumps(a) for a in artifacts
        )
        text = text.replace(f'"{marker}"', lines, 1)
    return text + "\n"


def schema_path() -> str:
    """Path of the published JSON Schema of the report."""
    from importlib.resources import files

    return str(files("modelshield") / "schemas" / "report.schema.json")
