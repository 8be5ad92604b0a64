"""TensorFlow SavedModel (``saved_model.pb``, ``keras_metadata.pb``, ``fingerprint.pb``, ``variables/``)
and frozen GraphDef ``.pb`` files, decoded from the protobuf wire format without TensorFlow.

Every NodeDef of every MetaGraph's graph and of its function library is walked. Ops are judged
against the standard op set: Python ops (PyFunc, EagerPyFunc ...) are critical; file-system ops
(ReadFile, WriteFile, MatchingFiles, ImmutableConst, dataset/summary writers, PrintV2 to a file)
are high; Save/Restore ops whose file name is a constant path outside the model folder are high;
ops outside the standard set need a custom kernel library (medium). ``keras_metadata.pb``
layer metadata is judged as a Keras config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats import _protobuf as pb
from modelshield.formats._cursor import Cursor
from modelshield.formats._sniff import looks_like_graph_def as looks_like_graph_def
from modelshield.formats._sniff import looks_like_saved_model as looks_like_saved_model
from modelshield.formats._sniff import (
    sniff_graph_def,
    sniff_keras_metadata,
    sniff_saved_model,
    sniff_tf_checkpoint_data,
    sniff_tf_checkpoint_index,
    sniff_tf_fingerprint,
)
from modelshield.formats._tf_ops import TF_OPS
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.keras import keras_config_findings
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

MAX_NODES = 5_000_000
MAX_STRINGS_PER_NODE = 64
KEEP_STRING = 4096
EXAMPLES = 5

PYTHON_OP = rule(
    "TF-PYTHON-OP",
    "TensorFlow graph calls back into Python",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The graph contains PyFunc/EagerPyFunc ops: they run a Python function of the process that "
    "loads the model (tf.py_function / tf.numpy_function), whatever it is.",
    "Do not serve this model; rebuild it without Python ops.",
    ("CWE-94",),
)
FILE_OP = rule(
    "TF-FILE-OP",
    "TensorFlow graph reads or writes files",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "The graph contains file-system ops (ReadFile, WriteFile, MatchingFiles, ImmutableConst, "
    "dataset or summary writers, PrintV2 to a file ...). Running the model touches the disk of "
    "the machine that serves it.",
    "Do not serve this model unless the file access is expected; rebuild it without file ops.",
    ("CWE-73",),
)
CHECKPOINT_PATH = rule(
    "TF-CHECKPOINT-PATH",
    "Save/Restore op with a fixed path outside the model",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A Save/Restore op takes its file name from a constant that is absolute or climbs out of the "
    "model folder, so running it overwrites or reads files elsewhere.",
    "Do not run this graph.",
    ("CWE-22",),
)
CUSTOM_OP = rule(
    "TF-CUSTOM-OP",
    "TensorFlow graph uses non-standard ops",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "The graph uses ops that are not part of TensorFlow; loading needs a custom kernel library "
    "(tf.load_op_library), i.e. native code that is not shipped or reviewed here.",
    "Find out which library provides the ops and review it before loading.",
)
ASSET_PATH = rule(
    "TF-ASSET-PATH",
    "SavedModel asset outside the model folder",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "An asset file name is absolute or contains '..', so loading reads a file outside the model.",
    "Do not load this model.",
    ("CWE-22",),
)

_PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_FILE_OPS = frozenset(
    """ReadFile WriteFile MatchingFiles MatchingFilesDataset ExperimentalMatchingFilesDataset ImmutableConst
    WholeFileReader WholeFileReaderV2 FileSystemSetConfiguration TextLineReader TextLineReaderV2 TFRecordReader
    TFRecordReaderV2 FixedLengthRecordReader FixedLengthRecordReaderV2 LMDBReader TFRecordDataset TFRecordDatasetV2
    TextLineDataset FixedLengthRecordDataset FixedLengthRecordDatasetV2 CSVDataset CSVDatasetV2 LMDBDataset
    ExperimentalLMDBDataset SqlDataset ExperimentalSqlDataset SaveDataset SaveDatasetV2 DistributedSave LoadDataset
    DatasetToTFRecord ExperimentalDatasetToTFRecord SnapshotDataset SnapshotDatasetV2 SnapshotDatasetReader
    SnapshotChunkDataset CreateSummaryFileWriter CreateSummaryDbWriter DebugIdentity DebugIdentityV2
    DebugIdentityV3 DebugNanCount DebugNumericSummary DebugNumericSummaryV2""".split()  # noqa: SIM905
)
_CHECKPOINT_OPS = frozenset(
    {"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints"}
)
_SAFE_PATH = re.compile(r"^[^/\\]")


@dataclass
class TfNode:
    """One NodeDef: name, op, inputs, and the strings of its attributes (bounded)."""

    name: str
    op: str
    function: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class TfGraphs:
    """Everything decoded from a SavedModel or GraphDef."""

    nodes: list[TfNode] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    assets: list[str] = field(default_factory=list)


class _Decoder:
    def __init__(self, cur: Cursor, ctx: ScanContext) -> None:
        self.cur = cur
        self.ctx = ctx
        self.out = TfGraphs()

    def saved_model(self, end: int) -> None:
        for number, wire in pb.fields(self.cur, end):
            if number == 2 and wire == pb.LEN:
                self.meta_graph(pb.enter(self.cur, end))
            else:
                pb.skip(self.cur, wire, end)

    def meta_graph(self, end: int) -> None:
        for number, wire in pb.fields(self.cur, end):
            if number == 2 and wire == pb.LEN:
                self.graph(pb.enter(self.cur, end), "")
            elif number == 6 and wire == pb.LEN:
                self.asset(pb.enter(self.cur, end))
            else:
                pb.skip(self.cur, wire, end)

    def asset(self, end: int) -> None:
        for number, wire in pb.fields(self.cur, end):
            if number == 2 and wire == pb.LEN:
                self.out.assets.append(pb.text(self.cur, end, KEEP_STRING))
            else:
                pb.skip(self.cur, wire, end)

    def graph(self, end: int, function: str) -> None:
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                self.node(pb.enter(self.cur, end), function)
            elif number == 2 and wire == pb.LEN:
                self.library(pb.enter(self.cur, end))
            else:
                pb.skip(self.cur, wire, end)

    def library(self, end: int) -> None:
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                self.function(pb.enter(self.cur, end))
            else:
                pb.skip(self.cur, wire, end)

    def function(self, end: int) -> None:
        name = "<unnamed function>"
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                name = self.op_name(pb.enter(self.cur, end))
                self.out.functions.add(name)
            elif number == 3 and wire == pb.LEN:
                self.node(pb.enter(self.cur, end), name)
            else:
                pb.skip(self.cur, wire, end)

    def op_name(self, end: int) -> str:
        name = ""
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                name = pb.text(self.cur, end, KEEP_STRING)
            else:
                pb.skip(self.cur, wire, end)
        return name

    def node(self, end: int, function: str) -> None:
        if len(self.out.nodes) >= MAX_NODES:
            raise LimitExceeded("max_nesting", MAX_NODES, "TensorFlow graph has too many nodes to analyse")
        if len(self.out.nodes) % 1000 == 0:
            self.ctx.check_time()
        node = TfNode("", "", function)
        for number, wire in pb.fields(self.cur, end):
            if wire != pb.LEN:
                pb.skip(self.cur, wire, end)
            elif number == 1:
                node.name = pb.text(self.cur, end, KEEP_STRING)
            elif number == 2:
                node.op = pb.text(self.cur, end, KEEP_STRING)
            elif number == 3 and len(node.inputs) < 4096:
                node.inputs.append(pb.text(self.cur, end, KEEP_STRING))
            elif number == 5:
                self.attr_entry(pb.enter(self.cur, end), node)
            else:
                pb.skip(self.cur, wire, end)
        self.out.nodes.append(node)

    def attr_entry(self, end: int, node: TfNode) -> None:
        key = ""
        values: list[str] = []
        for number, wire in pb.fields(self.cur, end):
            if number == 1 and wire == pb.LEN:
                key = pb.text(self.cur, end, KEEP_STRING)
            elif number == 2 and wire == pb.LEN:
                self.attr_value(pb.enter(self.cur, end), values)
            else:
                pb.skip(self.cur, wire, end)
        if values:
            node.attrs[key] = values[:MAX_STRINGS_PER_NODE]

    def attr_value(self, end: int, values: list[str]) -> None:
        """AttrValue: s (2), list.s (1/2), tensor.string_val (8/8), func.name (10/1)."""
        wanted = {2: None, 1: 2, 8: 8, 10: 1}
        for number, wire in pb.fields(self.cur, end):
            if wire != pb.LEN or number not in wanted:
                pb.skip(self.cur, wire, end)
                continue
            inner = wanted[number]
            if inner is None:
                values.append(pb.text(self.cur, end, KEEP_STRING))
                continue
            stop = pb.enter(self.cur, end)
            for sub, sub_wire in pb.fields(self.cur, stop):
                if sub == inner and sub_wire == pb.LEN and len(values) < MAX_STRINGS_PER_NODE:
                    values.append(pb.text(self.cur, stop, KEEP_STRING))
                else:
                    pb.skip(self.cur, sub_wire, stop)


def decode_graphs(blob: Blob, ctx: ScanContext, *, saved_model: bool) -> TfGraphs:
    """Decode a SavedModel (``saved_model``) or a bare GraphDef from ``blob``."""
    with blob.open() as stream:
        cur = Cursor(stream, blob.size, blob.name)
        decoder = _Decoder(cur, ctx)
        if saved_model:
            decoder.saved_model(blob.size)
        else:
            decoder.graph(blob.size, "")
        return decoder.out


# ---------------------------------------------------------------------------- judging


def _source_path(node: TfNode, by_name: dict[tuple[str, str], TfNode]) -> str | None:
    """The constant string feeding a checkpoint op's first input, if it is a Const node."""
    if not node.inputs:
        return None
    ref = node.inputs[0].lstrip("^").split(":")[0]
    source = by_name.get((node.function, ref))
    if source is None or source.op != "Const":
        return None
    values = source.attrs.get("value")
    return values[0] if values else None


