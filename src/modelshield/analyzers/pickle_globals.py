"""Allowlist-first judgement of pickle globals and calls.

Every global a pickle imports is judged against ``data/pickle_allowlist.json`` (constructors real
frameworks emit). Anything not on it is a finding: HIGH when loading would call it, LOW when it is
only instantiated without ``__init__`` (NEWOBJ, copyreg reconstructors) or referenced. The curated
``data/pickle_dangerous.json`` only raises known-dangerous targets to CRITICAL and says why.

Public surface (stable; the restricted unpickler in ``guard/`` calls it):

* :func:`judge_global` ``(module, name, use=GlobalUse.CALL) -> GlobalVerdict``
* :data:`ALLOWLIST_VERSION`, :data:`DANGEROUS_VERSION`
* :class:`PickleGlobalsAnalyzer` — turns :class:`~modelshield.formats.pickle.PickleStream` IR into
  findings (rule ids below).
"""

from __future__ import annotations

import _compat_pickle
import enum
import fnmatch
import functools
import json
import os
from collections.abc import Iterator
from typing import Any, ClassVar

from modelshield._record import record
from modelshield.analyzers.interface import Analyzer, register_analyzer
from modelshield.formats.interface import ScanContext
from modelshield.formats.pickle.values import (
    USE_CALL,
    USE_CONSTRUCT,
    USE_MUTATE,
    USE_PERSID,
    USE_TYPE_LOOKUP,
    Call,
    CallSite,
    GlobalRef,
    Large,
    PickleStream,
    SDict,
    SList,
    SSet,
)
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

CWE_502 = "CWE-502"
_EXEC_FIX = (
    "Do not load this file with pickle, torch.load(weights_only=False), joblib.load or numpy.load"
    "(allow_pickle=True). Obtain the model in a safe format (safetensors) or from a trusted source."
)

