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

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.parser import Parser

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


class _GenerationTag(Extension):
    """Parse-only support for the ``{% generation %}`` block of Hugging Face templates."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _environment() -> Environment:
    return Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag])


_ENV = _environment()


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
    try:
        tree = _ENV.parse(source)
        hits = list(_walk(tree))
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


def _walk(tree: nodes.Node) -> Iterator[_Hit]:
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        yield from _judge(node)
        stack.extend(node.iter_child_nodes())


def _judge(node: nodes.Node) -> Iterator[_Hit]:
    line = node.lineno or 0
    if isinstance(node, nodes.Getattr):
        yield from _judge_attr(node.attr, line, computed=False)
        yield from _judge_gadget_access(node.node, node.attr, line)
    elif isinstance(node, nodes.Getitem):
        name = _fold(node.arg, 0)
        if name is not None:
            yield from _judge_attr(name, line, computed=False, item=True)
            yield from _judge_gadget_access(node.node, name, line, item=True)
        elif _builds_string(node.arg):
            yield _Hit(TEMPLATE_SUSPICIOUS.id, "[computed]", "item name built at render time", line)
    elif isinstance(node, nodes.Filter):
        yield from _judge_filter(node, line)
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        yield from _judge_name(node.name, line)
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        for match in _DUNDER.findall(node.value):
            yield _Hit(TEMPLATE_SSTI.id, match, f"string constant names the Python internal {match}", line)
    if isinstance(node, nodes.Add | nodes.Mul | nodes.Concat | nodes.Filter):
        for match in _DUNDER.findall(_fold(node, 0) or ""):
            yield _Hit(TEMPLATE_SSTI.id, match, f"string built from pieces names the Python internal {match}", line)


def _judge_attr(name: str, line: int, *, computed: bool, item: bool = False) -> Iterator[_Hit]:
    how = "computed attribute" if computed else ("item" if item else "attribute")
    if _DUNDER.fullmatch(name) or name.startswith("__"):
        yield _Hit(TEMPLATE_SSTI.id, name, f"access to Python internal {how} {name!r}", line)
    elif name.startswith("_"):
        yield _Hit(TEMPLATE_SUSPICIOUS.id, name, f"access to private {how} {name!r}", line)
    elif name in EXEC_ATTRS and not item:
        yield _Hit(TEMPLATE_SSTI.id, name, f"access to code-execution {how} {name!r}", line)


def _judge_gadget_access(target: nodes.Node, name: str, line: int, item: bool = False) -> Iterator[_Hit]:
    if isinstance(target, nodes.Name) and target.name in GADGETS:
        sep = f"[{name!r}]" if item else f".{name}"
        yield _Hit(
            TEMPLATE_SUSPICIOUS.id,
            f"{target.name}{sep}",
            f"attribute walk from sandbox-escape gadget {target.name}{sep}",
            line,
        )


def _judge_filter(node: nodes.Filter, line: int) -> Iterator[_Hit]:
    if node.name not in _ATTR_FILTERS:
        return
    args = list(node.args[:1]) if node.name == "attr" else []
    args += [kw.value for kw in node.kwargs if kw.key == "attribute"]
    if node.name in {"map", "selectattr", "rejectattr", "groupby"} and node.args:
        args.append(node.args[0])
    for arg in args:
        name = _fold(arg, 0)
        if name is not None:
            yield from _judge_attr(name, line, computed=not isinstance(arg, nodes.Const))
        elif node.name == "attr":
            yield _Hit(TEMPLATE_SUSPICIOUS.id, "|attr(computed)", "|attr with a name computed at render time", line)


def _judge_name(name: str, line: int) -> Iterator[_Hit]:
    if name.startswith("__") or name in EXEC_NAMES:
        yield _Hit(TEMPLATE_SSTI.id, name, f"reference to {name!r}", line)
    elif name in FOREIGN_GADGETS:
        yield _Hit(TEMPLATE_SUSPICIOUS.id, name, f"reference to sandbox-escape gadget {name!r}", line)


def _builds_string(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Concat | nodes.Mod):
        return True
    if isinstance(node, nodes.Add | nodes.Mul):
        return any(isinstance(n, nodes.Const) and isinstance(n.value, str) for n in (node.left, node.right))
    return isinstance(node, nodes.Filter) and node.name in {"join", "format", "replace", "reverse", "lower", "upper"}


def _fold(node: nodes.Node, depth: int) -> str | None:
    """The constant string an expression evaluates to, when it is built from constants only."""
    if depth > MAX_FOLD_DEPTH:
        return None
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, str) else None
    parts: list[str | None]
    if isinstance(node, nodes.Concat):
        parts = [_fold(n, depth + 1) for n in node.nodes]
    elif isinstance(node, nodes.Add):
        parts = [_fold(node.left, depth + 1), _fold(node.right, depth + 1)]
    elif isinstance(node, nodes.Mul):
        return _fold_repeat(node, depth)
    elif isinstance(node, nodes.Filter) and node.node is not None:
        return _fold_filter(node, depth)
    else:
        return None
    if any(p is None for p in parts):
        return None
    text = "".join(p for p in parts if p is not None)
    return text if len(text) <= MAX_FOLD_CHARS else None


def _fold_repeat(node: nodes.Mul, depth: int) -> str | None:
    text, count = node.left, node.right
    if isinstance(text, nodes.Const) and isinstance(text.value, int):
        text, count = count, text
    base = _fold(text, depth + 1)
    if base is None or not isinstance(count, nodes.Const) or type(count.value) is not int:
        return None
    if count.value < 0 or len(base) * count.value > MAX_FOLD_CHARS:
        return None
    return base * count.value


def _fold_filter(node: nodes.Filter, depth: int) -> str | None:
    assert node.node is not None
    if node.name == "join" and isinstance(node.node, nodes.List | nodes.Tuple):
        items = [_fold(n, depth + 1) for n in node.node.items]
        sep = _fold(node.args[0], depth + 1) if node.args else ""
        if sep is None or any(i is None for i in items):
            return None
        text = sep.join(i for i in items if i is not None)
        return text if len(text) <= MAX_FOLD_CHARS else None
    base = _fold(node.node, depth + 1)
    if base is None:
        return None
    if node.name in {"string", "e", "escape", "trim"} and not node.args:
        return base.strip() if node.name == "trim" else base
    if node.name == "reverse":
        return base[::-1]
    if node.name in {"lower", "upper"}:
        return base.lower() if node.name == "lower" else base.upper()
    if node.name == "replace" and len(node.args) == 2:
        old, new = _fold(node.args[0], depth + 1), _fold(node.args[1], depth + 1)
        if old is None or new is None or not old:
            return None
        text = base.replace(old, new)
        return text if len(text) <= MAX_FOLD_CHARS else None
    return None
