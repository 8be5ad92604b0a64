"""The intermediate representation of an ONNX model: what :mod:`.onnx_proto` decodes, without payloads.

Kept apart from the decoder so that the checks over it (:mod:`.onnx_shapes`) import the values,
not the reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

#: Integer tensors and attributes up to this many values are kept (shapes, repeats, axes).
MAX_KEPT_VALUES = 64

# TensorProto.DataType -> bits per element.
DTYPE_BITS: dict[int, int] = {
    1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 8: 0, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
    14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2,
}  # fmt: skip


@dataclass(slots=True)
class OnnxTensor:
    """A TensorProto (initializer or attribute value) without its payload."""

    name: str
    where: str
    dims: tuple[int, ...] = ()
    data_type: int = 0
    data_location: int = 0
    external_data: dict[str, str] = field(default_factory=dict)
    payload_bytes: int = 0
    has_raw_data: bool = False
    offset: int = 0
    #: The values of a small integer tensor (shapes, repeats, axes; at most ``MAX_KEPT_VALUES``), else None.
    values: tuple[int, ...] | None = None

    @property
    def nbytes(self) -> int | None:
        """Bytes implied by dims and data type (None for strings, unknown types or negative dims)."""
        bits = DTYPE_BITS.get(self.data_type)
        if not bits or any(d < 0 for d in self.dims):
            return None
        count = 1
        for dim in self.dims:
            count *= dim
        return (count * bits + 7) // 8


@dataclass(slots=True)
class OnnxNode:
    """A NodeProto: operator, domain, short string attributes, subgraphs from attributes."""

    op_type: str = ""
    domain: str = ""
    name: str = ""
    strings: dict[str, str] = field(default_factory=dict)
    #: Integer attributes (``i`` as one value, ``ints`` as several), at most ``MAX_KEPT_VALUES`` each.
    ints: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: Tensor attributes by attribute name (e.g. Constant's ``value``, ConstantOfShape's ``value``).
    tensors: dict[str, OnnxTensor] = field(default_factory=dict)
    subgraphs: list[OnnxGraph] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class OnnxGraph:
    """A GraphProto (``path`` says where it sits: main graph, node attribute, function, training)."""

    path: str
    name: str = ""
    nodes: list[OnnxNode] = field(default_factory=list)
    tensors: list[OnnxTensor] = field(default_factory=list)
    #: names of the graph's declared outputs (ValueInfoProto names)
    outputs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class OnnxModel:
    """A ModelProto without tensor payloads."""

    ir_version: int = 0
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    opset_import: list[tuple[str, int]] = field(default_factory=list)
    graphs: list[OnnxGraph] = field(default_factory=list)
    functions: list[tuple[str, str]] = field(default_factory=list)
    metadata_props: dict[str, str] = field(default_factory=dict)

    def all_graphs(self) -> Iterator[OnnxGraph]:
        """Every graph: main, training and function bodies, and all nested subgraphs."""
        stack = list(reversed(self.graphs))
        while stack:
            graph = stack.pop()
            yield graph
            for node in graph.nodes:
                stack.extend(reversed(node.subgraphs))
