"""Endpoint prober: red-team and zero-trust checks of an OpenAI-compatible chat endpoint.

Quick start::

    import modelshield

    report = modelshield.probe("http://127.0.0.1:8080", repeats=2, profile="strict")
    print(report.verdict)                          # pass | warn | fail
    for family in report.families:
        print(family.family, family.rate.value, family.rate.low, family.rate.high)

``modelshield.probe`` is this package, and calling it runs :func:`probe`. The layers, top-down:
:mod:`.runner` (the run), :mod:`.transport` (TLS, key, ``/v1/models``, error bodies),
:mod:`.fingerprint` (identity and drift), :mod:`.pack` (probes as data), :mod:`.detectors`,
:mod:`.stats` (Wilson intervals), :mod:`.policy` (pass/warn/fail per profile),
:mod:`.statement` (signed in-toto statement), :mod:`.render` (text, json, sarif, html).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelshield.probe.report import ProbeReport
    from modelshield.probe.runner import Progress

__all__ = ["probe"]


def probe(url: str, *, progress: Progress | None = None, **options: Any) -> ProbeReport:
    """Probe the endpoint at ``url``; keyword options are :class:`~.runner.ProbeOptions` fields."""
    from modelshield.probe.runner import ProbeOptions
    from modelshield.probe.runner import probe as run

    if "families" in options and options["families"] is not None:
        options["families"] = tuple(options["families"])
    if "baseline" in options and isinstance(options["baseline"], str):
        from pathlib import Path

        options["baseline"] = Path(options["baseline"])
    return run(url, ProbeOptions(**options), progress=progress)


class _CallableModule(types.ModuleType):
    """Makes ``modelshield.probe(url, ...)`` work although ``modelshield.probe`` is a package."""

    def __call__(self, url: str, *, progress: Progress | None = None, **options: Any) -> ProbeReport:
        return probe(url, progress=progress, **options)


sys.modules[__name__].__class__ = _CallableModule