def _outside(path: str) -> bool:
    return not _SAFE_PATH.match(path) or ".." in path.replace("\\", "/").split("/") or "://" in path


def graph_findings(graphs: TfGraphs, ctx: ScanContext) -> Iterator[Finding]:
    """Judge the decoded ops (grouped per op, with example nodes) and asset paths."""
    by_op: dict[str, list[TfNode]] = {}
    by_name = {(n.function, n.name): n for n in graphs.nodes}
    for node in graphs.nodes:
        by_op.setdefault(node.op, []).append(node)
    for op, nodes in sorted(by_op.items()):
        yield from _judge_op(op, nodes, graphs, by_name, ctx)
    for asset in graphs.assets:
        if _outside(asset):
            yield ctx.finding(ASSET_PATH.id, f"asset file {asset[:200]!r} is outside the model", evidence=asset)


def _examples(nodes: list[TfNode]) -> str:
    shown = []
    for node in nodes[:EXAMPLES]:
        where = f" in {node.function}" if node.function else ""
        strings = "; ".join(f"{k}={v[:3]}" for k, v in node.attrs.items() if k not in {"T", "dtype", "_output_shapes"})
        shown.append(f"{node.name}{where}" + (f" [{strings[:300]}]" if strings else ""))
    more = f" (+{len(nodes) - EXAMPLES} more)" if len(nodes) > EXAMPLES else ""
    return "; ".join(shown) + more


