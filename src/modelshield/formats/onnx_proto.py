"""ONNX models (protobuf ModelProto), decoded from the wire format without onnx or onnxruntime.

The graph, its nested subgraphs (If/Loop/Scan attributes), model-local functions and training graphs
are walked with a depth limit. Tensor payloads (``raw_data`` and the typed data fields) are skipped
by seeking, never read, except the values of small integer tensors (shapes, repeats; at most
``MAX_KEPT_VALUES``); external data files are only stat()ed.

Findings: external-data locations that leave the model folder (CVE-2024-27318 class), missing
external data, operators from non-standard domains (Python and contrib custom ops are high),
absurd tensor dimensions, and operators whose constant shapes allocate absurd tensors at run time
(:mod:`.onnx_shapes`; both denial of service).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from modelshield.errors import LimitExceeded
from modelshield.formats import _protobuf as pb
from modelshield.formats._cursor import Cursor
from modelshield.formats._sniff import looks_like_onnx as looks_like_onnx
from modelshield.formats._sniff import sniff_onnx
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.onnx_ir import DTYPE_BITS as DTYPE_BITS
from modelshield.formats.onnx_ir import MAX_KEPT_VALUES, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor
from modelshield.rules import rule
from modelshield.types import Category, Severity

MAX_GRAPH_DEPTH = 64
MAX_NODES = 2_000_000
MAX_DIMS = 64
MAX_TENSOR_BYTES = 1 << 40
MAX_FINDINGS_PER_RULE = 100

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "ai.onnx.preview"}
)
#: Vendor domains of mainstream runtimes and exporters (implemented natively, not user code).
VENDOR_DOMAINS = frozenset(
    {
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.mlfeaturizers",
        "com.microsoft.dml",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
        "org.pytorch.aten",
        "pkg.onnxscript.torch_lib",
        "pkg.onnxscript.torch_lib.common",
    }
)
#: Domains whose operators are user-supplied custom code (onnxruntime-extensions, Python ops).
CUSTOM_CODE_DOMAINS = frozenset({"ai.onnx.contrib", "com.microsoft.extensions"})
PYTHON_OPS = frozenset({"PyOp", "PyFunc", "PythonOp", "EagerPyFunc", "PyOpRegistry"})


EXTERNAL_TRAVERSAL = rule(
    "ONNX-EXTERNAL-DATA-TRAVERSAL",
    "ONNX external data points outside the model folder",
    Severity.HIGH,
    Category.VULNERABILITY,
    "A tensor's external_data location is absolute, contains '..', or resolves (through links) outside "
    "the folder of the model. Loading the model reads (and, when saving, may overwrite) arbitrary files "
    "(CVE-2024-27318, the bypass of CVE-2022-25882; CVE-2024-5187 for the same class in onnx hub).",
    "Do not load the model; external data must be plain relative file names inside the model folder.",
    ("CVE-2024-27318", "CVE-2022-25882", "CVE-2024-5187", "CWE-22"),
)
EXTERNAL_MISSING = rule(
    "ONNX-EXTERNAL-DATA-MISSING",
    "ONNX external data is missing or too short",
    Severity.MEDIUM,
    Category.INTEGRITY,
    "A tensor stores its data in an external file that does not exist next to the model, or the file is "
    "shorter than offset + length, or the location is empty. The model cannot be loaded as shipped.",
    "Fetch the complete model (every external data file) from its source.",
)
PYTHON_OP = rule(
    "ONNX-CUSTOM-CODE-OP",
    "ONNX model uses Python or custom-code operators",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "Nodes use operators whose implementation is user-supplied code (com.microsoft PyOp, "
    "onnxruntime-extensions ai.onnx.contrib custom ops, Python function ops). A runtime with those "
    "extensions registered runs that code when the model is executed.",
    "Only run the model with the custom-op library you trust; remove the custom ops otherwise.",
    ("CWE-94",),
)
CUSTOM_DOMAIN = rule(
    "ONNX-NONSTANDARD-DOMAIN",
    "ONNX model uses operators from a non-standard domain",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "Nodes use operator domains that are neither the ONNX standard ones nor a mainstream runtime's "
    "(com.microsoft, org.pytorch.aten) and are not functions defined in the model. Running the model "
    "requires loading a custom-op library.",
    "Find out which library implements the domain and whether you trust it.",
)
ABSURD_TENSOR = rule(
    "ONNX-ABSURD-TENSOR",
    "ONNX tensor with absurd or inconsistent dimensions",
    Severity.MEDIUM,
    Category.VULNERABILITY,
    "A tensor declares negative dimensions, too many dimensions, a size beyond 1 TiB, or a payload whose "
    "length does not match its dimensions. Runtimes allocate from these numbers (denial of service, "
    "out-of-bounds reads).",
    "Do not run the model; re-export it from a trusted source.",
    ("CWE-789", "CWE-125"),
)


DEAD_OP = rule(
    "ONNX-DEAD-OPERATOR",
    "Operator whose results nothing reads",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The main graph holds an operator none of whose outputs is read by another operator or is a "
    "graph output. Exporters emit connected graphs; disconnected computation is left by graph "
    "surgery (a dormant or half-removed branch).",
    "Compare the model with the exporter's original output; re-export from source if unsure.",
)
STRAY_INITIALIZER = rule(
    "ONNX-STRAY-INITIALIZER",
    "Initializer no operator reads",
    Severity.LOW,
    Category.TAMPERING,
    "A weight tensor in the main graph is read by no operator. Some exporters leave unused "
    "constants behind, but unused data is also how payloads are smuggled into a model.",
    "Check where the tensor comes from; optimisers (onnxsim, onnxoptimizer) remove unused initializers.",
)


def read_onnx_model(
    stream: BinaryIO, size: int | None = None, check_time: Callable[[], None] | None = None
) -> OnnxModel:
    """Decode a ModelProto from ``stream`` (payloads skipped); raise FormatError / LimitExceeded."""
    if size is None:
        size = stream.seek(0, 2)
    decoder = _Decoder(Cursor(stream, size, "onnx"), check_time)
    return decoder.model(size)


class _Decoder:
    """Recursive-descent decoder of the ONNX messages we need."""

    def __init__(self, cur: Cursor, check_time: Callable[[], None] | None) -> None:
        self.cur = cur
        self.check_time = check_time
        self.nodes = 0

    def model(self, end: int) -> OnnxModel:
        cur, m = self.cur, OnnxModel()
        for number, wire in pb.fields(cur, end):
            if number == 1 and wire == pb.VARINT:
                m.ir_version = pb.signed64(cur.varint())
            elif number in (2, 3, 4) and wire == pb.LEN:
                value = pb.text(cur, end)
                if number == 2:
                    m.producer_name = value
                elif number == 3:
                    m.producer_version = value
                else:
                    m.domain = value
            elif number == 5 and wire == pb.VARINT:
                m.model_version = pb.signed64(cur.varint())
            elif number == 7:
                m.graphs.append(self.graph(self._sub(wire, end, "graph"), 0, "graph"))
            elif number == 8:
                m.opset_import.append(self.opset(self._sub(wire, end, "opset_import")))
            elif number == 14:
                key, value = self.entry(self._sub(wire, end, "metadata_props"))
                m.metadata_props[key] = value
            elif number == 20:
                m.graphs.extend(self.training(self._sub(wire, end, "training_info"), len(m.graphs)))
            elif number == 25:
                graph, ident = self.function(self._sub(wire, end, "function"))
                m.graphs.append(graph)
                m.functions.append(ident)
            else:
                pb.skip(cur, wire, end)
        return m

    def _sub(self, wire: int, end: int, what: str) -> int:
        """Enter a length-delimited sub-message; return its end offset."""
        pb.expect(self.cur, wire, pb.LEN, what)
        return pb.enter(self.cur, end)

    def opset(self, end: int) -> tuple[str, int]:
        domain, version = "", 0
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                domain = pb.text(self.cur, end)
            elif number == 2 and wire == pb.VARINT:
                version = pb.signed64(self.cur.varint())
            else:
                pb.skip(self.cur, wire, end)
        return domain, version

    def entry(self, end: int) -> tuple[str, str]:
        key, value = "", ""
        for number, wire in pb.fields(self.cur, end):
            if number in (1, 2) and wire == pb.LEN:
                text = pb.text(self.cur, end, keep=1 << 20)
                key, value = (text, value) if number == 1 else (key, text)
            else:
                pb.skip(self.cur, wire, end)
        return key, value

    def graph(self, end: int, depth: int, path: str) -> OnnxGraph:
        if depth > MAX_GRAPH_DEPTH:
            raise LimitExceeded("max_nesting", MAX_GRAPH_DEPTH, f"onnx: subgraphs nested deeper than {MAX_GRAPH_DEPTH}")
        g = OnnxGraph(path)
        for number, wire in pb.fields(self.cur, end):
            if number == 1:
                g.nodes.append(self.node(self._sub(wire, end, "node"), depth, path, len(g.nodes)))
            elif number == 2 and wire == pb.LEN:
                g.name = pb.text(self.cur, end, keep=1024)
            elif number == 5:
                g.tensors.append(self.tensor(self._sub(wire, end, "initializer"), f"{path} initializer"))
            elif number == 15:
                g.tensors.extend(self.sparse(self._sub(wire, end, "sparse_initializer"), f"{path} sparse initializer"))
            elif number == 12:
                g.outputs.append(self.value_name(self._sub(wire, end, "graph output")))
            else:
                pb.skip(self.cur, wire, end)
        return g

    def value_name(self, end: int) -> str:
        """The name of a ValueInfoProto (field 1)."""
        name = ""
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                name = pb.text(self.cur, end, keep=1024)
            else:
                pb.skip(self.cur, wire, end)
        return name

    def node(self, end: int, depth: int, path: str, index: int) -> OnnxNode:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitExceeded("max_members", MAX_NODES, f"onnx: more than {MAX_NODES} nodes")
        if self.check_time is not None and self.nodes % 1024 == 0:
            self.check_time()
        n = OnnxNode()
        attributes: list[int] = []
        for number, wire in pb.fields(self.cur, end):
            if number in (1, 2) and wire == pb.LEN:
                (n.inputs if number == 1 else n.outputs).append(sys.intern(pb.text(self.cur, end, keep=1024)))
            elif number in (3, 4, 7) and wire == pb.LEN:
                value = sys.intern(pb.text(self.cur, end, keep=1024))
                if number == 3:
                    n.name = value
                elif number == 4:
                    n.op_type = value
                else:
                    n.domain = value
            elif number == 5:
                attributes.append(self.cur.pos)
                pb.skip(self.cur, wire, end)
            else:
                pb.skip(self.cur, wire, end)
        resume = self.cur.pos
        label = f"{path}/{n.name or n.op_type or 'node'}#{index}"
        for start in attributes:
            self.cur.pos = start
            self.attribute(pb.enter(self.cur, end), depth, label, n)
        self.cur.pos = resume
        return n

    def attribute(self, end: int, depth: int, label: str, n: OnnxNode) -> None:
        name = ""
        graphs: list[int] = []
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                name = pb.text(self.cur, end, keep=1024)
            elif number == 4 and wire == pb.LEN:
                n.strings[name or f"#{len(n.strings)}"] = pb.text(self.cur, end, keep=4096)
            elif number in (3, 8) and wire in (pb.VARINT, pb.LEN):
                n.ints[name or f"#{len(n.ints)}"] = tuple(pb.varints(self.cur, wire, end, limit=MAX_KEPT_VALUES))
            elif number in (5, 10):
                self.nested_tensor(self._sub(wire, end, "attribute tensor"), label, name, n)
            elif number in (6, 11):
                graphs.append(self.cur.pos)
                pb.skip(self.cur, wire, end)
            else:
                pb.skip(self.cur, wire, end)
        resume = self.cur.pos
        for start in graphs:
            self.cur.pos = start
            sub_end = pb.enter(self.cur, end)
            n.subgraphs.append(self.graph(sub_end, depth + 1, f"{label}.{name or 'graph'}"))
        self.cur.pos = resume

    def nested_tensor(self, end: int, label: str, attr: str, n: OnnxNode) -> None:
        tensor = self.tensor(end, f"{label}.{attr or 'value'}")
        n.tensors.setdefault(attr or "value", tensor)
        holder = OnnxGraph(f"{label}.{attr or 'value'}", tensors=[tensor])
        n.subgraphs.append(holder)

    def tensor(self, end: int, where: str) -> OnnxTensor:
        cur = self.cur
        t = OnnxTensor("", where, offset=cur.pos)
        dims: list[int] = []
        raw: bytes | None = None
        listed: list[int] | None = None
        for number, wire in pb.fields(cur, end):
            if number == 1:
                dims.extend(pb.varints(cur, wire, end, limit=MAX_DIMS + 1))
            elif number in (5, 7) and wire in (pb.VARINT, pb.LEN):  # int32_data / int64_data: kept when small
                if wire == pb.LEN:
                    start = cur.pos
                    t.payload_bytes += pb.length(cur, end)
                    cur.pos = start
                listed = (listed or []) + pb.varints(cur, wire, end, limit=MAX_KEPT_VALUES + 1)
            elif number == 2 and wire == pb.VARINT:
                t.data_type = pb.signed64(cur.varint())
            elif number == 8 and wire == pb.LEN:
                t.name = pb.text(cur, end, keep=1024)
            elif number == 14 and wire == pb.VARINT:
                t.data_location = pb.signed64(cur.varint())
            elif number == 13:
                key, value = self.entry(self._sub(wire, end, "external_data"))
                t.external_data[key] = value
            elif number in (4, 5, 6, 7, 9, 10, 11) and wire == pb.LEN:
                size = pb.length(cur, end)
                if number == 9 and size <= MAX_KEPT_VALUES * 8:
                    raw = cur.read(size)
                else:
                    cur.skip(size)
                t.payload_bytes += size
                t.has_raw_data = t.has_raw_data or number == 9
            else:
                pb.skip(cur, wire, end)
        t.dims = tuple(dims)
        t.values = _int_values(t.data_type, raw, listed)
        return t

    def sparse(self, end: int, where: str) -> list[OnnxTensor]:
        found: list[OnnxTensor] = []
        for number, wire in pb.fields(self.cur, end):
            if number in (1, 2):
                found.append(self.tensor(self._sub(wire, end, "sparse tensor"), where))
            else:
                pb.skip(self.cur, wire, end)
        return found

    def training(self, end: int, index: int) -> list[OnnxGraph]:
        found: list[OnnxGraph] = []
        for number, wire in pb.fields(self.cur, end):
            if number in (1, 2):
                kind = "initialization" if number == 1 else "algorithm"
                found.append(self.graph(self._sub(wire, end, kind), 1, f"training_info[{index}].{kind}"))
            else:
                pb.skip(self.cur, wire, end)
        return found

    def function(self, end: int) -> tuple[OnnxGraph, tuple[str, str]]:
        name, domain = "", ""
        graph = OnnxGraph("function")
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                name = pb.text(self.cur, end, keep=1024)
            elif number == 10 and wire == pb.LEN:
                domain = pb.text(self.cur, end, keep=1024)
            elif number == 7:
                sub = self._sub(wire, end, "function node")
                graph.nodes.append(self.node(sub, 1, "function", len(graph.nodes)))
            else:
                pb.skip(self.cur, wire, end)
        graph.path = f"function {domain}:{name}"
        return graph, (domain, name)


#: Integer tensor types whose small values are kept: INT32, INT64 (the types of shapes and repeats).
_INT_TYPES = {6: 4, 7: 8}


def _int_values(data_type: int, raw: bytes | None, listed: list[int] | None) -> tuple[int, ...] | None:
    """The values of a small INT32/INT64 tensor from raw_data or the typed field, else None."""
    width = _INT_TYPES.get(data_type)
    if width is None:
        return None
    if raw is not None:
        if len(raw) % width:
            return None
        return tuple(int.from_bytes(raw[i : i + width], "little", signed=True) for i in range(0, len(raw), width))
    if listed is not None and len(listed) <= MAX_KEPT_VALUES:
        return tuple(listed)
    return None


# ---------------------------------------------------------------------------------------------
# The reader: decode, then judge.


@register_reader
class OnnxReader(Reader):
    """Decodes ONNX models and reports external-data escapes, custom ops and absurd tensors."""

    name = "onnx"
    #: Above the TensorFlow protobuf readers: a ModelProto head (ir_version 1..64, text strings) is
    #: distinctive, while their layouts (e.g. fingerprint.pb: varints 1-5, LEN 6-7) admit tiny ONNX files.
    priority = 32

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Leading fields decode as a ModelProto."""
        return sniff_onnx(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Decode the model without payloads and yield findings."""
        with blob.open() as stream:
            model = read_onnx_model(stream, blob.size, ctx.check_time)
        folder = None if blob.members else os.path.dirname(os.path.abspath(blob.path))
        yield from _cap(_check_domains(model, ctx))
        tensors = [t for g in model.all_graphs() for t in g.tensors]
        yield from _cap(_check_external(tensors, folder, ctx))
        yield from _cap(_check_sizes(tensors, ctx))
        yield from _cap(_check_dataflow(model, ctx))
        from modelshield.formats.onnx_shapes import check_allocations

        yield from _cap(check_allocations(model, ctx))


def _consumed(graph: OnnxGraph) -> set[str]:
    """Names read by the graph's nodes, including outer-scope names read inside subgraphs."""
    names: set[str] = set(graph.outputs)
    for node in graph.nodes:
        names.update(node.inputs)
        for sub in node.subgraphs:
            names |= _consumed(sub)
    return names


def _check_dataflow(model: OnnxModel, ctx: ScanContext) -> Iterator[object]:
    """Operators whose results nothing reads, and initializers no operator reads (main graph).

    An exporter emits a connected graph; computation that reaches no output, or weights nothing
    uses, is what graph surgery leaves behind (a half-removed or dormant branch, smuggled data).
    """
    if not model.graphs:
        return
    main = model.graphs[0]
    if not main.outputs:
        return  # no declared outputs (a partial or training graph): nothing to judge against
    used = _consumed(main)
    for index, node in enumerate(main.nodes):
        if node.outputs and not any(out in used for out in node.outputs if out):
            yield ctx.finding(
                DEAD_OP.id,
                f"operator {node.op_type} ({node.name or f'node #{index}'}) computes outputs nothing reads",
                evidence=f"outputs: {', '.join(node.outputs)[:300]}",
                detail=_describe(main, node),
            )
    for tensor in main.tensors:
        if tensor.name and tensor.name not in used:
            yield ctx.finding(
                STRAY_INITIALIZER.id,
                f"initializer {tensor.name!r} is not read by any operator",
                evidence=f"dims {list(tensor.dims)}",
                detail=tensor.where,
            )


def _cap(findings: Iterator[object]) -> Iterator[object]:
    for count, item in enumerate(findings):
        if count >= MAX_FINDINGS_PER_RULE:
            return
        yield item


def _check_domains(model: OnnxModel, ctx: ScanContext) -> Iterator[object]:
    local = set(model.functions)
    custom: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for graph in model.all_graphs():
        for node in graph.nodes:
            domain = "" if node.domain == "ai.onnx" else node.domain
            if domain in STANDARD_DOMAINS or (node.domain, node.op_type) in local:
                continue
            is_code = node.op_type in PYTHON_OPS or domain in CUSTOM_CODE_DOMAINS
            if is_code:
                custom.setdefault(f"{domain}:{node.op_type}", []).append(_describe(graph, node))
            elif domain not in VENDOR_DOMAINS:
                unknown.setdefault(domain, []).append(f"{node.op_type} in {graph.path}")
    for op, where in custom.items():
        yield ctx.finding(
            PYTHON_OP.id,
            f"{len(where)} node(s) use custom-code operator {op}",
            evidence="\n".join(where[:10]),
            detail=op,
        )
    for domain, where in unknown.items():
        yield ctx.finding(
            CUSTOM_DOMAIN.id,
            f"{len(where)} node(s) use operators of non-standard domain {domain!r}",
            evidence="\n".join(where[:10]),
            detail=domain,
        )


def _describe(graph: OnnxGraph, node: OnnxNode) -> str:
    attrs = ", ".join(f"{k}={v[:200]!r}" for k, v in list(node.strings.items())[:6])
    return f"{node.op_type} {node.name!r} in {graph.path}" + (f" ({attrs})" if attrs else "")


def _check_external(tensors: list[OnnxTensor], folder: str | None, ctx: ScanContext) -> Iterator[object]:
    for t in tensors:
        if t.data_location != 1 and not t.external_data:
            continue
        location = t.external_data.get("location", "")
        label = f"tensor {t.name!r} ({t.where})"
        if not location:
            yield ctx.finding(EXTERNAL_MISSING.id, f"{label} has external data without a location", offset=t.offset)
            continue
        if _escapes(location) or (folder is not None and not _inside(folder, location)):
            yield ctx.finding(
                EXTERNAL_TRAVERSAL.id,
                f"{label} reads external data from {location!r}, outside the model folder",
                evidence=f"location={location!r}",
                offset=t.offset,
            )
            continue
        if folder is not None:
            yield from _check_external_file(t, label, os.path.join(folder, location), ctx)


def _check_external_file(t: OnnxTensor, label: str, path: str, ctx: ScanContext) -> Iterator[object]:
    location = t.external_data.get("location", "")
    try:
        size = os.stat(path).st_size
    except OSError:
        yield ctx.finding(EXTERNAL_MISSING.id, f"{label}: external data file {location!r} is missing", offset=t.offset)
        return
    try:
        start = int(t.external_data.get("offset", "0") or 0)
        length = int(t.external_data.get("length", "0") or 0) or (t.nbytes or 0)
    except ValueError:
        yield ctx.finding(
            EXTERNAL_MISSING.id,
            f"{label}: external data offset/length are not integers",
            evidence=repr(t.external_data),
        )
        return
    if start < 0 or length < 0 or start + length > size:
        yield ctx.finding(
            EXTERNAL_MISSING.id,
            f"{label}: external data [{start}, {start + length}) exceeds {location!r} ({size} bytes)",
            offset=t.offset,
        )


def _escapes(location: str) -> bool:
    norm = location.replace("\\", "/")
    return norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in norm.split("/") or "\x00" in norm


def _inside(folder: str, location: str) -> bool:
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(root, location))
    return os.path.commonpath([root, target]) == root


def _check_sizes(tensors: list[OnnxTensor], ctx: ScanContext) -> Iterator[object]:
    for t in tensors:
        label = f"tensor {t.name!r} ({t.where})"
        problem = ""
        if len(t.dims) > MAX_DIMS:
            problem = f"{len(t.dims)} dimensions"
        elif any(d < 0 for d in t.dims):
            problem = f"negative dimension in {list(t.dims)}"
        else:
            nbytes = t.nbytes
            if nbytes is not None and nbytes > MAX_TENSOR_BYTES:
                problem = f"dimensions {list(t.dims)} need {nbytes} bytes"
            elif nbytes is not None and t.has_raw_data and t.payload_bytes != nbytes:
                problem = f"raw_data holds {t.payload_bytes} bytes, dimensions {list(t.dims)} need {nbytes}"
        if problem:
            yield ctx.finding(ABSURD_TENSOR.id, f"{label}: {problem}", offset=t.offset)
