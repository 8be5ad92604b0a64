"""The detection bar: a generated corpus of malicious pickle-family samples and benign real models.

For each malicious sample: it is proven real (its real loader, in a throwaway subprocess, creates the canary), and
the scanner blocks it without executing anything (the canary stays absent). Each benign file passes (no finding at
or above medium). See tests/corpus/ for the generators and tests/corpus/known_misses.py for today's gaps.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tests.corpus.benign import benign_files
from tests.corpus.checks import ScanCache, assert_blocked, assert_proven, describe, run_cli, threat_findings
from tests.corpus.known_misses import FALSE_POSITIVES, NOT_BLOCKED, NOT_NAMED
from tests.corpus.model import Sample, all_specs
from tests.corpus.proof import Proof

SPECS = all_specs()
FIRING = [s.name for s in SPECS if s.fires]
#: samples where an unreadable member is the honest outcome, so a coverage finding is enough
COVERAGE_IS_ENOUGH = {s.name for s in SPECS if s.bypass == "zip-flag" and not s.fires}


def _xfail(names: list[str], misses: dict[str, str]) -> list[object]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=misses[n])) if n in misses else n for n in names
    ]


def test_corpus_is_large_and_documented() -> None:
    """More than 100 distinct techniques; each non-firing sample says why it is not provable."""
    assert len(SPECS) > 100
    assert len({s.name for s in SPECS}) == len(SPECS)
    families = Counter(s.family for s in SPECS)
    assert len(families) >= 10, families
    for spec in SPECS:
        assert spec.primitives, spec.name
        if not spec.fires:
            assert spec.notes, f"{spec.name}: a sample that is not proven must say why"


def test_most_samples_are_proven(corpus_proofs: dict[str, Proof]) -> None:
    """At least 100 samples fire under their real loader."""
    assert sum(p.fired for p in corpus_proofs.values()) >= 100


@pytest.mark.parametrize("name", FIRING)
def test_sample_fires_under_real_loader(name: str, corpus: dict[str, Sample], corpus_proofs: dict[str, Proof]) -> None:
    """The sample is real: its loader runs the payload (inside a throwaway subprocess)."""
    assert_proven(corpus[name], corpus_proofs)


@pytest.mark.parametrize("name", _xfail([s.name for s in SPECS], NOT_BLOCKED))
def test_scanner_blocks_sample(name: str, corpus: dict[str, Sample], corpus_scans: ScanCache) -> None:
    """The scanner blocks the sample and does not execute it."""
    assert_blocked(corpus[name], corpus_scans)


@pytest.mark.parametrize(
    "name", _xfail([s.name for s in SPECS if s.name not in COVERAGE_IS_ENOUGH], {**NOT_BLOCKED, **NOT_NAMED})
)
def test_scanner_names_the_threat(name: str, corpus: dict[str, Sample], corpus_scans: ScanCache) -> None:
    """Blocking through a parse error or coverage gap alone is not detection: a finding must name the threat."""
    report = corpus_scans(corpus[name].path)
    assert threat_findings(report), f"{name}: no threat finding at or above medium:\n{describe(report)}"


def _representatives() -> list[str]:
    seen: dict[str, str] = {}
    for spec in SPECS:
        if spec.fires and spec.name not in NOT_BLOCKED:
            seen.setdefault(spec.family, spec.name)
    return sorted(seen.values())


@pytest.mark.parametrize("name", _representatives())
def test_cli_blocks_one_sample_per_family(name: str, corpus: dict[str, Sample]) -> None:
    """``modelshield scan SAMPLE`` exits 1, and the canary stays absent."""
    result = run_cli(corpus[name].path)
    assert not corpus[name].canary_fired()
    assert result.returncode == 1, f"{name}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def test_cli_blocks_the_malicious_folder(corpus: dict[str, Sample], corpus_root: Path) -> None:
    """Scanning the whole malicious folder exits 1 and executes nothing."""
    result = run_cli(corpus_root / "malicious")
    assert result.returncode == 1, result.stderr[-2000:]
    assert not any(s.canary_fired() for s in corpus.values())


BENIGN = list(benign_files())


@pytest.mark.parametrize("name", _xfail(BENIGN, FALSE_POSITIVES))
def test_benign_model_passes(name: str, benign_corpus: dict[str, Path], corpus_scans: ScanCache) -> None:
    """A real, benign model file gets no finding at or above medium."""
    report = corpus_scans(benign_corpus[name])
    assert not report.blocking, f"{name} blocked:\n{describe(report)}"


def test_cli_passes_clean_benign_files(benign_corpus: dict[str, Path]) -> None:
    """``modelshield scan`` exits 0 on every benign file that has no known false positive (one CLI call each)."""
    clean = [p for n, p in sorted(benign_corpus.items()) if n not in FALSE_POSITIVES]
    for path in clean[:: max(1, len(clean) // 6)]:
        result = run_cli(path)
        assert result.returncode == 0, f"{path.name}: exit {result.returncode}\n{result.stdout[-2000:]}"