UNSAFE_GLOBAL = rule(
    "PICKLE-UNSAFE-GLOBAL",
    "Pickle imports a known-dangerous global",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The pickle imports a callable known to execute code, spawn processes, touch files or the "
    "network, or re-enter a loader. Loading the file runs it (or hands it to later code).",
    _EXEC_FIX,
    (CWE_502,),
)
UNAPPROVED_GLOBAL = rule(
    "PICKLE-UNAPPROVED-GLOBAL",
    "Pickle calls a global that is not on the allowlist",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Loading the pickle calls a callable that real model files do not need. Unknown callables "
    "are how payloads outside common denylists execute code.",
    _EXEC_FIX,
    (CWE_502,),
)
UNREVIEWED_CLASS = rule(
    "PICKLE-UNREVIEWED-CLASS",
    "Pickle imports a class or global that is not on the allowlist",
    Severity.LOW,
    Category.UNSAFE_CONFIG,
    "The pickle instantiates (without calling its constructor) or references a class that is not "
    "on the allowlist, e.g. the user's own nn.Module subclass in a whole-model checkpoint. That is "
    "not a code-execution primitive by itself, but loading imports the class's module.",
    "Prefer state_dict checkpoints; make sure the module that defines the class is trusted.",
)
SUSPICIOUS_CALL = rule(
    "PICKLE-SUSPICIOUS-CALL",
    "Pickle uses an allowed construct in a suspicious way",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "An allowed callable receives unexpected arguments, or BUILD/SETITEM/APPEND modify a class, "
    "function or module object or plant special attributes (__reduce__, __setstate__ ...): the "
    "'BUILD gadget' that turns a later call into code execution.",
    _EXEC_FIX,
    (CWE_502,),
)
CODE_OBJECT = rule(
    "PICKLE-CODE-OBJECT",
    "Pickle reconstructs code (functions, code objects, classes)",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The pickle rebuilds Python code objects or functions (dill, cloudpickle, marshal, "
    "types.CodeType/FunctionType): arbitrary code shipped inside the file.",
    _EXEC_FIX,
    (CWE_502,),
)
MALFORMED = rule(
    "PICKLE-MALFORMED",
    "Malformed pickle stream",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The pickle stream is broken (bad opcode, truncation, stack underflow, missing memo entry). "
    "A loader executes everything before the broken point, and evasions hide payloads in front of "
    "deliberately broken streams; everything found before it is reported.",
    "Obtain an intact copy from a trusted source, or treat the file as untrusted.",
)
EXT_UNKNOWN = rule(
    "PICKLE-EXT-UNKNOWN",
    "Pickle uses an unregistered extension code",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "EXT1/EXT2/EXT4 opcodes refer to the copyreg extension registry. The code is not registered "
    "here, so what the loading environment resolves it to cannot be judged.",
    _EXEC_FIX,
    (CWE_502,),
)
PERSID = rule(
    "PICKLE-PERSID",
    "Pickle uses persistent ids",
    Severity.LOW,
    Category.UNSAFE_CONFIG,
    "Persistent ids are resolved by the loader's persistent_load hook, outside the pickle. Only "
    "torch's storage references are expected in model files.",
    "Check which loader reads this file and what its persistent_load does with these ids.",
)

#: Names of the rules this analyzer emits.
RULE_IDS = tuple(
    r.id for r in (UNSAFE_GLOBAL, UNAPPROVED_GLOBAL, UNREVIEWED_CLASS, SUSPICIOUS_CALL, CODE_OBJECT, MALFORMED)
) + (EXT_UNKNOWN.id, PERSID.id)


class GlobalUse(enum.StrEnum):
    """How loading uses a global: called, instantiated without __init__, or only referenced."""

    CALL = "call"
    CONSTRUCT = "construct"
    REFERENCE = "reference"


@record
class GlobalVerdict:
    """Judgement of one global: on the allowlist or not, severity, reason and rule id."""

    allowed: bool
    severity: Severity
    reason: str
    rule_id: str


# ---------------------------------------------------------------------------- data


_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def _load(name: str) -> dict[str, Any]:
    # a plain path (package data is installed as files); importlib.resources costs ~3 ms to import
    with open(os.path.join(_DATA_DIR, name), encoding="utf-8") as stream:
        text = stream.read()
    data: dict[str, Any] = json.loads(text)
    return data


@record
class _Pattern:
    module: str
    name: str
    exclude_modules: tuple[str, ...]
    exclude_names: tuple[str, ...]

    def matches(self, module: str, name: str) -> bool:
        if not fnmatch.fnmatchcase(module, self.module) or not fnmatch.fnmatchcase(name, self.name):
            return False
        if any(fnmatch.fnmatchcase(module, m) for m in self.exclude_modules):
            return False
        return not any(fnmatch.fnmatchcase(name, n) for n in self.exclude_names)


class _Catalogue:
    """The allowlist and the dangerous list, loaded once."""

    def __init__(self) -> None:
        allow = _load("pickle_allowlist.json")
        danger = _load("pickle_dangerous.json")
        self.allow_version: str = allow["version"]
        self.danger_version: str = danger["version"]
        self.exact: dict[str, frozenset[str]] = {m: frozenset(n) for m, n in allow["exact"].items()}
        self.patterns = tuple(
            _Pattern(p["module"], p["name"], tuple(p.get("exclude_modules", ())), tuple(p.get("exclude_names", ())))
            for p in allow["patterns"]
        )
        self.arg_checks: dict[str, dict[str, Any]] = allow.get("arg_checks", {})
        self.modules: dict[str, str] = danger["modules"]
        self.names: dict[str, dict[str, str]] = danger["names"]
        self.code: dict[str, frozenset[str]] = {m: frozenset(n) for m, n in danger["code_objects"].items()}

    def allowed(self, module: str, name: str) -> bool:
        if name in self.exact.get(module, ()):
            return True
        return "." not in name and any(p.matches(module, name) for p in self.patterns)

    def danger(self, module: str, name: str) -> tuple[str, str] | None:
        """(rule id, reason) when ``module.name`` is known dangerous."""
        if name in self.code.get(module, ()):
            return CODE_OBJECT.id, f"{module}.{name} reconstructs code"
        by_name = self.names.get(module)
        if by_name:
            for pattern, reason in by_name.items():
                if name == pattern or fnmatch.fnmatchcase(name, pattern):
                    return UNSAFE_GLOBAL.id, reason
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            why = self.modules.get(".".join(parts[:i]))
            if why is not None:
                return UNSAFE_GLOBAL.id, why
        dotted = self.modules.get(f"{module}.{name}")
        if dotted is not None:
            return UNSAFE_GLOBAL.id, dotted
        return None


@functools.cache
def _catalogue() -> _Catalogue:
    return _Catalogue()


ALLOWLIST_VERSION: str = _catalogue().allow_version
DANGEROUS_VERSION: str = _catalogue().danger_version


# ---------------------------------------------------------------------------- judging


def _aliases(module: str, name: str) -> list[tuple[str, str]]:
    """The name as written plus its Python 2 -> 3 mapping (what a loader with fix_imports uses)."""
    out = [(module, name)]
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        out.append(mapped)
    elif module in _compat_pickle.IMPORT_MAPPING:
        out.append((_compat_pickle.IMPORT_MAPPING[module], name))
    if module in ("__builtins__", "__builtin__"):
        out.append(("builtins", name))
    return out


def _is_dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__")


def _structural(module: str, name: str) -> str | None:
    """Red flags in the shape of the name itself (attribute traversal, empty parts)."""
    if not module or not name or any(not p for p in module.split(".") + name.split(".")):
        return "empty module or name component"
    parts = name.split(".")
    if len(parts) > 1 and any(_is_dunder(p) for p in parts):
        return "attribute chain through special attributes (" + ", ".join(p for p in parts if _is_dunder(p)) + ")"
    if _is_dunder(name) and name not in ("__newobj__", "__newobj_ex__"):
        return f"imports the special attribute {name} of {module}"
    return None


def _chain_danger(cat: _Catalogue, module: str, name: str) -> tuple[str, str] | None:
    """Dangerous targets reached through a dotted name (protocol 4 attribute chains)."""
    parts = name.split(".")
    if len(parts) < 2:
        return None
    for i in range(1, len(parts)):
        for j in range(i):
            found = cat.danger(".".join(parts[j:i]), parts[i])
            if found:
                return found[0], f"{found[1]} (reached as {module}.{name})"
    return None


def judge_global(module: str, name: str, use: GlobalUse = GlobalUse.CALL) -> GlobalVerdict:
    """Judge ``module.name`` for how loading uses it (default: called, the strictest).

    ``allowed`` is True only for allowlisted globals. Known-dangerous globals are CRITICAL
    (PICKLE-UNSAFE-GLOBAL, or PICKLE-CODE-OBJECT for code reconstruction) whatever the use;
    other globals are HIGH when called (PICKLE-UNAPPROVED-GLOBAL) and LOW otherwise
    (PICKLE-UNREVIEWED-CLASS).
    """
    return _judge(module, name, GlobalUse(use))


@functools.lru_cache(maxsize=8192)
def _judge(module: str, name: str, use: GlobalUse) -> GlobalVerdict:
    cat = _catalogue()
    aliases = _aliases(module, name)
    if any(nam in cat.exact.get(mod, ()) for mod, nam in aliases):
        # An exact, reviewed allowlist entry beats a module-wide danger entry
        # (torch.jit._pickle.build_intlist is an identity function under the dangerous torch.jit).
        return GlobalVerdict(True, Severity.INFO, "on the allowlist", "PICKLE-ALLOWED")
    for mod, nam in aliases:
        found = cat.danger(mod, nam) or _chain_danger(cat, mod, nam)
        if found:
            return GlobalVerdict(False, Severity.CRITICAL, found[1], found[0])
    if any(cat.allowed(mod, nam) for mod, nam in aliases):
        return GlobalVerdict(True, Severity.INFO, "on the allowlist", "PICKLE-ALLOWED")
    flag = _structural(module, name)
    if flag:
        return GlobalVerdict(False, Severity.CRITICAL, flag, UNSAFE_GLOBAL.id)
    if use is GlobalUse.CALL:
        return GlobalVerdict(False, Severity.HIGH, "callable not on the allowlist", UNAPPROVED_GLOBAL.id)
    what = "class instantiated" if use is GlobalUse.CONSTRUCT else "global imported"
    return GlobalVerdict(False, Severity.LOW, f"{what} but not on the allowlist", UNREVIEWED_CLASS.id)


def use_of(ref: GlobalRef) -> GlobalUse:
    """The strictest use the VM recorded for a global."""
    if ref.uses & (USE_CALL | USE_MUTATE | USE_PERSID):
        return GlobalUse.CALL
    if ref.uses & USE_CONSTRUCT:
        return GlobalUse.CONSTRUCT
    return GlobalUse.REFERENCE


# ---------------------------------------------------------------------------- analyzer


@register_analyzer
class PickleGlobalsAnalyzer(Analyzer):
    """Findings for one pickle stream: globals, calls, gadgets, code objects, malformation."""

    name: ClassVar[str] = "pickle-globals"
    handles: ClassVar[tuple[type, ...]] = (PickleStream,)

    def analyze(self, ir: object, ctx: ScanContext) -> Iterator[Finding]:
        """Yield the findings of a :class:`PickleStream`."""
        assert isinstance(ir, PickleStream)
        yield from _global_findings(ir, ctx)
        yield from _call_findings(ir, ctx)
        yield from _persid_findings(ir, ctx)
        if ir.error is not None and ir.limit is None:
            where = f" (embedded in the stream at byte {ir.nested_in})" if ir.nested_in is not None else ""
            yield ctx.finding(
                MALFORMED.id,
                f"pickle stream at byte {ir.offset} is malformed{where}: {ir.error}",
                evidence=f"{ir.opcode_count} opcodes parsed, {len(ir.calls)} calls recorded before the break",
                offset=ir.error_offset,
            )


def _sites_of(ir: PickleStream, ref: GlobalRef) -> list[CallSite]:
    return [s for s in ir.calls if s.target is ref]


def _global_findings(ir: PickleStream, ctx: ScanContext) -> Iterator[Finding]:
    for ref in ir.globals:
        if ref.unresolved:
            yield ctx.finding(
                EXT_UNKNOWN.id,
                f"extension code {ref.ext_code} is not registered in copyreg",
                evidence=f"EXT opcode at byte {ref.offset}",
                offset=ref.offset,
                opcode_index=ref.opcode_index,
            )
            continue
        if ref.uses == USE_TYPE_LOOKUP:
            continue  # only resolved plain-type lookups; the resolved builtins.<type> is judged itself
        verdict = judge_global(ref.module, ref.name, use_of(ref))
        if verdict.allowed:
            continue
        sites = _sites_of(ir, ref)
        yield ctx.finding(
            verdict.rule_id,
            _message(ref, verdict, ir),
            severity=verdict.severity,
            evidence=_evidence(ref, sites, verdict),
            offset=ref.offset,
            opcode_index=ref.opcode_index,
        )


def _message(ref: GlobalRef, verdict: GlobalVerdict, ir: PickleStream) -> str:
    calls = ir.call_counts.get(ref.dotted, 0)
    how = {
        GlobalUse.CALL: f"called {calls} time(s)" if calls else "invoked by the loader",
        GlobalUse.CONSTRUCT: "instantiated",
        GlobalUse.REFERENCE: "imported, not called",
    }[use_of(ref)]
    via = f" via EXT code {ref.ext_code}" if ref.ext_code is not None else f" via {ref.via}"
    return f"{ref.dotted} ({how}{via}): {verdict.reason}"


def _evidence(ref: GlobalRef, sites: list[CallSite], verdict: GlobalVerdict) -> str:
    lines = [s.text() for s in sites[:5]]
    if verdict.rule_id == CODE_OBJECT.id:
        strings = _strings([s.raw_args for s in sites])
        if strings:
            lines.append("reconstructed code mentions: " + ", ".join(repr(s) for s in strings[:40]))
    if not lines:
        lines.append(f"{ref.via} {ref.dotted} at byte {ref.offset}")
    return "\n".join(lines)


def _strings(values: list[object], budget: int = 2000) -> list[str]:
    """Every short string inside symbolic values (names, constants of reconstructed code)."""
    found: list[str] = []
    stack: list[tuple[object, int]] = [(v, 0) for v in values]
    seen = 0
    while stack and seen < budget:
        value, depth = stack.pop(0)
        seen += 1
        if isinstance(value, str):
            if value not in found:
                found.append(value)
        elif isinstance(value, Large) and value.kind == "str":
            found.append(value.prefix.decode("utf-8", "replace") + "...")
        elif depth < 6:
            stack.extend((child, depth + 1) for child in _children(value))
    return found


def _children(value: object) -> list[object]:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, SList | SSet):
        return list(value.items)
    if isinstance(value, SDict):
        return [x for pair in value.pairs for x in pair]
    if isinstance(value, Call):
        return [value.func, value.args, value.kwargs, value.state]
    if isinstance(value, GlobalRef):
        return [value.dotted]
    return []


