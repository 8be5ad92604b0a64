"""The HTML report: one self-contained page (inline CSS, no script, nothing fetched) for people.

Rendered from our own Jinja2 templates (``render/templates/``) with autoescaping on for every
template, so model-controlled strings (file names, GGUF metadata, chat templates, evidence) are
always text, never markup. Nothing of the model is ever rendered *as* a template: it is only
passed in as data.

The page has a verdict banner, a per-file table with the Safe / Suspicious / Unsafe indicator,
the findings grouped by severity with evidence and remediation, the coverage gaps, CVE relevance
(findings that reference advisories), the policy decision when a policy ran, and the attestation
status when a signed attestation sidecar sits beside a target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from modelshield.types import Artifact, Category, Finding, ScanReport, Severity, VerdictKind, decide

#: The indicator a person sees for a file's verdict (the catalog UI uses the same words).
INDICATORS = {VerdictKind.PASS: "Safe", VerdictKind.WARN: "Suspicious", VerdictKind.FAIL: "Unsafe"}
_ADVISORY = re.compile(r"^(CVE-\d{4}-\d{4,}|GHSA(-[0-9a-z]{4}){3}|PYSEC-\d{4}-\d+)$")
#: Evidence longer than this is cut (with a note): a page, not a dump.
EVIDENCE_CHARS = 4000


@dataclass(frozen=True, slots=True)
class FileRow:
    """One top-level file of the per-file table."""

    name: str
    path: str
    format: str
    size: int
    sha256: str | None
    indicator: str
    verdict: str
    members: int
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class FindingView:
    """One finding as shown on the page."""

    rule_id: str
    severity: str
    category: str
    message: str
    location: str
    evidence: str
    evidence_cut: bool
    references: tuple[tuple[str, str | None], ...]
    remediation: str
    source: str


@dataclass(frozen=True, slots=True)
class AdvisoryView:
    """A finding that references an advisory (CVE relevance)."""

    ids: tuple[tuple[str, str | None], ...]
    severity: str
    rule_id: str
    file: str
    message: str


@dataclass(frozen=True, slots=True)
class AttestationView:
    """What the attestation sidecar beside a target says (its signature is not checked here)."""

    target: str
    present: bool
    sidecar: str
    verdict: str = ""
    scanned_at: str = ""
    expires_at: str = ""
    signer: str = ""
    matches_scan: bool | None = None
    problem: str = ""


@dataclass(slots=True)
class _Groups:
    by_severity: dict[str, list[FindingView]] = field(default_factory=dict)
    advisories: list[AdvisoryView] = field(default_factory=list)


def render_html(report: ScanReport) -> str:
    """The report as one self-contained HTML page."""
    from modelshield.render.cyclonedx import ReportExtraMissing

    try:
        from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    except ImportError:
        raise ReportExtraMissing("--format html needs jinja2", hint="pip install 'modelshield[report]'") from None
    env = Environment(
        loader=PackageLoader("modelshield.render", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html").render(**page_context(report))


def page_context(report: ScanReport) -> dict[str, Any]:
    """Everything the template shows, as plain values."""
    from modelshield.render.text import summary_line

    groups = _group_findings(report)
    return {
        "verdict": report.verdict.value,
        "summary": summary_line(report),
        "counts": report.counts(),
        "tool_version": report.tool_version,
        "rules_version": report.rules_version,
        "advisory_snapshot": report.advisory_snapshot,
        "targets": list(report.targets),
        "started_at": report.started_at,
        "duration_s": report.duration_s,
        "fail_on": report.fail_on.label,
        "files": _file_rows(report),
        "severities": [s.label for s in sorted(Severity, reverse=True)],
        "findings": groups.by_severity,
        "advisories": groups.advisories,
        "gaps": [
            {"where": g.path if g.member is None else f"{g.path}!/{g.member}", "rule_id": g.rule_id, "reason": g.reason}
            for g in report.coverage_gaps
        ],
        "policy": report.policy,
        "attestations": [attestation_status(target, report) for target in report.targets],
        "errors": list(report.errors),
    }


def _file_rows(report: ScanReport) -> list[FileRow]:
    from modelshield.render.cyclonedx import display_name

    by_file: dict[str, list[Artifact]] = {}
    for artifact in report.artifacts:
        by_file.setdefault(artifact.path, []).append(artifact)
    rows = []
    for path, artifacts in by_file.items():
        top = next((a for a in artifacts if a.member is None), artifacts[0])
        findings = [f for a in artifacts for f in a.findings]
        verdict = decide(findings, report.fail_on)
        counts = {s.label: 0 for s in Severity}
        for finding in findings:
            counts[finding.severity.label] += 1
        rows.append(
            FileRow(
                name=display_name(path, report.targets),
                path=path,
                format=top.format,
                size=top.size,
                sha256=top.sha256,
                indicator=INDICATORS[verdict],
                verdict=verdict.value,
                members=sum(1 for a in artifacts if a.member is not None),
                counts=counts,
            )
        )
    return rows


def _group_findings(report: ScanReport) -> _Groups:
    groups = _Groups({s.label: [] for s in sorted(Severity, reverse=True)})
    for finding in report.findings:
        view = _finding_view(finding)
        groups.by_severity[finding.severity.label].append(view)
        ids = tuple(r for r in view.references if _ADVISORY.match(r[0]))
        if ids and finding.category is not Category.COVERAGE:
            groups.advisories.append(
                AdvisoryView(ids, finding.severity.label, finding.rule_id, finding.location.display(), finding.message)
            )
    for views in groups.by_severity.values():
        views.sort(key=lambda v: (v.rule_id, v.location))
    groups.advisories.sort(key=lambda a: (-Severity.parse(a.severity), a.ids[0][0], a.file))
    return groups


def _finding_view(finding: Finding) -> FindingView:
    evidence = finding.evidence
    cut = len(evidence) > EVIDENCE_CHARS
    return FindingView(
        rule_id=finding.rule_id,
        severity=finding.severity.label,
        category=finding.category.value,
        message=finding.message,
        location=finding.location.display(),
        evidence=evidence[:EVIDENCE_CHARS] if cut else evidence,
        evidence_cut=cut,
        references=tuple((ref, advisory_url(ref)) for ref in finding.references),
        remediation=finding.remediation,
        source=finding.source,
    )


def advisory_url(ref: str) -> str | None:
    """A public page for an advisory or weakness id we recognise exactly, else None (shown as text)."""
    if re.fullmatch(r"CVE-\d{4}-\d{4,}", ref):
        return f"https://nvd.nist.gov/vuln/detail/{ref}"
    if re.fullmatch(r"GHSA(-[0-9a-z]{4}){3}", ref):
        return f"https://github.com/advisories/{ref}"
    if re.fullmatch(r"PYSEC-\d{4}-\d+", ref):
        return f"https://osv.dev/vulnerability/{ref}"
    if match := re.fullmatch(r"CWE-(\d+)", ref):
        return f"https://cwe.mitre.org/data/definitions/{match.group(1)}.html"
    return None


def attestation_status(target: str, report: ScanReport) -> AttestationView:
    """Read the attestation sidecar of ``target``, if any; compare its subjects with the scanned digests.

    The signature is not verified here (that needs the verifier's trust store: ``modelshield verify``).
    """
    from modelshield.attest.manifest import sidecar_path

    path = sidecar_path(target)
    if not os.path.isfile(path):
        return AttestationView(target, False, str(path))
    import modelshield.attest.dsse as dsse
    from modelshield.attest.intoto import StatementError, parse_statement

    try:
        envelope = dsse.parse(path.read_bytes(), str(path))
        statement = parse_statement(envelope.payload)
    except OSError as exc:
        return AttestationView(target, True, str(path), problem=f"cannot read it: {exc.strerror}")
    except (dsse.EnvelopeError, StatementError) as exc:
        return AttestationView(target, True, str(path), problem=f"not a modelshield attestation: {exc.message}")
    scanned = {a.sha256 for a in report.artifacts if a.member is None and a.sha256}
    matches = set(statement.subjects.values()) <= scanned if scanned else None
    raw = statement.predicate.raw
    return AttestationView(
        target,
        True,
        str(path),
        verdict=statement.predicate.verdict,
        scanned_at=str(raw.get("scannedAt", "")),
        expires_at=str(raw.get("expiresAt", "")),
        signer=envelope.signatures[0].keyid,
        matches_scan=matches,
    )
