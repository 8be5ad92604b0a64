"""``modelshield diff REFERENCE CANDIDATE``: tensor-by-tensor comparison and what kind of change it is.

Tensors are compared one at a time (see :mod:`modelshield.tamper.compare`), so memory stays flat
however large the models. The whole change is then classified:

* ``identical``; ``round-trip`` (every element within one rounding step: benign dtype conversion or
  re-quantisation);
* ``rank-1-edit`` (one matrix, rank 1: ROME-like), ``low-rank-edit`` (rank <= k in a few layers:
  MEMIT-like), ``merged-lora`` (the same low rank across most layers);
* ``localised-edit`` (dense changes confined to a few layers), ``fine-tune`` (broad changes);
* ``architecture-change`` (tensors added, removed, renamed or reshaped) and ``header-tampering``
  (bytes no tensor covers, overlapping tensors) take precedence.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from modelshield.tamper.compare import TensorDelta, compare_tensor
from modelshield.tamper.tensors import TensorRef, TensorTable, open_table

_LAYER = re.compile(
    r"^(?P<prefix>.*?(?:^|\.)(?:layers|layer|h|blocks|block|blk|encoder\.layer|decoder\.layers))\.(?P<i>\d+)(?:\.|$)"
)


def layer_of(name: str) -> tuple[str, int] | None:
    """``(stack prefix, index)`` of a per-layer tensor name, e.g. ``("model.layers", 3)``; else None."""
    match = _LAYER.match(name)
    return (match["prefix"], int(match["i"])) if match else None


@dataclass(frozen=True, slots=True)
class Classification:
    """The kind of the whole change, a one-line summary, and the layers/tensors it touches."""

    kind: str
    summary: str
    layers: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    rank: int | None = None


@dataclass(slots=True)
class ModelDiff:
    """The result of comparing two models."""

    reference: str
    candidate: str
    ref_tensors: int
    cand_tensors: int
    deltas: list[TensorDelta] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    classification: Classification = Classification("identical", "no difference")

    def by_status(self, *statuses: str) -> list[TensorDelta]:
        """Deltas with one of ``statuses``."""
        return [d for d in self.deltas if d.status in statuses]


def diff_models(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    on_tensor: Callable[[TensorDelta], None] | None = None,
) -> ModelDiff:
    """Compare ``candidate`` with ``reference`` tensor by tensor and classify the change."""
    ref_table, cand_table = open_table(reference), open_table(candidate)
    result = ModelDiff(str(reference), str(candidate), len(ref_table.tensors), len(cand_table.tensors))
    result.problems = list(cand_table.problems)
    handles: dict[str, int] = {}
    try:
        for name, cand in cand_table.tensors.items():
            ref = ref_table.tensors.get(name)
            if ref is None:
                delta = TensorDelta(name, "added", cand_dtype=cand.dtype, cand_shape=cand.shape, numel=cand.numel)
            else:
                delta = _compare(ref, cand, handles)
            result.deltas.append(delta)
            if on_tensor:
                on_tensor(delta)
        for name, ref in ref_table.tensors.items():
            if name not in cand_table.tensors:
                result.deltas.append(TensorDelta(name, "removed", ref.dtype, ref_shape=ref.shape, numel=ref.numel))
    finally:
        for fd in handles.values():
            os.close(fd)
    result.classification = classify(result, ref_table)
    return result


def _compare(ref: TensorRef, cand: TensorRef, handles: dict[str, int]) -> TensorDelta:
    from modelshield.errors import FormatError

    try:
        return compare_tensor(ref, cand, _fd(ref.file, handles), _fd(cand.file, handles))
    except (FormatError, OSError, ValueError) as exc:
        return TensorDelta(ref.name, "unreadable", ref.dtype, cand.dtype, ref.shape, cand.shape, note=str(exc))


def _fd(path: str, handles: dict[str, int]) -> int:
    if path not in handles:
        handles[path] = os.open(path, os.O_RDONLY)
    return handles[path]


def classify(diff: ModelDiff, ref_table: TensorTable) -> Classification:
    """Name the kind of change (see the module docstring)."""
    if diff.problems:
        first = diff.problems[0][1]
        return Classification("header-tampering", f"weight file layout tampered with: {first}")
    structural = diff.by_status("added", "removed", "reshaped")
    if structural:
        names = tuple(d.name for d in structural)
        counts = Counter(d.status for d in structural)
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return Classification("architecture-change", f"tensors {text}: {_names(names)}", _layers(names), names)
    edited = diff.by_status("changed", "retyped", "unreadable")
    if not edited:
        if diff.by_status("rounding"):
            fmts = sorted({d.round_fmt for d in diff.by_status("rounding")})
            return Classification("round-trip", f"values differ only by {'/'.join(fmts)} rounding (benign)")
        return Classification("identical", "every tensor is identical")
    return _classify_edit(edited, ref_table)


def _classify_edit(edited: list[TensorDelta], ref_table: TensorTable) -> Classification:
    names = tuple(d.name for d in edited)
    layers = _layers(names)
    stacks = Counter(key[0] for n in ref_table.tensors if (key := layer_of(n)))
    depth = max((len({k[1] for n in ref_table.tensors if (k := layer_of(n)) and k[0] == s}) for s in stacks), default=0)
    touched = len(layers)
    if all(d.low_rank for d in edited):
        ranks = [d.rank or 0 for d in edited]
        top = max(ranks)
        if len(edited) == 1 and top == 1:
            return Classification("rank-1-edit", f"rank-1 edit (ROME-like) of {names[0]}", layers, names, 1)
        common, votes = Counter(ranks).most_common(1)[0]
        if depth and touched >= max(2, (depth + 1) // 2) and votes >= 0.75 * len(ranks):
            text = f"merged LoRA of rank {common} in {touched} of {depth} layers"
            return Classification("merged-lora", text, layers, names, common)
        text = f"low-rank edit (MEMIT-like, rank <= {top}) of {len(names)} matrices in {_list(layers)}"
        return Classification("low-rank-edit", text, layers, names, top)
    share = len(edited) / max(len(ref_table.tensors), 1)
    if touched and depth and touched <= max(2, depth // 4) and share <= 0.25 and _all_in_layers(names):
        return Classification("localised-edit", f"dense edit confined to {_list(layers)}", layers, names)
    text = f"broad fine-tune: {len(edited)} of {len(ref_table.tensors)} tensors changed in {touched} layers"
    return Classification("fine-tune", text, layers, names)


def _all_in_layers(names: tuple[str, ...]) -> bool:
    return all(layer_of(n) is not None for n in names)


def _layers(names: tuple[str, ...]) -> tuple[str, ...]:
    keys = sorted({k for n in names if (k := layer_of(n))})
    return tuple(f"{prefix}.{index}" for prefix, index in keys)


def _list(items: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _names(names: tuple[str, ...]) -> str:
    return _list(names, 4)