def _call_findings(ir: PickleStream, ctx: ScanContext) -> Iterator[Finding]:
    for site in ir.calls:
        if site.note:
            yield ctx.finding(
                SUSPICIOUS_CALL.id,
                f"{site.kind} at byte {site.offset}: {site.note}",
                evidence=site.text(),
                offset=site.offset,
                opcode_index=site.opcode_index,
            )
        elif site.target is None and site.kind in ("REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"):
            yield ctx.finding(
                UNAPPROVED_GLOBAL.id,
                f"{site.kind} at byte {site.offset} calls a computed callable (the result of another call)",
                evidence=site.text(),
                offset=site.offset,
                opcode_index=site.opcode_index,
            )
        elif site.target is not None and site.kind != "BUILD":
            problem = _arg_problem(site)
            if problem:
                yield ctx.finding(
                    SUSPICIOUS_CALL.id,
                    f"{site.callable} at byte {site.offset}: {problem}",
                    severity=_check_severity(site),
                    evidence=site.text(),
                    offset=site.offset,
                    opcode_index=site.opcode_index,
                )


def _arg_problem(site: CallSite) -> str | None:
    """Violations of the allowlist's argument checks for an allowed callable."""
    check = _catalogue().arg_checks.get(site.callable)
    if check is None:
        return None
    args = site.raw_args
    index = int(check["arg"])
    value = args[index] if isinstance(args, tuple) and len(args) > index else None
    why = str(check.get("why", ""))
    if "one_of" in check and value is not None and (not isinstance(value, str) or value.lower() not in check["one_of"]):
        return f"unexpected argument {value!r} ({why})"
    if "prefix" in check and not (isinstance(value, str) and value.split(".")[0] == check["prefix"]):
        return f"argument {value!r} outside {check['prefix']} ({why})"
    if "max_length" in check and isinstance(value, Large | str) and _length(value) > int(check["max_length"]):
        return f"argument longer than {check['max_length']} ({why})"
    return None


def _check_severity(site: CallSite) -> Severity:
    check = _catalogue().arg_checks.get(site.callable, {})
    return Severity.parse(str(check.get("severity", "medium")))


def _length(value: Large | str) -> int:
    return value.length if isinstance(value, Large) else len(value)


def _is_torch_persid(pid: object) -> bool:
    return isinstance(pid, tuple) and bool(pid) and pid[0] in ("storage", "module")


def _persid_findings(ir: PickleStream, ctx: ScanContext) -> Iterator[Finding]:
    odd = [s for s in ir.persids if not _is_torch_persid(s.raw_args)]
    if not odd:
        return
    total = ir.call_counts.get("persistent_load", len(odd))
    yield ctx.finding(
        PERSID.id,
        f"{len(odd)} persistent id(s) that are not torch storage references ({total} persistent ids in total)",
        evidence="\n".join(s.text() for s in odd[:5]),
        offset=odd[0].offset,
        opcode_index=odd[0].opcode_index,
    )
