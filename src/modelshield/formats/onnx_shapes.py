"""Allocations an ONNX graph asks for at run time, computed from its constants (no runtime used).

``ConstantOfShape``, ``Expand``, ``Tile``, ``Range``, ``Reshape`` (and ``Resize``/``Upsample`` by
constant sizes) take the shape of the tensor they create from another tensor. When that tensor is a
constant (an initializer, a ``Constant`` node, or integer arithmetic on constants folded here), the
size of the result is known before the model runs: a graph that asks for 2**50 elements exhausts the
memory of whatever loads it (a denial of service hidden in a tiny file).

The folding is deliberately small and bounded: integer vectors of at most ``MAX_KEPT_VALUES`` values,
through the shape-plumbing operators exporters emit (Identity, Cast, Concat, Unsqueeze, Squeeze,
Reshape, Flatten, Mul, Add, Sub, Max, Abs, Neg). Anything else is unknown and never reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from modelshield.formats.interface import ScanContext
from modelshield.formats.onnx_ir import MAX_KEPT_VALUES, OnnxGraph, OnnxModel, OnnxNode
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

#: A tensor of more elements than this, created from constants, is reported (2**32: 4 GiB even of bytes).
MAX_CONSTANT_ELEMENTS = 1 << 32

SHAPE_BOMB = rule(
    "ONNX-SHAPE-BOMB",
    "ONNX operator allocates an absurd tensor from constant shapes",
    Severity.HIGH,
    Category.VULNERABILITY,
    "An operator that creates a tensor of a given shape (ConstantOfShape, Expand, Tile, Range, Reshape, "
    "Resize) gets that shape from constants in the graph, and the result would hold more than 2**32 "
    "elements. Loading or running the model makes the runtime allocate it: memory exhaustion (denial "
    "of service) from a file of a few hundred bytes.",
    "Do not run the model; re-export it from a trusted source and check the shapes its exporter wrote.",
    ("CWE-789", "CWE-400"),
)

Values = tuple[int, ...]


def check_allocations(model: OnnxModel, ctx: ScanContext) -> Iterator[Finding]:
    """One high finding per operator whose constant shape asks for an absurd allocation."""
    for graph in model.all_graphs():
        yield from _check_graph(graph, ctx)


def _check_graph(graph: OnnxGraph, ctx: ScanContext) -> Iterator[Finding]:
    known: dict[str, Values] = {t.name: t.values for t in graph.tensors if t.name and t.values is not None}
    for index, node in enumerate(graph.nodes):
        ins = [known.get(name) for name in node.inputs]
        size = _allocation(node, ins)
        if size is not None and size[0] > MAX_CONSTANT_ELEMENTS:
            elements, how = size
            yield ctx.finding(
                SHAPE_BOMB.id,
                f"{node.op_type} node {node.name or index!r} in {graph.path} would allocate {elements:.3g} "
                f"elements ({how})",
                evidence=f"{node.op_type}({', '.join(node.inputs)}) -> {', '.join(node.outputs)}; {how}",
                detail=node.name or f"{graph.path}#{index}",
            )
        folded = _fold(node, ins)
        if folded is not None and node.outputs and len(folded) <= MAX_KEPT_VALUES:
            known[node.outputs[0]] = folded


def _product(values: Values) -> int:
    total = 1
    for v in values:
        total *= max(v, 1)
    return total


def _allocation(node: OnnxNode, ins: list[Values | None]) -> tuple[int, str] | None:
    """(elements, explanation) of the tensor ``node`` creates, when constants decide it."""
    op = node.op_type
    first = ins[0] if ins else None
    second = ins[1] if len(ins) > 1 else None
    if op == "ConstantOfShape" and first is not None:
        return _product(first), f"shape {list(first)}"
    if op == "Expand" and second is not None:
        return _product(second), f"shape {list(second)}"
    if op == "Tile" and second is not None:
        base = len(first) if first is not None else 1  # a constant input has as many elements as values
        return base * _product(second), f"repeats {list(second)}"
    if op == "Reshape" and second is not None:
        dims = [d for d in second if d > 0]
        return _product(tuple(dims)), f"shape {list(second)}"
    if op == "Range" and len(ins) >= 3 and all(v is not None and len(v) == 1 for v in ins[:3]):
        start, limit, delta = (v[0] for v in ins[:3] if v is not None)
        if delta:
            return max(0, -(-(limit - start) // delta)), f"start {start}, limit {limit}, delta {delta}"
    if op in ("Resize", "Upsample") and len(ins) >= 4 and ins[3] is not None:
        return _product(ins[3]), f"sizes {list(ins[3])}"
    return None


def _elementwise(op: Callable[[int, int], int], a: Values, b: Values) -> Values | None:
    if len(a) == len(b):
        return tuple(op(x, y) for x, y in zip(a, b, strict=True))
    if len(a) == 1:
        return tuple(op(a[0], y) for y in b)
    if len(b) == 1:
        return tuple(op(x, b[0]) for x in a)
    return None


_BINARY: dict[str, Callable[[int, int], int]] = {
    "Mul": lambda x, y: x * y,
    "Add": lambda x, y: x + y,
    "Sub": lambda x, y: x - y,
    "Max": max,
}
_PASS_THROUGH = frozenset({"Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten"})
#: Folded values beyond this magnitude stop being folded (no unbounded integer growth).
_MAX_MAGNITUDE = 1 << 63


def _fold(node: OnnxNode, ins: list[Values | None]) -> Values | None:
    """The integer values of ``node``'s first output when its inputs are known constants."""
    op = node.op_type
    if op == "Constant":
        tensor = node.tensors.get("value")
        if tensor is not None:
            return tensor.values
        return node.ints.get("value_ints") or node.ints.get("value_int")
    if not ins or ins[0] is None:
        return None
    first = ins[0]
    result: Values | None = None
    if op in _PASS_THROUGH:
        result = first
    elif op == "Concat" and all(v is not None for v in ins):
        result = tuple(x for v in ins if v is not None for x in v)
    elif op in ("Abs", "Neg"):
        result = tuple(abs(x) if op == "Abs" else -x for x in first)
    elif op in _BINARY and len(ins) == 2 and ins[1] is not None:
        result = _elementwise(_BINARY[op], first, ins[1])
    if result is None or len(result) > MAX_KEPT_VALUES or any(abs(x) >= _MAX_MAGNITUDE for x in result):
        return None
    return result
