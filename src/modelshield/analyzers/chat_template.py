"""Static analysis of Jinja2 chat templates (GGUF metadata, tokenizer_config.json).

Chat templates are rendered by inference servers, some without a sandbox (CVE-2024-34359 in
llama-cpp-python) and some with sandboxes that leak through Python object graphs. A template that
walks ``__class__``/``__globals__``/``__builtins__`` or reaches ``os.popen`` runs code on the server.

The template is parsed with Jinja2 (parsing builds an AST and runs nothing) and the AST is walked:
attribute names (``.x``, ``['x']``, ``|attr('x')``, with constant string building such as ``~``,
``+``, ``*`` and ``|join`` folded), string constants, and references to known sandbox-escape
gadgets are judged. The template is never rendered.

Entry point: :func:`analyze_template`. Other readers call it with the template source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.formats.interface import ScanContext
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

SSTI_REFERENCES = ("CVE-2024-34359", "CWE-1336", "CWE-94")

TEMPLATE_SSTI = rule(
    "TEMPLATE-SSTI",
    "Chat template escapes the template sandbox",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The Jinja2 chat template walks Python internals (dunder attributes such as __class__, __globals__, "
    "__builtins__, __subclasses__, __import__) or reaches process execution (os, popen, eval, exec). "
    "Inference servers render chat templates when the model is loaded or prompted; such a template "
    "runs code on the server (server-side template injection, as in CVE-2024-34359 for "
    "llama-cpp-python and the same class in other servers).",
    "Do not serve this model. Replace the chat template with the upstream model's template.",
    SSTI_REFERENCES,
)
TEMPLATE_SUSPICIOUS = rule(
    "TEMPLATE-SUSPICIOUS",
    "Chat template uses template-engine internals",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "The chat template accesses private attributes, builds attribute names at render time (|attr with a "
    "computed name), or touches objects that only serve sandbox escapes (self, request, config, "
    "url_for, lipsum, cycler.__x ...). Real chat templates do none of this.",
    "Review the template; replace it with the upstream model's template.",
    SSTI_REFERENCES,
)
TEMPLATE_UNANALYSED = rule(
    "TEMPLATE-UNANALYSED",
    "Chat template could not be analysed",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The chat template does not parse as Jinja2 (or is too large or too deeply nested to analyse), so "
    "nothing vouches for it. Some servers use lenient template engines that may still render it.",
    "Review the template by hand, or replace it with the upstream model's template.",
)

MAX_TEMPLATE_CHARS = 1 << 20
MAX_FOLD_DEPTH = 32
MAX_FOLD_CHARS = 4096

_DUNDER = re.compile(r"__[A-Za-z0-9_]*__")
#: Attribute names that reach code execution or frames (dunders are judged separately).
EXEC_ATTRS = frozenset(
    {
        "popen",
        "Popen",
        "eval",
        "exec",
        "execfile",
        "import_module",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "spawnl",
        "spawnv",
        "spawnve",
        "execv",
        "execve",
        "execl",
        "load_module",
        "subprocess",
        "builtins",
        "func_globals",
        "func_code",
        "f_globals",
        "f_locals",
        "f_back",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "tb_frame",
        "co_code",
        "mro",
    }
)
#: Bare names that have no business in a chat template and mean code execution.
EXEC_NAMES = frozenset(
    {"os", "subprocess", "sys", "builtins", "eval", "exec", "getattr", "globals", "open", "compile", "importlib"}
)
#: Objects of Jinja2/Flask/the sandbox whose attributes lead to module globals.
GADGETS = frozenset(
    {
        "self",
        "request",
        "config",
        "url_for",
        "get_flashed_messages",
        "session",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "range",
        "dict",
    }
)
#: Gadgets whose mere mention is suspicious (chat template environments do not define them).
FOREIGN_GADGETS = frozenset({"self", "request", "config", "url_for", "get_flashed_messages", "lipsum"})
#: Filters that take an attribute name as argument or ``attribute=`` keyword.
_ATTR_FILTERS = frozenset({"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"})


@dataclass(frozen=True, slots=True)
class _Hit:
    rule_id: str
    token: str
    message: str
    lineno: int


def analyze_template(source: str, ctx: ScanContext, where: str) -> Iterator[Finding]:
    """Judge a Jinja2 chat template without rendering it; ``where`` names it in findings.

    Yields TEMPLATE-SSTI (critical) for sandbox escapes, TEMPLATE-SUSPICIOUS (high) for engine
    internals, TEMPLATE-UNANALYSED (medium, coverage) when the template cannot be parsed.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        yield ctx.finding(
            TEMPLATE_UNANALYSED.id,
            f"{where}: chat template of {len(source)} characters is too large to analyse",
            detail=where,
        )
        return
    from jinja2.exceptions import TemplateError

    from modelshield.analyzers._chat_template_ast import find_hits

    try:
        hits = find_hits(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        yield ctx.finding(
            TEMPLATE_UNANALYSED.id,
            f"{where}: chat template does not parse as Jinja2: {exc.message or exc}"
            + (f" (line {line})" if line else ""),
            evidence=_line(source, line or 0),
            detail=where,
        )
        return
    except ValueError as exc:  # e.g. an integer literal longer than int() accepts
        yield ctx.finding(TEMPLATE_UNANALYSED.id, f"{where}: chat template rejected by the parser: {exc}", detail=where)
        return
    except (RecursionError, MemoryError):
        yield ctx.finding(TEMPLATE_UNANALYSED.id, f"{where}: chat template nested too deeply to analyse", detail=where)
        return
    yield from _report(hits, source, ctx, where)


def _report(hits: list[_Hit], source: str, ctx: ScanContext, where: str) -> Iterator[Finding]:
    """One finding per rule, naming every distinct construct (first occurrence's line as evidence)."""
    by_rule: dict[str, dict[str, _Hit]] = {}
    for hit in hits:
        by_rule.setdefault(hit.rule_id, {}).setdefault(hit.token, hit)
    for rule_id in (TEMPLATE_SSTI.id, TEMPLATE_SUSPICIOUS.id):
        found = sorted(by_rule.get(rule_id, {}).values(), key=lambda h: h.lineno)
        if not found:
            continue
        shown = "; ".join(f"{h.message} (line {h.lineno})" for h in found[:8])
        more = f"; and {len(found) - 8} more" if len(found) > 8 else ""
        lines = dict.fromkeys(h.lineno for h in found)
        yield ctx.finding(
            rule_id,
            f"{where}: {shown}{more}",
            evidence="\n".join(_line(source, n) for n in list(lines)[:5]),
            detail=where,
        )


def _line(source: str, lineno: int) -> str:
    lines = source.splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()[:400]
    return source[:400]
