"""The vulnerability stage: turn what a model needs (and the environment) into CVE findings.

Runs after the scan over the report's files. Severity follows relevance:

* **critical**: the artifact carries the pattern the CVE needs (or a static detection names the
  CVE) and the loader installed in the environment is in the vulnerable range;
* **high**: a vulnerable loader is installed for a format present (advisory relevant to model
  loading), or the pattern is present and the version the model was made with is vulnerable
  while the installed loader is unknown;
* **low**: a model-loading advisory affects a version the model was made with or requires;
* **info**: advisories not relevant to loading models that affect a needed version (one finding
  per package and version), and exploit patterns whose loader version is unknown.

A fixed version produces no finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from modelshield._record import record, replace
from modelshield.advisories.db import Advisory, AdvisoryDB, load_db
from modelshield.advisories.matcher import Match, Matcher
from modelshield.advisories.requirements import ModelFacts, extract
from modelshield.rules import rule
from modelshield.types import Artifact, Category, Finding, Location, ScanReport, Severity

if TYPE_CHECKING:  # importlib.metadata is only needed with --env
    from modelshield.advisories.environment import Environment

EXPLOITABLE = rule(
    "VULN-EXPLOITABLE",
    "Exploit pattern present and the installed loader is vulnerable",
    Severity.CRITICAL,
    Category.VULNERABILITY,
    "The model carries the pattern a known CVE needs and the loader installed in this environment is in the "
    "vulnerable range: loading it here can trigger the vulnerability.",
    "Upgrade the loader to the fixed version before loading this model, or do not load it.",
)
VULNERABLE_LOADER = rule(
    "VULN-LOADER",
    "Vulnerable loader for a format present",
    Severity.HIGH,
    Category.VULNERABILITY,
    "A loader of a format in this model has a known model-loading vulnerability in the installed (or recorded) "
    "version.",
    "Upgrade the loader to the fixed version.",
)
REQUIREMENT = rule(
    "VULN-REQUIREMENT",
    "Known vulnerability in a version the model was made with or requires",
    Severity.LOW,
    Category.VULNERABILITY,
    "The model records or pins a package version with a model-loading advisory; consumers that install that "
    "version are exposed.",
    "Load the model with the fixed version; update pinned requirements.",
)
NOT_RELEVANT = rule(
    "VULN-INFO",
    "Advisories that do not concern model loading",
    Severity.INFO,
    Category.VULNERABILITY,
    "Advisories affect a needed package version but are not reached by loading a model.",
)
PATTERN_ONLY = rule(
    "VULN-PATTERN",
    "Exploit pattern present; loader version unknown",
    Severity.INFO,
    Category.VULNERABILITY,
    "The model carries a pattern a known CVE needs; it is safe only with a fixed loader version. Scan with --env "
    "to check the installed loader.",
)

#: The artifact pattern each CVE needs to be exploitable (from the advisories' descriptions).
CVE_PATTERNS: dict[str, frozenset[str]] = {
    "CVE-2024-34359": frozenset({"gguf-chat-template"}),
    "CVE-2025-32434": frozenset({"torch-pickle"}),
    "CVE-2026-24747": frozenset({"torch-pickle"}),
    "CVE-2024-3660": frozenset({"keras-lambda"}),
    "CVE-2026-12481": frozenset({"keras-lambda"}),
    "CVE-2025-1550": frozenset({"keras-module-ref"}),
    "CVE-2025-8747": frozenset({"keras-module-ref"}),
    "CVE-2025-9906": frozenset({"keras-unsafe-deserialization"}),
    "CVE-2025-9905": frozenset({"keras-h5-lambda"}),
    "CVE-2025-49655": frozenset({"keras-torch-wrapper"}),
    "CVE-2026-12484": frozenset({"keras-torch-wrapper"}),
    "CVE-2025-12058": frozenset({"keras-lookup-file"}),
    "CVE-2026-9856": frozenset({"chat-template-dict"}),
    "CVE-2020-13092": frozenset({"sklearn-pickle"}),
    "CVE-2024-34997": frozenset({"joblib-pickle"}),
    "CVE-2019-6446": frozenset({"npy-object"}),
    **{
        cve: frozenset({"onnx-external-data"})
        for cve in ("CVE-2022-25882", "CVE-2024-27318", "CVE-2026-34447", "CVE-2026-27489", "CVE-2026-34446")
    },
}


@record
class Assessment:
    """The report with CVE findings added, and what was learned about the model."""

    report: ScanReport
    facts: tuple[ModelFacts, ...]
    environment: Environment | None
    snapshot: str


def pattern_present(adv: Advisory, facts: ModelFacts, detected: frozenset[str]) -> str:
    """The pattern (or static detection) that makes ``adv`` exploitable for this file, or ""."""
    for cve in adv.references:
        if cve in detected:
            return f"static detection references {cve}"
        needed = CVE_PATTERNS.get(cve)
        if needed and needed & facts.patterns:
            return ", ".join(sorted(needed & facts.patterns))
    return ""


def _location(facts: ModelFacts) -> Location:
    return Location(facts.path, None, None, None, facts.kind)


def _fix_text(match: Match) -> str:
    return f"fixed in {match.package} {match.fixed_in}" if match.fixed_in else "no fixed version known"


def _finding(rule_id: str, severity: Severity, facts: ModelFacts, match: Match, why: str, where: str) -> Finding:
    adv = match.advisory
    return Finding(
        rule_id=rule_id,
        severity=severity,
        category=Category.VULNERABILITY,
        message=f"{adv.display_id}: {match.package} {match.version} ({where}) is affected: {adv.summary}",
        location=_location(facts),
        evidence=f"{why}; {_fix_text(match)}; advisory {adv.id}{' ' + adv.url if adv.url else ''}",
        references=adv.references,
        remediation=f"Use {match.package} >= {match.fixed_in}." if match.fixed_in else "No fix is known; avoid it.",
    )


class _Assessor:
    def __init__(self, matcher: Matcher, env: Environment | None, detected: dict[str, frozenset[str]]) -> None:
        self.matcher = matcher
        self.env = env
        self.detected = detected
        #: (package, patterns, detected) -> advisories with their pattern: a folder of 2,000
        #: checkpoints of one kind asks the same question 2,000 times
        self._pattern_cache: dict[tuple[str, frozenset[str], frozenset[str]], tuple[_PatternNote, ...]] = {}

    def _patterns(self, package: str, patterns: frozenset[str], detected: frozenset[str]) -> tuple[_PatternNote, ...]:
        key = (package, patterns, detected)
        found = self._pattern_cache.get(key)
        if found is None:
            found = _advisory_patterns(package, self.matcher.advisories(package), patterns, detected)
            self._pattern_cache[key] = found
        return found

    def assess(self, facts: ModelFacts) -> list[Finding]:
        best: dict[str, Finding] = {}
        irrelevant: dict[tuple[str, str], list[Advisory]] = {}
        detected = self.detected.get(facts.path, frozenset())
        for package, version, where in self._versions(facts):
            for match in self.matcher.affected(package, version):
                adv = match.advisory
                if not adv.relevant:
                    irrelevant.setdefault((package, version), []).append(adv)
                    continue
                found = self._judge(facts, match, where, pattern_present(adv, facts, detected))
                old = best.get(adv.id)
                if old is None or found.severity > old.severity:
                    best[adv.id] = found
        out = list(best.values())
        out.extend(self._pattern_only(facts, detected, best))
        for (package, version), advs in irrelevant.items():
            ids = ", ".join(a.display_id for a in advs[:20]) + (" ..." if len(advs) > 20 else "")
            out.append(
                Finding(
                    NOT_RELEVANT.id,
                    Severity.INFO,
                    Category.VULNERABILITY,
                    f"{len(advs)} advisories not reached by model loading affect {package} {version}",
                    _location(facts),
                    evidence=ids,
                    references=tuple(a.display_id for a in advs[:50]),
                )
            )
        return out

    def _versions(self, facts: ModelFacts) -> list[tuple[str, str, str]]:
        """(package, version, where) to check: installed loaders first, then recorded versions."""
        out: list[tuple[str, str, str]] = []
        for need in facts.needs:
            loads_it = need.how in ("loader", "requires")  # made-with alone does not say what loads the file
            installed = self.env.version(need.package) if self.env and loads_it else None
            if installed and (need.package, installed, "installed") not in out:
                out.append((need.package, installed, "installed"))
            if need.version and (need.package, need.version, need.how) not in out:
                out.append((need.package, need.version, need.how))
        return out

    def _judge(self, facts: ModelFacts, match: Match, where: str, pattern: str) -> Finding:
        if where == "installed" and pattern:
            return _finding(EXPLOITABLE.id, Severity.CRITICAL, facts, match, f"pattern present: {pattern}", where)
        if where == "installed":
            return _finding(
                VULNERABLE_LOADER.id, Severity.HIGH, facts, match, f"loader for {facts.kind} installed", where
            )
        if pattern:
            why = f"pattern present: {pattern}; installed loader unknown"
            return _finding(VULNERABLE_LOADER.id, Severity.HIGH, facts, match, why, where)
        return _finding(REQUIREMENT.id, Severity.LOW, facts, match, "no exploit pattern found in the file", where)

    def _pattern_only(self, facts: ModelFacts, detected: frozenset[str], done: dict[str, Finding]) -> list[Finding]:
        """INFO notes for patterns whose loader version is unknown (nothing installed or recorded)."""
        out = []
        checked = {p for p, _v, _w in self._versions(facts)}
        for package in sorted({n.package for n in facts.needs} - checked):
            for adv, message, evidence, references in self._patterns(package, frozenset(facts.patterns), detected):
                if adv.id not in done:
                    out.append(
                        Finding(
                            PATTERN_ONLY.id,
                            Severity.INFO,
                            Category.VULNERABILITY,
                            message,
                            _location(facts),
                            evidence=evidence,
                            references=references,
                        )
                    )
        return out


#: A pattern-only note's parts: advisory, message, evidence, references (the location varies).
_PatternNote = tuple[Advisory, str, str, tuple[str, ...]]


def _advisory_patterns(
    package: str, advisories: tuple[Advisory, ...], patterns: frozenset[str], detected: frozenset[str]
) -> tuple[_PatternNote, ...]:
    """The notes for the fixed advisories of ``package`` whose exploit pattern is present."""
    probe = ModelFacts("", "", patterns=set(patterns))
    out = []
    for adv in advisories:
        if adv.withdrawn or not adv.fixed_versions:
            continue
        pattern = pattern_present(adv, probe, detected)
        if pattern:
            message = (
                f"{adv.display_id}: {pattern} present; safe only with {package} >= "
                f"{max(adv.fixed_versions)}: {adv.summary}"
            )
            out.append((adv, message, f"advisory {adv.id}; loader version unknown", adv.references))
    return tuple(out)


def _detected_cves(report: ScanReport) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.category is not Category.VULNERABILITY:
            cves = {r for r in finding.references if r.startswith(("CVE-", "GHSA-", "PYSEC-"))}
            if cves:
                out.setdefault(finding.location.path, set()).update(cves)
    return {k: frozenset(v) for k, v in out.items()}


def _facts(report: ScanReport) -> Iterable[ModelFacts]:
    """Facts gathered during the scan; read now for top-level files that carry none."""
    seen: set[str] = set()
    missing: list[str] = []
    hints: dict[str, str] = {}
    for artifact in report.artifacts:
        if artifact.member is not None or artifact.path in seen:
            continue
        seen.add(artifact.path)
        if artifact.facts is None:
            missing.append(artifact.path)
            hints[artifact.path] = artifact.format
        else:
            yield from artifact.facts
    yield from extract(missing, hints)


def assess(report: ScanReport, environment: Environment | None = None, db: AdvisoryDB | None = None) -> Assessment:
    """Add CVE findings to ``report`` (a new report; the input is frozen) and record the snapshot."""
    db = db or load_db()
    facts = tuple(_facts(report))
    detected = _detected_cves(report)
    assessor = _Assessor(Matcher(db), environment, detected)
    by_path: dict[str, list[ModelFacts]] = {}
    for item in facts:
        by_path.setdefault(item.path, []).append(item)
    notes = _Notes()
    #: files alike (same kind, needs, patterns and static CVE detections) get the same findings
    #: but their location: a folder of 2,000 checkpoints of one kind is assessed once
    alike: dict[tuple[object, ...], list[Finding]] = {}
    added: dict[str, list[Finding]] = {}
    for path, items in by_path.items():
        kept = added[path] = []
        for item in items:
            key = (item.kind, tuple(item.needs), frozenset(item.patterns), detected.get(path))
            found = alike.get(key)
            fresh = found is None
            if found is None:
                found = alike[key] = assessor.assess(item)
            for finding in found:
                if not notes.first(finding, path, len(kept)):
                    continue
                kept.append(finding if fresh else replace(finding, location=_location(item)))
    notes.add_counts(added)
    artifacts = tuple(_with_findings(a, added.pop(a.path, []) if a.member is None else []) for a in report.artifacts)
    new = replace(report, artifacts=artifacts, advisory_snapshot=db.snapshot)
    return Assessment(new, facts, environment, db.snapshot)


#: Informational notes that read the same for every file of a kind (a folder of 2,000 torch files
#: would otherwise carry 2,000 copies): reported once, on the first file, with the count.
_NOTE_RULES = frozenset({PATTERN_ONLY.id, NOT_RELEVANT.id})


class _Notes:
    """Keeps the first of each informational note (same rule and message) and counts the rest."""

    def __init__(self) -> None:
        self.where: dict[tuple[str, str], tuple[str, int]] = {}
        self.repeats: dict[tuple[str, str], int] = {}

    def first(self, finding: Finding, path: str, index: int) -> bool:
        """True when ``finding`` is to be kept (at ``index`` in ``path``'s list); repeats are counted."""
        if finding.rule_id not in _NOTE_RULES or finding.severity is not Severity.INFO:
            return True
        key = (finding.rule_id, finding.message)
        if key in self.where:
            self.repeats[key] = self.repeats.get(key, 0) + 1
            return False
        self.where[key] = (path, index)
        return True

    def add_counts(self, added: dict[str, list[Finding]]) -> None:
        """Say on each kept note how many other files it applies to."""
        for key, count in self.repeats.items():
            path, index = self.where[key]
            note = added[path][index]
            evidence = f"{note.evidence}; the same applies to {count} other scanned file(s)"
            added[path][index] = replace(note, evidence=evidence)


def _with_findings(artifact: Artifact, findings: Iterable[Finding]) -> Artifact:
    extra = tuple(findings)
    return replace(artifact, findings=artifact.findings + extra) if extra else artifact
