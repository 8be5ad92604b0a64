"""Assertions shared by tests/test_corpus.py and tests/bypasses/: proven real, blocked, canary untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelshield.scan import scan
from modelshield.types import Category, ScanReport, Severity
from tests.corpus.model import Sample
from tests.corpus.proof import Proof


class ScanCache:
    """Scan each path once per session."""

    def __init__(self) -> None:
        self._reports: dict[Path, ScanReport] = {}

    def __call__(self, path: Path) -> ScanReport:
        """The report for ``path`` (scanned on first use)."""
        if path not in self._reports:
            self._reports[path] = scan(str(path))
        return self._reports[path]


def describe(report: ScanReport) -> str:
    """Findings in one line each, for assertion messages."""
    return "\n".join(f"  {f.severity.label} {f.rule_id} {f.location.display()}: {f.message}" for f in report.findings)


def assert_proven(sample: Sample, proofs: dict[str, Proof]) -> None:
    """The real loader ran the payload (the canary appeared in the throwaway subprocess)."""
    proof = proofs[sample.name]
    assert proof.fired, f"{sample.name}: real loader {sample.spec.loader!r} did not fire ({proof.outcome})"


def assert_blocked(sample: Sample, scans: ScanCache) -> ScanReport:
    """The scanner blocks the sample (CLI exit 1 equivalent) and executing nothing left the canary absent."""
    report = scans(sample.path)
    assert not sample.canary_fired(), f"{sample.name}: canary exists after scanning: the scanner executed content"
    assert report.blocking, (
        f"{sample.name} ({sample.spec.family}, {sample.spec.notes}) not blocked:\n{describe(report)}"
    )
    return report


def threat_findings(report: ScanReport) -> list[str]:
    """Rule ids of findings at or above medium that name a threat (not a coverage gap)."""
    return [f.rule_id for f in report.findings if f.severity >= Severity.MEDIUM and f.category is not Category.COVERAGE]


def run_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m modelshield scan PATH`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", str(path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
