"""Build every case, then scan each in its own fresh ``modelshield`` process, a few at a time.

Each scan runs the installed console script next to ``sys.executable`` (what users run), with the
case folder's parent as working directory and a clean environment: no ``PYTHONPATH`` (so nothing
of tests/ is importable), no ``MODELSHIELD_*`` settings of the caller, empty XDG data and cache
folders (no advisory database refreshed in the developer's home), only what the case adds.
Scans start as soon as their fixture is built, so fixtures that need a child interpreter
(TensorFlow, Core ML) are built while the others are already being scanned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.model import Case, NotReady, Resources, Scan, Where

SCANNER = Path(sys.executable).parent / "modelshield"
#: Environment variables a case may not inherit from the test process.
_DROPPED = ("PYTHON", "MODELSHIELD_", "COV_CORE_", "PYTEST_")


def clean_env(extra: dict[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """The caller's environment without Python or modelshield settings, plus ``extra``.

    With ``home``, the XDG data and cache folders point under it (folders that do not exist).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
    env.update({"NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    if home is not None:
        env.update({"XDG_DATA_HOME": str(home / "xdg-data"), "XDG_CACHE_HOME": str(home / "xdg-cache")})
    env.update(extra or {})
    return env


def fired(report: dict[str, Any]) -> dict[str, list[str]]:
    """Rule id -> severities of its findings, from every place a JSON report holds findings."""
    found: dict[str, list[str]] = {}
    findings = [f for artifact in report.get("artifacts", []) for f in artifact.get("findings", [])]
    findings += report.get("findings", [])
    for finding in findings:
        found.setdefault(finding["rule_id"], []).append(finding["severity"])
    for gap in report.get("coverage", {}).get("gaps", []):
        found.setdefault(gap["rule_id"], [])
    return found


@dataclass
class Outcome:
    """What one fresh-process scan of one case gave."""

    case: Case
    command: list[str] = field(default_factory=list)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    report: dict[str, Any] | None = None
    error: str = ""
    ended: float = 0.0

    @property
    def rules(self) -> dict[str, list[str]]:
        """Rule id -> severities of what fired (empty without a report)."""
        return fired(self.report) if self.report is not None else {}

    def describe(self) -> str:
        """Everything needed to see why an assertion failed."""
        shown = ", ".join(f"{r} ({'/'.join(sorted(set(s))) or 'gap'})" for r, s in sorted(self.rules.items()))
        return (
            f"case {self.case.name!r}: {' '.join(self.command)}\n"
            f"  exit code {self.returncode} after {self.seconds:.1f} s\n"
            f"  fired: {shown or 'nothing'}\n"
            + (f"  error: {self.error}\n" if self.error else "")
            + f"  stderr (tail):\n{_indent(self.stderr[-3000:])}"
        )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def scan_fresh(case: Case, scan: Scan, cwd: Path) -> Outcome:
    """``modelshield scan TARGET --format json *args`` in a new process; its parsed report."""
    command = [str(SCANNER), "scan", str(scan.target), "--format", "json", *scan.args]
    outcome = Outcome(case, command)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=clean_env(dict(scan.env), home=cwd),
            stdin=subprocess.DEVNULL,
            timeout=scan.timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        outcome.error = f"no answer within {scan.timeout_s:g} s"
        outcome.stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        outcome.seconds = time.monotonic() - started
        outcome.ended = time.monotonic()
        return outcome
    outcome.seconds = time.monotonic() - started
    outcome.ended = time.monotonic()
    outcome.returncode, outcome.stdout, outcome.stderr = proc.returncode, proc.stdout, proc.stderr
    try:
        outcome.report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        outcome.error = f"stdout is not a JSON report ({exc}): {proc.stdout[:300]!r}"
    return outcome


def catalogue() -> dict[str, str]:
    """Rule id -> default severity, as a fresh ``modelshield rules`` prints them."""
    proc = subprocess.run(
        [str(SCANNER), "rules"], capture_output=True, text=True, env=clean_env(), stdin=subprocess.DEVNULL, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"modelshield rules failed ({proc.returncode}):\n{proc.stderr}")
    return {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}


@dataclass
class Batch:
    """Every outcome by case name, and how long building and scanning took."""

    root: Path
    outcomes: dict[str, Outcome]
    wall_s: float
    skipped: dict[str, str]
    started: float = 0.0

    def done_after(self, outcome: Outcome) -> float:
        """Seconds from the start of the batch until ``outcome``'s scan ended."""
        return max(outcome.ended - self.started, 0.0)


def _build(case: Case, folder: Path, resources: Resources, wait: bool) -> Scan | None:
    """The case's Scan, or None when it needs a resource that is still being built (only when not ``wait``)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    try:
        return case.build(Where(folder, resources, wait))
    except NotReady:
        return None


def run_batch(cases: list[Case], root: Path, resources: Resources, *, jobs: int = 3, skip: str = "") -> Batch:
    """Build each case under ``root`` and scan it fresh, ``jobs`` scans at a time.

    ``skip``: when set, sandbox cases are not run and are reported skipped with that reason.
    Build errors become the case's outcome (its tests fail with the traceback), never the batch's.
    """
    started = time.monotonic()
    ordered = sorted(cases, key=lambda c: (not c.slow, not c.sandbox))
    skipped = {c.name: skip for c in ordered if c.sandbox and skip}
    futures: dict[str, Future[Outcome]] = {}
    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="e2e-scan") as pool:
        deferred = []
        for wait in (False, True):
            for case in deferred if wait else ordered:
                if case.name in skipped:
                    continue
                folder = root / case.name
                try:
                    scan = _build(case, folder, resources, wait)
                except Exception:  # noqa: BLE001 - a broken builder fails its own case, not the batch
                    outcomes[case.name] = Outcome(case, error=f"building the fixture failed:\n{traceback.format_exc()}")
                    continue
                if scan is None:
                    deferred.append(case)
                    continue
                futures[case.name] = pool.submit(scan_fresh, case, scan, root)
        for name, future in futures.items():
            outcomes[name] = future.result()
    return Batch(root, outcomes, time.monotonic() - started, skipped, started)
