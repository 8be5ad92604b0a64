"""Glue between the CLI / scan report and the tampering library: ``scan --reference``, ``--deep``, ``deep-scan``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

from modelshield.errors import UsageError
from modelshield.tamper import rules
from modelshield.types import Finding, Location, ScanReport

#: ``scan --deep`` only rebuilds models this small (small image classifiers).
MAX_DEEP_BYTES = 64 << 20


def _attach(report: ScanReport, path: str, findings: list[Finding]) -> ScanReport:
    """A copy of ``report`` with ``findings`` added to the artifact of ``path`` (or the first artifact)."""
    if not findings or not report.artifacts:
        return report
    target = os.path.abspath(path)
    index = next(
        (i for i, a in enumerate(report.artifacts) if a.member is None and os.path.abspath(a.path) == target), 0
    )
    artifacts = list(report.artifacts)
    artifacts[index] = dataclasses.replace(artifacts[index], findings=(*artifacts[index].findings, *findings))
    return dataclasses.replace(report, artifacts=tuple(artifacts))


def add_reference_findings(report: ScanReport, reference: str | Path) -> ScanReport:
    """``scan --reference``: diff every target against ``reference`` and add the findings."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise UsageError("--reference needs numpy", hint="pip install 'modelshield[tamper]'") from None
    from modelshield.tamper.diff import diff_models
    from modelshield.tamper.report import diff_findings
    from modelshield.tamper.tensors import open_table

    for target in report.targets:
        result = diff_models(reference, target)
        files = open_table(target).files
        where = files[0] if files else target
        report = _attach(report, where, diff_findings(result, where))
    return report


def add_deep_findings(report: ScanReport, *, budget_s: float = 120.0) -> ScanReport:
    """``scan --deep``: trigger reverse-engineering for every safetensors file that is a small image classifier."""
    for artifact in report.artifacts:
        if artifact.member is not None or artifact.format != "safetensors":
            continue
        finding = deep_finding(artifact.path, budget_s=budget_s)
        if finding is not None:
            report = _attach(report, artifact.path, [finding])
    return report


def deep_finding(path: str, *, budget_s: float = 120.0) -> Finding | None:
    """A BACKDOOR-TRIGGER-SUSPECTED finding for ``path``, or None (not a plain CNN, or nothing found)."""
    try:
        from modelshield.tamper.deep import load_state, reverse_engineer
    except ImportError:
        raise UsageError("--deep needs torch and numpy", hint="pip install 'modelshield[deep]'") from None
    from modelshield.tamper.tensors import open_table

    table = open_table(path)
    if table.total_bytes > MAX_DEEP_BYTES or not any(len(t.shape) == 4 for t in table.tensors.values()):
        return None  # not a small image classifier
    state = load_state(path)
    built = _guess_model(state, _declared_input(path))
    if built is None:
        return None
    model, shape = built
    classes = _classes(state)
    import numpy as np

    noise = np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)
    result = reverse_engineer(model, noise, classes, time_budget_s=budget_s)
    if not result.flagged:
        return None
    rule = rules.TRIGGER_SUSPECTED
    png = f"{path}.trigger-{result.suspect_label}.png"
    _save(result, png)
    return Finding(
        rule.id,
        rule.severity,
        rule.category,
        f"label {result.suspect_label} is reachable with a trigger far smaller than the other labels "
        f"(anomaly index {result.anomaly_index:.2f} > {result.threshold:.2f}); trigger image: {png}",
        Location(path, None, None, None, f"label {result.suspect_label}"),
        result.summary(),
        rule.references,
        rule.remediation,
    )


def _save(result: object, png: str) -> None:
    from modelshield.tamper.deep import DeepScanResult, save_trigger_png

    assert isinstance(result, DeepScanResult)
    trigger = next(t for t in result.triggers if t.label == result.suspect_label)
    with contextlib.suppress(OSError):  # a read-only model folder: the finding still names the label
        save_trigger_png(trigger, png)


def _declared_input(path: str) -> tuple[int, int, int] | None:
    """``input_shape`` (``CxHxW``) from the safetensors ``__metadata__``, if the publisher declared it."""
    from modelshield.formats.safetensors import read_safetensors_header

    with open(path, "rb") as stream:
        value = read_safetensors_header(stream).metadata.get("input_shape")
    parts = value.lower().split("x") if isinstance(value, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def _guess_model(
    state: dict[str, object], declared: tuple[int, int, int] | None = None
) -> tuple[Any, tuple[int, int, int]] | None:
    """The rebuilt CNN and its input shape: the declared one, else the first usual square size that fits."""
    from modelshield.tamper.deep import build_cnn

    convs = [t for n, t in state.items() if n.endswith(".weight") and getattr(t, "dim", lambda: 0)() == 4]
    if not convs:
        return None
    channels = int(convs[0].shape[1])  # type: ignore[attr-defined]
    shapes = [declared] if declared else [(channels, size, size) for size in (16, 28, 32, 8, 64)]
    for shape in shapes:
        try:
            return build_cnn(state, shape), shape
        except (UsageError, KeyError, RuntimeError):
            continue
    return None


def _classes(state: dict[str, object]) -> int:
    linears = sorted(n for n, t in state.items() if n.endswith(".weight") and getattr(t, "dim", lambda: 0)() == 2)
    from modelshield.tamper.deep import _natural

    last = sorted(linears, key=_natural)[-1]
    return int(state[last].shape[0])  # type: ignore[attr-defined]


def run_deep_scan(
    model: Path,
    input_shape: str,
    samples: Path | None,
    arch: str | None,
    budget: float,
    threshold: float | None,
    trigger_png: Path | None,
) -> bool:
    """The ``deep-scan`` command: print per-label trigger norms and the verdict; True when flagged."""
    import sys

    try:
        import numpy as np

        from modelshield.tamper.deep import CALIBRATED_THRESHOLD, build_cnn, load_state, reverse_engineer
    except ImportError:
        raise UsageError("deep-scan needs torch and numpy", hint="pip install 'modelshield[deep]'") from None
    try:
        shape = tuple(int(p) for p in input_shape.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input expects CxHxW, got {input_shape!r}") from None
    if len(shape) != 3:
        raise UsageError(f"--input expects CxHxW, got {input_shape!r}")
    state = load_state(model)
    net = build_cnn(state, (shape[0], shape[1], shape[2]), arch)
    if samples is not None:
        images = np.load(samples, allow_pickle=False).astype(np.float32)
    else:
        images = np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)
    result = reverse_engineer(
        net, images, _classes(state), time_budget_s=budget, threshold=threshold or CALIBRATED_THRESHOLD
    )
    for t in result.triggers:
        sys.stdout.write(f"label {t.label:3d}: mask L1 {t.norm:8.2f}, attack success {t.success:.0%}\n")
    sys.stdout.write(result.summary() + "\n")
    for note in result.notes:
        sys.stdout.write(f"note: {note}\n")
    if trigger_png is not None and result.triggers:
        _save(result, str(trigger_png))
        sys.stdout.write(f"trigger of label {result.suspect_label} saved to {trigger_png}\n")
    return result.flagged