def _judge_op(
    op: str, nodes: list[TfNode], graphs: TfGraphs, by_name: dict[tuple[str, str], TfNode], ctx: ScanContext
) -> Iterator[Finding]:
    count = f"{len(nodes)} node(s)"
    if op in _PYTHON_OPS:
        yield ctx.finding(PYTHON_OP.id, f"op {op} runs Python code ({count})", evidence=_examples(nodes))
    elif op in _FILE_OPS:
        yield ctx.finding(FILE_OP.id, f"file-system op {op} ({count})", evidence=_examples(nodes))
    elif op == "PrintV2":
        to_file = [n for n in nodes if any(s.startswith("file://") for s in n.attrs.get("output_stream", []))]
        if to_file:
            message = f"PrintV2 writes to a file ({len(to_file)} node(s))"
            yield ctx.finding(FILE_OP.id, message, evidence=_examples(to_file))
    elif op in _CHECKPOINT_OPS:
        for node in nodes:
            path = _source_path(node, by_name)
            if path is not None and _outside(path):
                message = f"{op} node {node.name!r} uses path {path[:200]!r}"
                yield ctx.finding(CHECKPOINT_PATH.id, message, evidence=path)
    elif op not in TF_OPS and op not in graphs.functions and op:
        yield ctx.finding(CUSTOM_OP.id, f"non-standard op {op!r} ({count})", evidence=_examples(nodes))


