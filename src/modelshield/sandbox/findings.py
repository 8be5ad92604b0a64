"""What a detonation observed (:class:`Detonation`), the dynamic rules, and its findings (``source="dynamic"``).

Every recorded event is a ``malicious-code`` finding with the call and its arguments as evidence;
a timeout, a resource-limit kill, a crash or a missing framework is a ``coverage`` finding.
:mod:`modelshield.sandbox.runner` fills a :class:`Detonation` (and re-exports it); nothing here
starts a process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from modelshield.rules import get_rule, rule
from modelshield.sandbox.rlimits import SandboxLimits
from modelshield.types import Category, Finding, Location, Severity


@dataclass
class Detonation:
    """Everything observed while one artifact was loaded in the sandbox."""

    path: str
    loader: str
    backend: str
    outcome: str
    duration_s: float
    returncode: int | None
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def events(self) -> list[dict[str, Any]]:
        """The recorded audit events (what the load tried to do)."""
        return [r for r in self.records if r.get("kind") == "event"]

    def findings(self) -> list[Any]:
        """The detonation as findings (see :func:`to_findings`)."""
        return to_findings(self)

    def to_dict(self) -> dict[str, Any]:
        """The full event log, JSON-ready."""
        return {
            "path": self.path,
            "loader": self.loader,
            "backend": self.backend,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 4),
            "returncode": self.returncode,
            "records": self.records,
            "channel_problems": self.problems,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "limits": self.limits.to_dict(),
        }


_BLOCKED = "Loading this model in the sandbox did this; the sandbox blocked it. A real load would not."
_REMEDIATE = "Do not load this model. Obtain the model from a trusted source, or convert it to safetensors."

rule(
    "DYN-PROCESS-EXEC", "Loading the model starts a process", Severity.CRITICAL, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load called os.system, subprocess, exec*/spawn*, fork or kill. " + _BLOCKED,
    _REMEDIATE, ("CWE-78", "CWE-502"),
)  # fmt: skip
rule(
    "DYN-NETWORK", "Loading the model uses the network", Severity.CRITICAL, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load resolved an address, created a network socket, connected, or "
    "requested a URL. " + _BLOCKED,
    _REMEDIATE, ("CWE-502",),
)  # fmt: skip
rule(
    "DYN-FILE-WRITE", "Loading the model writes files", Severity.HIGH, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load opened a file for writing or changed the file system. " + _BLOCKED,
    _REMEDIATE, ("CWE-502",),
)  # fmt: skip
rule(
    "DYN-FILE-READ", "Loading the model reads files outside the model", Severity.MEDIUM, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load opened a file that is neither part of the model nor of the loader "
    "(credentials, another payload to re-enter a loader). " + _BLOCKED,
    _REMEDIATE, ("CWE-200", "CWE-502"),
)  # fmt: skip
rule(
    "DYN-CODE-EXEC", "Loading the model runs dynamically built code", Severity.CRITICAL, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load called exec/eval/compile, unmarshalled code, rebound a function's "
    "code, built code or function objects, or called native code through ctypes.",
    _REMEDIATE, ("CWE-94", "CWE-502"),
)  # fmt: skip
rule(
    "DYN-IMPORT", "Loading the model reaches code outside its framework", Severity.HIGH, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load imported a module, or resolved a pickle global, that the loader "
    "of this format never needs (e.g. os, subprocess, builtins.eval).",
    _REMEDIATE, ("CWE-502",),
)  # fmt: skip
rule(
    "DYN-HOOK-TAMPER", "The model tries to blind or escape the monitor", Severity.CRITICAL, Category.MALICIOUS_CODE,
    "Observed in the sandbox: the load tried to add audit/trace hooks, reach interpreter frames or the "
    "garbage collector, replace sys.modules or builtins, forge or close the event channel, or end the "
    "process before the load finished.",
    _REMEDIATE, ("CWE-693",),
)  # fmt: skip
rule(
    "DYN-ENVIRONMENT", "Loading the model changes the process environment", Severity.MEDIUM,
    Category.MALICIOUS_CODE, "Observed in the sandbox: the load set or removed environment variables.", _REMEDIATE,
)  # fmt: skip
rule(
    "DYN-TIMEOUT", "The sandboxed load did not finish in time", Severity.MEDIUM, Category.COVERAGE,
    "The load ran past the wall-clock limit and was killed; what it would have done later is unknown. "
    "Payloads that stall analysis do this on purpose.",
    "Detonate again with a larger --timeout if the model is just slow; otherwise treat it as untrusted.",
)  # fmt: skip
rule(
    "DYN-RESOURCE-LIMIT", "The sandboxed load hit a resource limit", Severity.MEDIUM, Category.COVERAGE,
    "The load exhausted the memory, CPU-time or file-size budget of the sandbox and was stopped.",
    "Raise the limit (--memory-mb) if the model is legitimately large; otherwise treat it as untrusted.",
)  # fmt: skip
rule(
    "DYN-CRASH", "The sandboxed load crashed", Severity.MEDIUM, Category.COVERAGE,
    "The child process that loaded the model died (signal or abnormal exit) before reporting an outcome.",
    "Treat the model as untrusted; a crash of the loader on crafted input is itself a red flag.",
)  # fmt: skip
rule(
    "DYN-LOADER-UNAVAILABLE", "The framework needed to load this model is not installed", Severity.LOW,
    Category.COVERAGE, "The real load could not be performed in the sandbox because its framework is missing; "
    "the model was not detonated.",
    "Install the framework (for example torch, keras, onnxruntime) in the environment running modelshield.",
)  # fmt: skip

_SIGNAL_LIMITS = {24: "CPU time limit (SIGXCPU)", 25: "file size limit (SIGXFSZ)", 9: "killed (SIGKILL, memory?)"}


def _finding(rule_id: str, det: Detonation, message: str, evidence: str, severity: Severity | None = None) -> Finding:
    meta = get_rule(rule_id)
    return Finding(
        rule_id=rule_id,
        severity=meta.severity if severity is None else severity,
        category=meta.category,
        message=message,
        location=Location(det.path, None, detail=f"sandbox load: {det.loader}"),
        evidence=evidence[:4000],
        references=meta.references,
        remediation=meta.remediation,
        source="dynamic",
    )


def _event_findings(det: Detonation) -> list[Finding]:
    counts = Counter((str(e.get("rule")), str(e.get("call")), bool(e.get("blocked"))) for e in det.events())
    details = {(str(e.get("rule")), str(e.get("call"))): str(e.get("detail", "")) for e in det.events()}
    levels = {(str(e.get("rule")), str(e.get("call"))): str(e.get("severity") or "") for e in det.events()}
    out = []
    for (rule_id, call, blocked), count in counts.items():
        level = levels[(rule_id, call)]
        severity = Severity.parse(level) if level else None
        if call.startswith(("code.__new__", "function.__new__")):
            severity = Severity.MEDIUM
        suffix = " (blocked)" if blocked else " (observed)"
        times = f" x{count}" if count > 1 else ""
        message = f"{details[(rule_id, call)]}{suffix}{_mode_note(det)}"
        out.append(_finding(rule_id, det, message, f"{call}{times}", severity))
    return out


def _mode_note(det: Detonation) -> str:
    if det.loader == "keras-safe-mode":
        return "; fires even with safe_mode=True (safe_mode bypass)"
    if det.loader == "keras-unsafe":
        return "; with safe_mode=False"
    return ""


def _coverage_findings(det: Detonation, malicious: bool) -> list[Finding]:
    kinds = {str(r.get("kind")): r for r in det.records}
    if det.outcome == "timeout":
        return [_finding("DYN-TIMEOUT", det, f"load killed after {det.limits.wall_s:g} s wall time", _tail(det))]
    if det.outcome == "killed":
        sig = -det.returncode if det.returncode and det.returncode < 0 else (det.returncode or 0) - 128
        if sig in _SIGNAL_LIMITS:
            return [_finding("DYN-RESOURCE-LIMIT", det, f"load stopped: {_SIGNAL_LIMITS[sig]}", _tail(det))]
        return [_finding("DYN-CRASH", det, f"loader died with signal {sig}", _tail(det))]
    if det.outcome == "cut-short" or det.problems:
        return _tamper_or_crash(det, malicious)
    if "limit" in kinds:
        return [_finding("DYN-RESOURCE-LIMIT", det, str(kinds["limit"].get("detail")), _tail(det))]
    if "unavailable" in kinds:
        return [_finding("DYN-LOADER-UNAVAILABLE", det, str(kinds["unavailable"].get("detail")), "")]
    return []


def _tamper_or_crash(det: Detonation, malicious: bool) -> list[Finding]:
    armed = any(r.get("kind") == "armed" for r in det.records)
    if det.problems:
        evidence = "; ".join(det.problems[:5])
        return [_finding("DYN-HOOK-TAMPER", det, "the event channel carried forged or out-of-order records", evidence)]
    if armed:
        message = f"the load ended the process before finishing (exit code {det.returncode}, no end-of-run marker)"
        return [_finding("DYN-HOOK-TAMPER", det, message, _tail(det))]
    return [_finding("DYN-CRASH", det, f"the sandbox child failed before the load (exit {det.returncode})", _tail(det))]


def _tail(det: Detonation) -> str:
    return det.stderr.strip()[-600:]


def to_findings(det: Detonation) -> list[Finding]:
    """Every recorded event as a finding, then coverage findings for how the run ended."""
    events = _event_findings(det)
    return events + _coverage_findings(det, bool(events))


def event_summary(record: dict[str, Any]) -> str:
    """One line for the human event log."""
    kind = record.get("kind")
    if kind == "event":
        action = "BLOCKED" if record.get("blocked") else "observed"
        return f"[{record.get('rule')}] {action}: {record.get('call')}"
    return f"[{kind}] {record.get('detail', '') or ''}".rstrip()
