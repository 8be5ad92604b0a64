"""Probe reports as text, JSON, SARIF 2.1.0 or a self-contained HTML page (every value escaped)."""

from __future__ import annotations

import html
import json
from typing import Any

from modelshield.probe.report import ProbeReport

FORMATS = ("text", "json", "sarif", "html")
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "7.5", "medium": "5.0", "low": "3.0", "info": "0.0"}


def render(report: ProbeReport, fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        return report.to_json()
    if fmt == "sarif":
        return json.dumps(sarif(report), indent=2) + "\n"
    if fmt == "html":
        return page(report)
    return text(report)


def summary_line(report: ProbeReport) -> str:
    """One line for stderr."""
    hits = sum(f.rate.hits for f in report.families)
    trials = sum(f.rate.trials for f in report.families)
    state = "complete" if report.complete else "INCOMPLETE"
    return (
        f"probe {report.endpoint} ({report.model or 'model unknown'}): {report.verdict.upper()} "
        f"[profile {report.decision.profile}] {hits}/{trials} attacks succeeded, {len(report.findings)} findings, "
        f"coverage {state}, {report.duration_s:.1f} s"
    )


def text(report: ProbeReport) -> str:
    """The human report."""
    lines = [f"modelshield probe: {report.endpoint}  model: {report.model or '?'}"]
    lines.append(f"pack {report.pack.get('name')} v{report.pack.get('version')}, {report.pack.get('probes')} probes")
    lines.append("")
    lines.append(f"{'family':24} {'success':>9} {'rate':>6}  95% CI")
    for family in report.families:
        rate = family.rate
        extra = f"  ({family.not_run} not run)" if family.not_run else ""
        lines.append(
            f"{family.family:24} {rate.hits:>4}/{rate.trials:<4} {rate.value:>6.0%}  "
            f"[{rate.low:.0%}, {rate.high:.0%}]{extra}"
        )
    lines.append("")
    if report.drift is not None:
        state = "DRIFT: " + "; ".join(report.drift["reasons"]) if report.drift["drift"] else "no drift"
        lines.append(f"identity: {state}")
    for finding in report.findings:
        lines.append(f"  {finding.severity:8} {finding.rule_id:30} {finding.message}")
        if finding.evidence:
            lines.append(f"  {'':8} {'':30} evidence: {finding.evidence}")
    lines.append("")
    lines.append(f"verdict: {report.verdict} (profile {report.decision.profile})")
    lines += [f"  - {reason}" for reason in report.decision.reasons]
    return "\n".join(lines) + "\n"


def sarif(report: ProbeReport) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per rule id, one result per finding, located at the endpoint URL."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for finding in report.findings:
        rules.setdefault(
            finding.rule_id,
            {
                "id": finding.rule_id,
                "shortDescription": {"text": finding.rule_id.replace("PROBE-", "").replace("-", " ").lower()},
                "properties": {
                    "security-severity": _SECURITY_SEVERITY[finding.severity],
                    "tags": ["security", finding.category],
                },
            },
        )
        results.append(
            {
                "ruleId": finding.rule_id,
                "level": _SARIF_LEVEL[finding.severity],
                "message": {"text": finding.message + (f" ({finding.evidence})" if finding.evidence else "")},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": report.endpoint}}}],
                "partialFingerprints": {"probe/v1": f"{finding.rule_id}:{finding.probe_id or finding.family or ''}"},
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelshield-probe",
                        "version": report.tool_version,
                        "informationUri": "https://modelshield.dev",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "properties": {"verdict": report.verdict, "profile": report.decision.profile},
            }
        ],
    }


def page(report: ProbeReport) -> str:
    """A self-contained HTML page; answers and evidence are escaped, never interpreted."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(f.family)}</td><td>{f.rate.hits}/{f.rate.trials}</td><td>{f.rate.value:.0%}</td>"
        f"<td>{f.rate.low:.0%} &ndash; {f.rate.high:.0%}</td></tr>"
        for f in report.families
    )
    findings = "".join(
        f"<tr class='{e(f.severity)}'><td>{e(f.severity)}</td><td><code>{e(f.rule_id)}</code></td>"
        f"<td>{e(f.message)}</td><td>{e(f.evidence)}</td></tr>"
        for f in report.findings
    )
    trials = "".join(
        f"<tr><td><code>{e(t.probe_id)}</code></td><td>{t.repeat}</td>"
        f"<td>{'HIT' if t.hit else 'ok' if t.ran else 'not run'}</td>"
        f"<td><pre>{e(t.answer[:400] or (t.error or ''))}</pre></td></tr>"
        for t in report.trials
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in report.decision.reasons)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>modelshield probe: {e(report.endpoint)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}"
        "pre{white-space:pre-wrap;margin:0}"
        ".critical,.high{background:#fde2e2}.medium{background:#fff4d6}.verdict{font-size:1.4rem;font-weight:bold}"
        "</style></head><body>"
        f"<h1>Endpoint probe</h1><p><code>{e(report.endpoint)}</code> model <code>{e(report.model or '?')}</code>, "
        f"pack {e(str(report.pack.get('name')))} v{e(str(report.pack.get('version')))}, {e(report.started_at)}</p>"
        f"<p class='verdict'>verdict: {e(report.verdict)} (profile {e(report.decision.profile)})</p><ul>{reasons}</ul>"
        "<h2>Attack success per family</h2><table><tr><th>family</th><th>hits</th><th>rate</th><th>95% CI</th></tr>"
        f"{rows}</table><h2>Findings</h2><table><tr><th>severity</th><th>rule</th><th>message</th><th>evidence</th></tr>"
        f"{findings}</table><h2>Trials</h2><table><tr><th>probe</th><th>repeat</th><th>result</th><th>answer</th></tr>"
        f"{trials}</table></body></html>\n"
    )
