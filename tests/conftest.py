"""Shared session fixtures. The red-team corpus is generated once per session into a temp dir (tests/corpus/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so ``tests.corpus`` imports whatever the rootdir/import mode

from tests.corpus.checks import ScanCache  # noqa: E402
from tests.corpus.model import Sample  # noqa: E402
from tests.corpus.proof import Proof  # noqa: E402


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the generated corpus (malicious/, benign/, canaries/, aux/)."""
    return tmp_path_factory.mktemp("redteam-corpus")


@pytest.fixture(scope="session")
def corpus(corpus_root: Path) -> dict[str, Sample]:
    """Every malicious sample, built once per session, by name."""
    from tests.corpus.model import build_corpus

    return {s.name: s for s in build_corpus(corpus_root)}


@pytest.fixture(scope="session")
def corpus_proofs(corpus: dict[str, Sample]) -> dict[str, Proof]:
    """Each firing sample really loaded in throwaway subprocesses (canaries cleared afterwards)."""
    from tests.corpus.proof import run_proofs

    return run_proofs(list(corpus.values()))


@pytest.fixture(scope="session")
def corpus_scans() -> ScanCache:
    """Scan reports of corpus files, computed on first use (the scanner never executes content)."""
    return ScanCache()


@pytest.fixture(scope="session")
def benign_corpus(corpus_root: Path) -> dict[str, Path]:
    """Benign real-library model files, built once per session, by file name."""
    from tests.corpus.benign import build_benign

    return {p.name: p for p in build_benign(corpus_root)}
