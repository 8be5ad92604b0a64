"""Plain-text report for people (the default output format)."""

from __future__ import annotations

from modelshield.types import Artifact, Finding, ScanReport, Severity, decide

_MARK = {
    Severity.CRITICAL: "CRITICAL",
    Severity.HIGH: "HIGH    ",
    Severity.MEDIUM: "MEDIUM  ",
    Severity.LOW: "LOW     ",
    Severity.INFO: "INFO    ",
}


def _artifact_lines(artifact: Artifact, report: ScanReport, by_file: dict[str, list[Finding]]) -> list[str]:
    if artifact.member is None:
        # A file's verdict covers its members: a clean zip holding a malicious pickle fails.
        verdict, name = decide(by_file[artifact.path], report.fail_on), artifact.path
    else:
        verdict, name = artifact.verdict(report.fail_on), f"  {artifact.path}!/{artifact.member}"
    head = f"{verdict.value.upper():4}  {name}  [{artifact.format}, {artifact.size} bytes]"
    lines = [head]
    if artifact.sha256:
        lines.append(f"      sha256 {artifact.sha256}")
    for f in sorted(artifact.findings, key=lambda f: -f.severity):
        where = f" @ byte {f.location.offset}" if f.location.offset is not None else ""
        lines.append(f"      {_MARK[f.severity]} {f.rule_id}: {f.message}{where}")
        if f.evidence:
            lines.append(f"               evidence: {f.evidence[:300]}")
        if f.references:
            lines.append(f"               refs: {', '.join(f.references)}")
    return lines


def render_text(report: ScanReport, show_clean: bool = True) -> str:
    """The whole report as text: one block per artifact, then the summary."""
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for artifact in report.artifacts:
        by_file.setdefault(artifact.path, []).extend(artifact.findings)
    for artifact in report.artifacts:
        if show_clean or artifact.findings:
            lines.extend(_artifact_lines(artifact, report, by_file))
    lines.append("")
    if report.advisory_snapshot:
        lines.append(f"advisory data: snapshot {report.advisory_snapshot}")
    if report.policy is not None:
        failed = ", ".join(report.policy.get("failed", [])) or "none"
        lines.append(
            f"policy: {str(report.policy.get('decision')).upper()} under profile {report.policy.get('profile')!r} "
            f"(failed: {failed})"
        )
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def summary_line(report: ScanReport) -> str:
    """One-line summary: verdict, counts, files."""
    counts = report.counts()
    shown = ", ".join(f"{n} {sev}" for sev, n in reversed(counts.items()) if n) or "no findings"
    gaps = len(report.coverage_gaps)
    cov = f"; {gaps} coverage gap(s)" if gaps else ""
    return (
        f"verdict: {report.verdict.value.upper()} ({shown}{cov}) - {report.files_scanned} file(s), "
        f"{len(report.artifacts)} artifact(s), {report.bytes_scanned} bytes in {report.duration_s:.2f} s "
        f"[fail-on {report.fail_on.label}]"
    )
