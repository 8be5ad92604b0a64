"""TorchScript archives (``torch.jit.save``): recognise them and check their code.

A TorchScript archive is a PyTorch zip with ``code/`` (TorchScript source that ``torch.jit.load``
compiles), ``constants.pkl`` and ``data.pkl`` (pickles the zip reader yields as children),
``.debug_pkl`` files, and in old versions ``model.json`` / ``attributes.pkl``. TorchScript is a
restricted language, so the code is only checked statically for references to what it should
never touch: files, processes, Python's import machinery, or custom native operators.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence

from modelshield.formats.interface import ScanContext
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

DANGEROUS_CODE = rule(
    "TORCHSCRIPT-DANGEROUS-CODE",
    "TorchScript code references file, process or import machinery",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "The TorchScript code shipped in the model refers to operations that read or write files, run "
    "processes or import Python code. Exported models never need these; hand-written or "
    "tampered code does.",
    "Do not load this model; re-export it from trusted source code.",
)
CUSTOM_OP = rule(
    "TORCHSCRIPT-CUSTOM-OP",
    "TorchScript code calls custom native operators",
    Severity.INFO,
    Category.UNSAFE_CONFIG,
    "The code calls operators outside PyTorch's built-in namespaces. They only exist after a "
    "native library is loaded, and that library is not part of the model.",
    "Make sure the extension library that provides these operators is trusted.",
)

#: Operator namespaces PyTorch itself (and torchvision) provide.
BUILTIN_OP_NAMESPACES = frozenset(
    {
        "aten",
        "prim",
        "quantized",
        "_quantized",
        "prepacked",
        "_caffe2",
        "torchvision",
        "profiler",
        "cuda",
        "_c10d_functional",
        "c10d",
        "c10d_functional",
        "_dtensor",
        "quantized_decomposed",
        "mkldnn",
        "mkldnn_prepacked",
        "onednn",
        "fbgemm",
        "sparse",
        "xnnpack",
        "vulkan",
        "metal",
        "_test",
        "inductor",
        "higher_order",
        "rngprims",
    }
)
# Compiled on first use: a plain PyTorch zip only asks is_torchscript(), which rarely needs one.


@functools.cache
def _dangerous() -> re.Pattern[str]:
    return re.compile(
        r"""\b(?:torch\.from_file|ops\.aten\.from_file|aten::from_file|__import__|__builtins__|importlib|subprocess
    |os\.(?:system|popen|exec\w*|spawn\w*|remove|unlink|rmdir|environ|fork|kill)|sys\.modules|builtins\.
    |(?<![\w.])(?:eval|exec|compile|open|globals|locals|breakpoint)\s*\(
    |ctypes|socket|shutil|pickle\.loads?|marshal|load_library)\b""",
        re.VERBOSE,
    )


@functools.cache
def _custom_op() -> re.Pattern[str]:
    return re.compile(r"\bops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")


@functools.cache
def _code() -> re.Pattern[str]:
    return re.compile(r"(?:^|/)code/.+\.py$")


def is_code_member(name: str) -> bool:
    """True for TorchScript source members (``<root>/code/...py``)."""
    return bool(_code().search(name))


def is_torchscript(names: Sequence[str]) -> bool:
    """True when member names say TorchScript archive (code, constants, or old model.json)."""
    for name in names:
        if ".py" not in name and not name.endswith(("constants.pkl", "model.json")):
            continue  # neither test below can pass (the quick filter runs on every member of every zip)
        base = name.rsplit("/", 1)[-1]
        if is_code_member(name) or (base in ("constants.pkl", "model.json") and name.count("/") <= 1):
            return True
    return False


@functools.cache
def _string_literal() -> re.Pattern[str]:
    return re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""")


def _blank_strings(source: str) -> str:
    """Replace string literals by empty quotes of the same length (exception names are not code)."""
    return _string_literal().sub(lambda m: m.group(0)[0] * 2 + " " * (len(m.group(0)) - 2), source)


def check_code(name: str, source: str, ctx: ScanContext) -> Iterator[Finding]:
    """Findings about one TorchScript source file (one finding per rule and file).

    String literals are blanked first: ``ops.prim.RaiseException(msg, "builtins.ValueError")``
    names an exception type, it does not reach Python's builtins.
    """
    code = _blank_strings(source)
    dangerous = _dangerous()
    hits = sorted({m.group(0).strip() for m in dangerous.finditer(code)})
    if hits:
        first = dangerous.search(code)
        line = source.count("\n", 0, first.start()) + 1 if first else None
        yield ctx.finding(
            DANGEROUS_CODE.id,
            f"TorchScript code {name!r} references {', '.join(hits[:8])}",
            evidence=_line(source, line),
            detail=f"{name} line {line}",
        )
    custom = sorted(
        {f"torch.ops.{ns}.{op}" for ns, op in _custom_op().findall(source) if ns not in BUILTIN_OP_NAMESPACES}
    )
    if custom:
        yield ctx.finding(
            CUSTOM_OP.id, f"TorchScript code {name!r} calls custom operators: {', '.join(custom[:8])}", detail=name
        )


def _line(source: str, line: int | None) -> str:
    if line is None:
        return ""
    return source.splitlines()[line - 1].strip()[:300]
