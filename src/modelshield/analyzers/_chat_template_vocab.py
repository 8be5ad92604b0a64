"""What a chat template is judged by: the rules, the names and attributes that mean code execution.

Shared by :mod:`modelshield.analyzers.chat_template` (the entry point, which reports) and
:mod:`modelshield.analyzers._chat_template_ast` (the Jinja2 AST walk, which finds hits), so that
neither imports the other back. Imports no Jinja2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelshield.rules import rule
from modelshield.types import Category, Severity

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
