"""Say what a :class:`~modelshield.tamper.diff.ModelDiff` found: a text diff, JSON, and findings."""

from __future__ import annotations

from typing import Any

from modelshield.rules import Rule
from modelshield.tamper import rules
from modelshield.tamper.compare import TensorDelta
from modelshield.tamper.diff import ModelDiff
from modelshield.types import Finding, Location, Severity

_MARK = {"added": "+", "removed": "-", "reshaped": "!", "retyped": "!", "changed": "~", "rounding": "≈"}
_MARK.update({"unreadable": "?"})


def describe(delta: TensorDelta) -> str:
    """One line for a tensor that is not identical."""
    mark = _MARK.get(delta.status, " ")
    shape = list(delta.cand_shape or delta.ref_shape)
    dtype = delta.cand_dtype or delta.ref_dtype
    if delta.ref_dtype and delta.cand_dtype and delta.ref_dtype != delta.cand_dtype:
        dtype = f"{delta.ref_dtype}->{delta.cand_dtype}"
    head = f"{mark} {delta.name} {shape} {dtype}"
    if delta.status in ("added", "removed"):
        return f"{head}  ({delta.status})"
    if delta.status in ("reshaped", "retyped", "unreadable"):
        return f"{head}  ({delta.status}: {delta.note})"
    text = f"{head}  {delta.frac_changed:.1%} of elements changed, |d|/|w| = {delta.rel_change:.2e}"
    if delta.status == "rounding":
        exact = "exact" if delta.exact_rounding else "within one step"
        return f"{text}, {delta.round_fmt} rounding ({exact})"
    text += f", {delta.frac_beyond:.1%} beyond rounding"
    if delta.rank is not None:
        rank = f">{delta.rank - 1}" if delta.high_rank else str(delta.rank)
        text += f", rank {rank} ({delta.energy:.1%} of the change)"
    return text + (f" [{delta.note}]" if delta.note else "")


def render_text(diff: ModelDiff, *, limit: int = 60) -> str:
    """The diff as text: header lines, one line per differing tensor, problems, the verdict."""
    lines = [f"--- reference: {diff.reference} ({diff.ref_tensors} tensors)"]
    lines.append(f"+++ candidate: {diff.candidate} ({diff.cand_tensors} tensors)")
    same = diff.by_status("identical")
    if same:
        lines.append(f"= {len(same)} tensors identical")
    rounding = diff.by_status("rounding")
    if len(rounding) > 5:
        fmts = "/".join(sorted({d.round_fmt for d in rounding}))
        exact = sum(d.exact_rounding for d in rounding)
        lines.append(f"≈ {len(rounding)} tensors differ only by {fmts} rounding ({exact} exactly rounded)")
    differing = [d for d in diff.deltas if d.status != "identical" and (len(rounding) <= 5 or d.status != "rounding")]
    lines.extend(describe(d) for d in differing[:limit])
    if len(differing) > limit:
        lines.append(f"  ... {len(differing) - limit} more differing tensors")
    lines.extend(f"! {message}" for _rule, message, _evidence in diff.problems[:20])
    c = diff.classification
    lines.append(f"change: {c.kind}: {c.summary}")
    if c.layers:
        lines.append(f"layers: {', '.join(c.layers[:32])}" + (" ..." if len(c.layers) > 32 else ""))
    return "\n".join(lines) + "\n"


def diff_dict(diff: ModelDiff) -> dict[str, Any]:
    """The diff as JSON-ready data."""
    c = diff.classification
    return {
        "reference": diff.reference,
        "candidate": diff.candidate,
        "classification": {
            "kind": c.kind,
            "summary": c.summary,
            "layers": list(c.layers),
            "tensors": list(c.tensors),
            "rank": c.rank,
        },
        "tensors": {"reference": diff.ref_tensors, "candidate": diff.cand_tensors},
        "identical": len(diff.by_status("identical")),
        "deltas": [_delta_dict(d) for d in diff.deltas if d.status != "identical"],
        "problems": [{"rule_id": r, "message": m, "evidence": e} for r, m, e in diff.problems],
        "findings": [f.to_dict() for f in diff_findings(diff)],
    }


def _delta_dict(d: TensorDelta) -> dict[str, Any]:
    return {
        "name": d.name,
        "status": d.status,
        "dtype": [d.ref_dtype, d.cand_dtype],
        "shape": [list(d.ref_shape), list(d.cand_shape)],
        "fraction_changed": d.frac_changed,
        "fraction_beyond_rounding": d.frac_beyond,
        "relative_change": d.rel_change if d.rel_change != float("inf") else None,
        "max_abs_change": d.max_abs,
        "rank": d.rank,
        "high_rank": d.high_rank,
        "rank_energy": d.energy,
        "rounding_format": d.round_fmt,
        "exact_rounding": d.exact_rounding,
        "note": d.note,
    }


def diff_findings(diff: ModelDiff, path: str | None = None) -> list[Finding]:
    """Findings of the diff (for ``scan --reference`` and the policy)."""
    where = path or diff.candidate
    out: list[Finding] = []

    def add(rule: Rule, message: str, evidence: str = "", detail: str | None = None) -> None:
        out.append(
            Finding(
                rule.id,
                rule.severity,
                rule.category,
                message,
                Location(where, None, None, None, detail),
                evidence[:4000],
                rule.references,
                rule.remediation,
            )
        )

    for rule_id, message, evidence in diff.problems:
        add(_rule(rule_id), f"against the base {diff.reference}: {message}", evidence)
    for d in diff.deltas:
        _structural(d, add)
    _weights(diff, add)
    return out


def _rule(rule_id: str) -> Rule:
    from modelshield.rules import get_rule

    return get_rule(rule_id)


def _structural(d: TensorDelta, add: Any) -> None:
    if d.status == "added":
        add(rules.EXTRA_TENSOR, f"tensor {d.name} is not in the base model", f"shape={list(d.cand_shape)}", d.name)
    elif d.status == "removed":
        add(rules.MISSING_TENSOR, f"tensor {d.name} of the base model is missing", f"shape={list(d.ref_shape)}", d.name)
    elif d.status == "reshaped":
        add(rules.RESHAPED, f"tensor {d.name} changed shape {d.note}", d.note, d.name)
    elif d.status in ("retyped", "unreadable"):
        add(rules.UNREADABLE_TENSOR, f"tensor {d.name} could not be compared: {d.note}", d.note, d.name)
    elif d.ref_dtype != d.cand_dtype and d.status in ("identical", "rounding"):
        add(rules.RETYPED, f"tensor {d.name} stored as {d.cand_dtype} (base: {d.ref_dtype})", "", d.name)


def _weights(diff: ModelDiff, add: Any) -> None:
    c = diff.classification
    evidence = "; ".join(describe(d) for d in diff.by_status("changed")[:12])
    if c.kind in ("rank-1-edit", "low-rank-edit", "merged-lora"):
        add(rules.LOW_RANK_EDIT, f"{c.summary} against the base {diff.reference}", evidence, ", ".join(c.layers))
    elif c.kind in ("localised-edit", "fine-tune") or (diff.by_status("changed") and c.kind != "header-tampering"):
        add(rules.UNEXPLAINED_CHANGE, f"{c.summary} against the base {diff.reference}", evidence, ", ".join(c.layers))
    elif c.kind == "round-trip":
        add(rules.ROUND_TRIP, f"{c.summary} against the base {diff.reference}")


def severity_of(diff: ModelDiff) -> Severity:
    """Highest severity among the diff's findings (INFO when there are none)."""
    return max((f.severity for f in diff_findings(diff)), default=Severity.INFO)
