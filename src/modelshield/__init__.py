"""modelshield: a zero-trust security gate for AI models.

Quick start::

    import modelshield

    report = modelshield.scan(["model.pt", "models/"])
    print(report.verdict.value)          # pass | warn | fail
    for finding in report.findings:
        print(finding.severity.label, finding.rule_id, finding.message)

    result = modelshield.verify("model/", trust="trusted-keys/")   # signed scan attestation
    print(result.outcome, result.reasons)

    probed = modelshield.probe("http://127.0.0.1:8080", profile="strict")  # red-team an endpoint
    print(probed.verdict, [(f.family, f.rate.value) for f in probed.families])

Scanning parses bytes only; nothing in a scanned model is executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshield._version import __version__

__all__ = ["__version__", "scan", "verify", "probe", "ModelShieldError", "Severity", "ScanReport", "Finding"]

if TYPE_CHECKING:
    from modelshield.attest.verify import verify
    from modelshield.errors import ModelShieldError
    from modelshield.scan import scan
    from modelshield.types import Finding, ScanReport, Severity


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep `import modelshield` (and the CLI's --help) fast.
    if name == "scan":
        from modelshield.scan import scan

        return scan
    if name == "verify":
        from modelshield.attest.verify import verify

        return verify
    if name == "probe":  # the package is callable: modelshield.probe(url, ...)
        import importlib

        return importlib.import_module("modelshield.probe")
    if name == "ModelShieldError":
        from modelshield.errors import ModelShieldError

        return ModelShieldError
    if name in {"Severity", "ScanReport", "Finding"}:
        from modelshield import types

        return getattr(types, name)
    raise AttributeError(name)
