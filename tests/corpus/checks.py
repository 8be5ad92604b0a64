"""Assertions shared by tests/test_corpus.py and tests/bypasses/: proven real, blocked, canary untouched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.corpus.model import Sample
from tests.corpus.proof import Proof

from modelshield.scan import scan
from modelshield.types import Category, ScanReport, Severity


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


def bypass_tests(bypass: str) -> tuple[Callable[..., None], Callable[..., None]]:
    """Two parametrized tests for the samples of one public bypass family (see tests/bypasses/README.md).

    ``test_real_loader_runs_it``: each provable sample fires under its real loader (throwaway subprocess).
    ``test_scanner_blocks_it``: the scanner blocks each sample and executes nothing (strict xfail for known misses).
    """
    import pytest
    from tests.corpus.known_misses import NOT_BLOCKED
    from tests.corpus.model import all_specs

    specs = [s for s in all_specs() if s.bypass == bypass]
    assert specs, f"no corpus sample reproduces bypass {bypass!r}"
    firing = [s.name for s in specs if s.fires]
    blocked = [
        pytest.param(s.name, marks=pytest.mark.xfail(strict=True, reason=NOT_BLOCKED[s.name]))
        if s.name in NOT_BLOCKED
        else s.name
        for s in specs
    ]

    @pytest.mark.parametrize("name", firing)
    def test_real_loader_runs_it(name: str, corpus: dict[str, Sample], corpus_proofs: dict[str, Proof]) -> None:
        assert_proven(corpus[name], corpus_proofs)

    @pytest.mark.parametrize("name", blocked)
    def test_scanner_blocks_it(name: str, corpus: dict[str, Sample], corpus_scans: ScanCache) -> None:
        assert_blocked(corpus[name], corpus_scans)

    test_real_loader_runs_it.__doc__ = f"Bypass {bypass}: the technique is real (the real loader runs the payload)."
    test_scanner_blocks_it.__doc__ = f"Bypass {bypass}: the scanner blocks it without executing it."
    return test_real_loader_runs_it, test_scanner_blocks_it
