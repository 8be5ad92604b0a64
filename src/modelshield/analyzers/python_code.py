"""Static review of shipped Python code from its syntax tree (never imported or run).

Calls are resolved through the file's imports (``import os as o``, ``from subprocess import
Popen``) and ``getattr(module, "name")`` tricks, then judged: process execution, exec/eval/compile
(critical when fed base64/zlib/marshal/hex-decoded data), network access, native code, unsafe
deserialization, dynamic imports and file writes. Work done at import time (module or class body,
outside ``if __name__ == "__main__"``) raises the severity one step, since ``trust_remote_code``
runs it merely by loading the model. Evidence is ``file.py:LINE: code``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelshield.analyzers.interface import Analyzer, register_analyzer
from modelshield.formats.interface import ScanContext
from modelshield.formats.python_source import PythonSource
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

MAX_FINDINGS_PER_RULE = 25
_REVIEW = "Review this code before loading the model with trust_remote_code; remove it if it is not needed."

PROCESS = rule(
    "PY-PROCESS-EXEC",
    "Shipped code runs programs",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Python code shipped with the model starts processes (os.system, subprocess, exec*, spawn*).",
    _REVIEW,
    ("CWE-78",),
)
DYNAMIC_EXEC = rule(
    "PY-DYNAMIC-EXEC",
    "Shipped code executes dynamic code",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Python code shipped with the model calls exec/eval/compile or builds code objects at run time.",
    _REVIEW,
    ("CWE-95",),
)
DECODED_EXEC = rule(
    "PY-DECODED-EXEC",
    "Shipped code executes decoded data",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "exec/eval/compile is fed base64-, zlib-, marshal- or hex-decoded data: an obfuscated payload.",
    "Do not load this model; the payload is hidden on purpose.",
    ("CWE-95", "CWE-506"),
)
NETWORK = rule(
    "PY-NETWORK",
    "Shipped code opens network connections",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Python code shipped with the model uses sockets or HTTP clients (exfiltration, download of payloads).",
    _REVIEW,
    ("CWE-200",),
)
NATIVE = rule(
    "PY-NATIVE-CODE",
    "Shipped code calls native code",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Python code shipped with the model loads native libraries (ctypes, cffi), which escapes any review.",
    _REVIEW,
)
DESERIALIZE = rule(
    "PY-UNSAFE-DESERIALIZE",
    "Shipped code deserializes unsafely",
    Severity.HIGH,
    Category.VULNERABILITY,
    "Python code shipped with the model uses pickle/dill/joblib/torch.load/yaml.load/marshal, "
    "which run code embedded in the data they load.",
    "Load data with safe formats (safetensors, json) or weights_only=True.",
    ("CWE-502",),
)
DYNAMIC_IMPORT = rule(
    "PY-DYNAMIC-IMPORT",
    "Shipped code imports modules dynamically",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "Python code shipped with the model imports modules by computed name or from file paths.",
    _REVIEW,
)
FILE_WRITE = rule(
    "PY-FILE-WRITE",
    "Shipped code writes or deletes files",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "Python code shipped with the model writes, moves, deletes or changes permissions of files.",
    _REVIEW,
)

_PREFIXES: tuple[tuple[str, str], ...] = (
    ("os.system", PROCESS.id),
    ("os.popen", PROCESS.id),
    ("os.exec", PROCESS.id),
    ("os.spawn", PROCESS.id),
    ("os.posix_spawn", PROCESS.id),
    ("os.startfile", PROCESS.id),
    ("posix.system", PROCESS.id),
    ("nt.system", PROCESS.id),
    ("subprocess.", PROCESS.id),
    ("pty.spawn", PROCESS.id),
    ("commands.", PROCESS.id),
    ("asyncio.create_subprocess", PROCESS.id),
    ("builtins.exec", DYNAMIC_EXEC.id),
    ("builtins.eval", DYNAMIC_EXEC.id),
    ("builtins.compile", DYNAMIC_EXEC.id),
    ("types.FunctionType", DYNAMIC_EXEC.id),
    ("types.CodeType", DYNAMIC_EXEC.id),
    ("runpy.", DYNAMIC_EXEC.id),
    ("code.interact", DYNAMIC_EXEC.id),
    ("socket.", NETWORK.id),
    ("urllib.request.", NETWORK.id),
    ("urllib2.", NETWORK.id),
    ("urllib.urlopen", NETWORK.id),
    ("requests.", NETWORK.id),
    ("httpx.", NETWORK.id),
    ("http.client.", NETWORK.id),
    ("aiohttp.", NETWORK.id),
    ("ftplib.", NETWORK.id),
    ("smtplib.", NETWORK.id),
    ("telnetlib.", NETWORK.id),
    ("paramiko.", NETWORK.id),
    ("websocket.", NETWORK.id),
    ("ctypes.", NATIVE.id),
    ("cffi.", NATIVE.id),
    ("pickle.load", DESERIALIZE.id),
    ("_pickle.load", DESERIALIZE.id),
    ("cPickle.load", DESERIALIZE.id),
    ("dill.load", DESERIALIZE.id),
    ("cloudpickle.load", DESERIALIZE.id),
    ("joblib.load", DESERIALIZE.id),
    ("marshal.load", DESERIALIZE.id),
    ("shelve.open", DESERIALIZE.id),
    ("yaml.unsafe_load", DESERIALIZE.id),
    ("importlib.import_module", DYNAMIC_IMPORT.id),
    ("importlib.util.spec_from_file_location", DYNAMIC_IMPORT.id),
    ("importlib.machinery.SourceFileLoader", DYNAMIC_IMPORT.id),
    ("imp.load_", DYNAMIC_IMPORT.id),
    ("builtins.__import__", DYNAMIC_IMPORT.id),
    ("os.remove", FILE_WRITE.id),
    ("os.unlink", FILE_WRITE.id),
    ("os.rmdir", FILE_WRITE.id),
    ("os.removedirs", FILE_WRITE.id),
    ("os.rename", FILE_WRITE.id),
    ("os.replace", FILE_WRITE.id),
    ("os.chmod", FILE_WRITE.id),
    ("os.chown", FILE_WRITE.id),
    ("os.symlink", FILE_WRITE.id),
    ("shutil.rmtree", FILE_WRITE.id),
    ("shutil.move", FILE_WRITE.id),
    ("shutil.copy", FILE_WRITE.id),
)
_DECODERS = (
    "base64.",
    "zlib.decompress",
    "bz2.decompress",
    "lzma.decompress",
    "gzip.decompress",
    "codecs.decode",
    "marshal.loads",
    "binascii.",
    "bytes.fromhex",
)
_EXEC_CALLS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile"})
_BUILTINS = frozenset({"exec", "eval", "compile", "open", "__import__", "getattr", "bytes"})
_WRITE_METHODS = frozenset({"write_text", "write_bytes", "symlink_to", "rmtree"})


@dataclass
class _Review:
    source: PythonSource
    ctx: ScanContext
    aliases: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def report(self, rule_id: str, node: ast.AST, what: str, import_time: bool) -> None:
        count = self.counts.get(rule_id, 0)
        self.counts[rule_id] = count + 1
        if count >= MAX_FINDINGS_PER_RULE:
            return
        line = getattr(node, "lineno", 0)
        base = {r.id: r.severity for r in (PROCESS, DYNAMIC_EXEC, DECODED_EXEC, NETWORK, NATIVE, DESERIALIZE)}
        severity = base.get(rule_id, Severity.MEDIUM)
        if import_time:
            severity = Severity(min(severity + 1, Severity.CRITICAL))
        when = " at import time" if import_time else ""
        self.findings.append(
            self.ctx.finding(
                rule_id,
                f"{self.source.filename} calls {what}{when}",
                severity=severity,
                evidence=f"{self.source.filename}:{line}: {self.source.line(line)[:300]}",
                detail=f"line {line}",
            )
        )


def _collect_imports(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.asname:
                    aliases[name.asname] = name.name
                else:
                    root = name.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for name in node.names:
                if name.name != "*":
                    aliases[name.asname or name.name] = f"{node.module}.{name.name}"
    return aliases


def qualified(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """Dotted name a call target resolves to through the imports (``o.system`` → ``os.system``)."""
    if isinstance(node, ast.Name):
        if node.id in aliases:
            return aliases[node.id]
        return f"builtins.{node.id}" if node.id in _BUILTINS else node.id
    if isinstance(node, ast.Attribute):
        base = qualified(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Call) and qualified(node.func, aliases) == "builtins.getattr" and len(node.args) >= 2:
        target, name = node.args[0], node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            base = qualified(target, aliases)
            return f"{base}.{name.value}" if base else None
    if isinstance(node, ast.Call) and qualified(node.func, aliases) == "builtins.__import__" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _rule_for(name: str) -> str | None:
    for prefix, rule_id in _PREFIXES:
        if name == prefix or name.startswith(prefix):
            return rule_id
    return None


def _decoded(node: ast.AST, aliases: dict[str, str]) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            name = qualified(inner.func, aliases) or ""
            if name.startswith(_DECODERS) or name.endswith(".fromhex"):
                return True
    return False


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _visit(node: ast.AST, review: _Review, import_time: bool) -> None:
    stack: list[tuple[ast.AST, bool]] = [(node, import_time)]
    while stack:
        current, at_import = stack.pop()
        if isinstance(current, ast.Call):
            _judge_call(current, review, at_import)
        for child in ast.iter_child_nodes(current):
            nested = at_import and not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(current, ast.If) and _is_main_guard(current) and child is not current.test:
                nested = False
            stack.append((child, nested))


def _judge_call(call: ast.Call, review: _Review, import_time: bool) -> None:
    name = qualified(call.func, review.aliases)
    if name is None:
        if isinstance(call.func, ast.Attribute) and call.func.attr in _WRITE_METHODS:
            review.report(FILE_WRITE.id, call, f".{call.func.attr}()", import_time)
        return
    if name in _EXEC_CALLS and _decoded(call, review.aliases):
        review.report(DECODED_EXEC.id, call, f"{name.split('.')[-1]}() on decoded data", import_time)
        return
    if name == "builtins.open":
        if _writes(call):
            review.report(FILE_WRITE.id, call, "open() for writing", import_time)
        return
    if name in {"torch.load", "numpy.load", "np.load", "yaml.load"}:
        if _unsafe_load(name, call):
            review.report(DESERIALIZE.id, call, name, import_time)
        return
    rule_id = _rule_for(name)
    if rule_id is None and isinstance(call.func, ast.Attribute) and call.func.attr in _WRITE_METHODS:
        rule_id, name = FILE_WRITE.id, f".{call.func.attr}()"
    if rule_id is not None:
        review.report(rule_id, call, name, import_time)


def _keyword(call: ast.Call, key: str) -> object:
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def _writes(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) >= 2 else None
    value = mode.value if isinstance(mode, ast.Constant) else _keyword(call, "mode")
    return isinstance(value, str) and any(c in value for c in "wax+")


def _unsafe_load(name: str, call: ast.Call) -> bool:
    if name == "torch.load":
        return _keyword(call, "weights_only") is not True
    if name == "yaml.load":
        loader = _keyword(call, "Loader")
        loader = call.args[1] if loader is None and len(call.args) >= 2 else loader
        text = ast.unparse(loader) if isinstance(loader, ast.AST) else str(loader)
        return "Safe" not in text
    return _keyword(call, "allow_pickle") is True


def review_python(source: PythonSource, ctx: ScanContext) -> list[Finding]:
    """Every finding of the static review of ``source``."""
    review = _Review(source, ctx, _collect_imports(source.tree))
    _visit(source.tree, review, import_time=True)
    return sorted(review.findings, key=lambda f: (-f.severity, f.location.detail or ""))


@register_analyzer
class PythonCodeAnalyzer(Analyzer):
    """Reviews shipped Python source statically."""

    name = "python-code"
    handles = (PythonSource,)

    def analyze(self, ir: object, ctx: ScanContext) -> Iterator[Finding]:
        """Findings of :func:`review_python`."""
        assert isinstance(ir, PythonSource)
        yield from review_python(ir, ctx)