@register_reader
class SavedModelReader(Reader):
    """``saved_model.pb``: every MetaGraph, graph and function library."""

    name = "tf-saved-model"
    priority = 30

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """SavedModel wire layout."""
        return sniff_saved_model(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Decode and judge every op."""
        yield from graph_findings(decode_graphs(blob, ctx, saved_model=True), ctx)


@register_reader
class GraphDefReader(Reader):
    """A frozen GraphDef (``.pb``)."""

    name = "tf-graph-def"
    priority = 29

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """GraphDef wire layout (a NodeDef first)."""
        return sniff_graph_def(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Decode and judge every op."""
        yield from graph_findings(decode_graphs(blob, ctx, saved_model=False), ctx)


@register_reader
class KerasMetadataReader(Reader):
    """``keras_metadata.pb`` of a tf.keras SavedModel: per-layer JSON metadata."""

    name = "keras-metadata-pb"
    priority = 31

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Repeated SavedObject messages with tf.keras identifiers."""
        return sniff_keras_metadata(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Judge each layer's metadata as a Keras config."""
        with blob.open() as stream:
            cur = Cursor(stream, blob.size, blob.name)
            for number, wire in pb.fields(cur, blob.size):
                if number != 1 or wire != pb.LEN:
                    pb.skip(cur, wire, blob.size)
                    continue
                yield from _saved_object(cur, pb.enter(cur, blob.size), ctx)


def _saved_object(cur: Cursor, end: int, ctx: ScanContext) -> Iterator[Finding]:
    identifier, metadata = "", ""
    for number, wire in pb.fields(cur, end):
        if number == 4 and wire == pb.LEN:
            identifier = pb.text(cur, end, KEEP_STRING)
        elif number == 5 and wire == pb.LEN:
            metadata = pb.text(cur, end, ctx.limits.max_header_bytes)
        else:
            pb.skip(cur, wire, end)
    if not metadata:
        return
    try:
        value = json.loads(metadata)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"keras_metadata.pb: metadata of {identifier} is not JSON: {exc}") from None
    yield from keras_config_findings(value, ctx, legacy=True, where=f"keras_metadata {identifier}")


@register_reader
class FingerprintReader(Reader):
    """``fingerprint.pb``: five hashes and a version (nothing executable)."""

    name = "tf-fingerprint"
    priority = 28

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A small message of varint fields 1-5, a VersionDef (6) and a UUID (7), parsed whole (and the name)."""
        return sniff_tf_fingerprint(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Nothing to judge; the sniff already parsed it."""
        return iter(())


@register_reader
class CheckpointIndexReader(Reader):
    """``variables.index`` (a LevelDB-format table of tensor entries)."""

    name = "tf-checkpoint-index"
    priority = 27

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The LevelDB table magic in the last 8 bytes."""
        return sniff_tf_checkpoint_index(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Recognised; the entries are offsets into the data shards."""
        return iter(())


@register_reader
class CheckpointDataReader(Reader):
    """``variables.data-NNNNN-of-NNNNN``: raw tensor bytes next to their index (nothing else claimed them)."""

    name = "tf-checkpoint-data"
    priority = 4

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The shard name and a valid index file beside it on disk."""
        return sniff_tf_checkpoint_data(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Raw tensor data: nothing to parse."""
        return iter(())
