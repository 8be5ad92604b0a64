"""Session fixtures: the catalogue from a fresh ``modelshield rules``, and every case built once and scanned fresh."""

from __future__ import annotations

import pytest
from tests.e2e.cases import CASES, EXEMPT
from tests.e2e.children import build_coreml, build_tf_extra
from tests.e2e.model import Resources
from tests.e2e.runner import Batch, catalogue, run_batch
from tests.formats._tf_models import build_tf_models

#: Fresh scanner processes at once (2 cores: most scans are short; one sandbox case sleeps for 60 s).
JOBS = 3

_batches: list[Batch] = []


def _sandbox_missing() -> str:
    """Why no sandbox works here ("" when one does): --dynamic cases are skipped for that reason."""
    from modelshield.sandbox.isolation import SandboxUnavailable, probe

    try:
        probe()
    except SandboxUnavailable as exc:
        return f"no sandbox on this machine: {exc.message}"
    return ""


@pytest.fixture(scope="session")
def e2e_catalogue() -> dict[str, str]:
    """Rule id -> default severity printed by a fresh ``modelshield rules``."""
    return catalogue()


@pytest.fixture(scope="session")
def e2e_batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """Every case of tests/e2e/cases.py built once and scanned, each in its own fresh process."""
    base = tmp_path_factory.getbasetemp()
    resources = Resources(
        {
            "tf_models": lambda: build_tf_models(base / "tf-models"),  # shared with tests/formats (same folder)
            "tf_extra": lambda: build_tf_extra(base / "e2e-tf-extra"),
            "coreml": lambda: build_coreml(base / "e2e-coreml"),
        }
    )
    try:
        batch = run_batch(CASES, tmp_path_factory.mktemp("e2e"), resources, jobs=JOBS, skip=_sandbox_missing())
    finally:
        resources.close()
    _batches.append(batch)
    return batch


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long the fresh-process batch took, its slowest scans, and any exempted rule."""
    for batch in _batches:
        slowest = sorted(batch.outcomes.values(), key=lambda o: -o.seconds)
        others = max((batch.done_after(o) for o in slowest[1:]), default=0.0)
        terminalreporter.write_line(
            f"e2e: {len(batch.outcomes)} fresh-process scans in {batch.wall_s:.1f} s wall, fixtures built meanwhile; "
            f"all but the slowest done after {others:.1f} s "
            f"(slowest: {', '.join(f'{o.case.name} {o.seconds:.1f} s' for o in slowest[:3])})"
        )
        for name, reason in batch.skipped.items():
            terminalreporter.write_line(f"e2e: skipped {name}: {reason}")
    for rule_id, why in EXEMPT.items():
        terminalreporter.write_line(f"e2e: {rule_id} exempt: {why}")
