"""What ``modelshield detonate`` runs and prints (kept here so the CLI module stays import-light)."""

from __future__ import annotations

import json
import os

from modelshield import __version__
from modelshield.sandbox.dynamic import detonate_all
from modelshield.sandbox.findings import event_summary
from modelshield.sandbox.plan import Plan, plans_for
from modelshield.sandbox.rlimits import SandboxLimits
from modelshield.sandbox.runner import Detonation
from modelshield.types import Severity, blocks


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(path) for name in names)
    return [path]


def run_detonations(
    path: str, timeout: float, memory_mb: int, backend: str, jobs: int
) -> tuple[list[Detonation], str, bool]:
    """Detonate every loadable file under ``path``: results, a one-line summary, whether it fails."""
    from modelshield.errors import SourceError

    if not os.path.exists(path):
        raise SourceError(f"no such file or folder: {path}", hint="give the path of a model file or folder")
    plans: list[Plan] = [p for file in _files(path) for p in plans_for(file)]
    limits = SandboxLimits(wall_s=timeout, memory_mb=memory_mb)
    results = detonate_all(plans, limits=limits, jobs=jobs, backend=backend)
    findings = [f for r in results for f in r.findings()]
    summary = f"detonated {len(results)} load(s): {len(findings)} dynamic finding(s)"
    return results, summary, blocks(findings, Severity.MEDIUM)


def render_detonations(results: list[Detonation], fmt: str) -> str:
    """The full event log as JSON, or a readable text log."""
    if fmt == "json":
        data = {
            "tool": {"name": "modelshield", "version": __version__},
            "detonations": [{**r.to_dict(), "findings": [f.to_dict() for f in r.findings()]} for r in results],
        }
        return json.dumps(data, indent=2) + "\n"
    lines: list[str] = []
    for result in results:
        lines.append(
            f"== {result.path} [{result.loader}] via {result.backend}: {result.outcome} ({result.duration_s:.2f} s)"
        )
        lines.extend(f"   {event_summary(record)}" for record in result.records)
        lines.extend(f"   ! channel: {problem}" for problem in result.problems)
        for finding in result.findings():
            lines.append(f"   -> {finding.severity.label.upper():8} {finding.rule_id}: {finding.message}")
    return "\n".join(lines) + "\n"
