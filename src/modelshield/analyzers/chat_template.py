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

from collections.abc import Iterator

from modelshield.analyzers._chat_template_vocab import (
    EXEC_ATTRS,
    EXEC_NAMES,
    FOREIGN_GADGETS,
    GADGETS,
    MAX_FOLD_CHARS,
    MAX_FOLD_DEPTH,
    SSTI_REFERENCES,
    TEMPLATE_SSTI,
    TEMPLATE_SUSPICIOUS,
    TEMPLATE_UNANALYSED,
    _Hit,
)
from modelshield.formats.interface import ScanContext
from modelshield.types import Finding

__all__ = [
    "EXEC_ATTRS",
    "EXEC_NAMES",
    "FOREIGN_GADGETS",
    "GADGETS",
    "MAX_FOLD_CHARS",
    "MAX_FOLD_DEPTH",
    "MAX_TEMPLATE_CHARS",
    "SSTI_REFERENCES",
    "TEMPLATE_SSTI",
    "TEMPLATE_SUSPICIOUS",
    "TEMPLATE_UNANALYSED",
    "analyze_template",
]

MAX_TEMPLATE_CHARS = 1 << 20


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
