"""YARA rules over small model content, through ``yara-x`` (optional, imported lazily).

The bundled ruleset lives in ``modelshield/data/yara/*.yar``. Users add their own with
``modelshield scan --rules DIR`` (or :func:`use_user_rules`), which is passed to worker processes
through the ``MODELSHIELD_YARA_RULES`` environment variable (folders joined with ``os.pathsep``).
A rule's ``severity`` meta (info ... critical) sets the finding's severity (default high).
Without ``yara-x`` installed, one informational coverage note says the rules were not run.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelshield.errors import UsageError
from modelshield.formats.interface import ScanContext
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

ENV_VAR = "MODELSHIELD_YARA_RULES"

YARA_MATCH = rule(
    "YARA-MATCH",
    "YARA rule matched",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A YARA rule (bundled model-malware rules or your own --rules) matched this content.",
    "Inspect the matched bytes; remove the file or obtain the model from a trusted source.",
)
YARA_UNAVAILABLE = rule(
    "YARA-UNAVAILABLE",
    "YARA rules not run",
    Severity.INFO,
    Category.COVERAGE,
    "The yara-x package is not installed, so the bundled and user YARA rules were not run.",
    "pip install 'modelshield[yara]' (yara-x).",
)


def use_user_rules(folders: list[str]) -> None:
    """Scan with the YARA rules in ``folders`` as well (checked now: UsageError if they do not compile)."""
    value = os.pathsep.join(str(Path(f).resolve()) for f in folders)
    os.environ[ENV_VAR] = value
    _compiled.cache_clear()
    if _module() is not None:
        _compiled(value)


def _module() -> Any:
    try:
        import yara_x
    except ImportError:
        return None
    return yara_x


def _rule_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UsageError(f"YARA rules folder {folder} does not exist", hint="give a folder of .yar files to --rules")
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yar", ".yara"} and p.is_file())


@lru_cache(maxsize=4)
def _compiled(user: str) -> Any:
    """Compile the bundled rules and the user's (namespaced per file); raise UsageError on bad rules."""
    from importlib import resources

    yara_x = _module()
    compiler = yara_x.Compiler()
    bundled = resources.files("modelshield.data").joinpath("yara")
    sources: list[tuple[str, str]] = [
        (f"modelshield.{entry.name}", entry.read_text(encoding="utf-8"))
        for entry in sorted(bundled.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yar")
    ]
    for folder in filter(None, user.split(os.pathsep)):
        for path in _rule_files(Path(folder)):
            sources.append((f"user.{path.name}", path.read_text(encoding="utf-8", errors="replace")))
    for namespace, text in sources:
        compiler.new_namespace(namespace)
        try:
            compiler.add_source(text)
        except yara_x.CompileError as exc:
            raise UsageError(f"YARA rules {namespace} do not compile: {exc}", hint="fix the rule file") from None
    return compiler.build()


def _severity(meta: tuple[tuple[str, object], ...]) -> Severity:
    for key, value in meta:
        if key == "severity" and isinstance(value, str):
            try:
                return Severity.parse(value)
            except ValueError:
                break
    return YARA_MATCH.severity


def yara_findings(data: bytes, ctx: ScanContext) -> list[Finding]:
    """Findings for every bundled or user rule matching ``data`` (a coverage note without yara-x)."""
    if _module() is None:
        return [ctx.finding(YARA_UNAVAILABLE.id, "yara-x is not installed; YARA rules were not run")]
    results = _compiled(os.environ.get(ENV_VAR, "")).scan(data)
    findings = []
    for match in results.matching_rules:
        meta = tuple(match.metadata)
        description = next((str(v) for k, v in meta if k == "description"), match.identifier)
        hits = [(m.offset, m.length) for pattern in match.patterns for m in pattern.matches]
        offset = min(hits)[0] if hits else None
        snippet = b" | ".join(data[o : o + min(n, 80)] for o, n in sorted(hits)[:3])
        findings.append(
            ctx.finding(
                YARA_MATCH.id,
                f"YARA rule {match.namespace}:{match.identifier} matched: {description}",
                severity=_severity(meta),
                offset=offset,
                evidence=snippet.decode("utf-8", "backslashreplace"),
                detail=f"{match.namespace}:{match.identifier}",
            )
        )
    return findings
