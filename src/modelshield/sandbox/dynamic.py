"""Static + dynamic in one report: detonate every loadable file of a ScanReport in the sandbox.

Detonations run ``jobs`` at a time (each in its own isolated child; the threads here only wait).
Their findings (``source="dynamic"``) are appended to the artifact of the file they loaded.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from modelshield.sandbox.plan import Plan, plans_for
from modelshield.sandbox.rlimits import SandboxLimits
from modelshield.sandbox.runner import Detonation, detonate
from modelshield.types import Artifact, Finding, ScanReport


def plans_for_report(report: ScanReport) -> list[Plan]:
    """Loads to perform for the top-level files of ``report`` (archive members are not loaded)."""
    plans: list[Plan] = []
    for artifact in report.artifacts:
        if artifact.member is None and os.path.isfile(artifact.path):
            plans.extend(plans_for(artifact.path, artifact.format))
    return plans


def detonate_all(
    plans: Sequence[Plan],
    *,
    limits: SandboxLimits | None = None,
    jobs: int = 1,
    backend: str = "auto",
    on_done: Callable[[Detonation], None] | None = None,
) -> list[Detonation]:
    """Run every plan in the sandbox, ``jobs`` at a time; results in plan order."""
    from modelshield.sandbox.isolation import probe

    probe(backend)  # refuse before starting anything

    def run(plan: Plan) -> Detonation:
        result = detonate(plan.path, plan.loader, limits=limits, backend=backend)
        if on_done:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run, plans))


def add_dynamic_findings(
    report: ScanReport,
    *,
    limits: SandboxLimits | None = None,
    jobs: int = 1,
    backend: str = "auto",
) -> ScanReport:
    """A copy of ``report`` whose artifacts also carry the findings of their detonations."""
    started = time.perf_counter()
    detonations = detonate_all(plans_for_report(report), limits=limits, jobs=jobs, backend=backend)
    extra: dict[str, list[Finding]] = {}
    for result in detonations:
        extra.setdefault(result.path, []).extend(result.findings())
    artifacts: list[Artifact] = []
    for artifact in report.artifacts:
        added = extra.get(os.path.abspath(artifact.path), []) if artifact.member is None else []
        artifacts.append(dataclasses.replace(artifact, findings=(*artifact.findings, *added)) if added else artifact)
    return dataclasses.replace(
        report, artifacts=tuple(artifacts), duration_s=report.duration_s + time.perf_counter() - started
    )
