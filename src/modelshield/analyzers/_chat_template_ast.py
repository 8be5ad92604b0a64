"""The Jinja2-dependent half of :mod:`modelshield.analyzers.chat_template` (imported on first use).

Parsing builds an AST and runs nothing; the AST is walked iteratively and judged node by node.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import Environment, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from modelshield.analyzers._chat_template_vocab import (
    _ATTR_FILTERS,
    _DUNDER,
    EXEC_ATTRS,
    EXEC_NAMES,
    FOREIGN_GADGETS,
    GADGETS,
    MAX_FOLD_CHARS,
    MAX_FOLD_DEPTH,
    TEMPLATE_SSTI,
    TEMPLATE_SUSPICIOUS,
    _Hit,
)


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


def find_hits(source: str) -> list[_Hit]:
    """Parse ``source`` (never render it) and return every suspicious construct.

    Raises jinja2's TemplateError for templates that do not parse, ValueError or RecursionError
    for hostile literals or nesting.
    """
    return list(_walk(_ENV.parse(source)))


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
