"""Core ML ``.mlmodel`` files (a protobuf ``Model``), decoded with our own wire-format reader.

What is judged: custom models and custom neural-network layers (their behaviour is code the app
must supply, named by ``className``), linked models (a path to another compiled model, checked for
absolute paths and ``..``), and opaque private ``serializedModel`` payloads that nothing can
inspect. Pipelines are walked recursively. Weights are skipped, never read into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from modelshield.errors import LimitExceeded
from modelshield.formats import _protobuf as pb
from modelshield.formats._cursor import Cursor
from modelshield.formats._sniff import COREML_TYPE_FIELDS as MODEL_TYPE_FIELDS
from modelshield.formats._sniff import looks_like_coreml as looks_like_coreml
from modelshield.formats._sniff import sniff_coreml
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.rules import rule
from modelshield.types import Category, Severity

CUSTOM_CODE = rule(
    "COREML-CUSTOM-CODE",
    "Core ML model delegates to custom code",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "A custom model or custom neural-network layer runs a class the application provides "
    "(MLCustomModel / MLCustomLayer). The model file decides which class is instantiated.",
    "Make sure the named class is part of your own reviewed code before deploying the model.",
)
LINKED_PATH = rule(
    "COREML-LINKED-MODEL-PATH",
    "Core ML linked model points outside the model",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A linked model is located by a file name and search path; an absolute path or '..' makes the "
    "loader pick up a compiled model from elsewhere on the device.",
    "Do not deploy the model; linked models should be bundled next to it by relative name.",
    ("CWE-22",),
)
LINKED = rule(
    "COREML-LINKED-MODEL",
    "Core ML model loads another compiled model",
    Severity.LOW,
    Category.UNSAFE_CONFIG,
    "A linked model wraps another compiled model found at load time; scan that model too.",
)
OPAQUE = rule(
    "COREML-OPAQUE-MODEL",
    "Core ML private serialized model",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The model is a private serialized payload (serializedModel) whose format is not published, "
    "so it was not analysed.",
)

PIPELINE_FIELDS = {200: True, 201: True, 202: False}  # field -> wrapped in a PipelineClassifier/Regressor
NETWORK_FIELDS = frozenset({303, 403, 500})  # NeuralNetworkRegressor / Classifier / NeuralNetwork
MAX_DEPTH = 16


@register_reader
class CoreMLReader(Reader):
    """Core ML ``Model`` protobuf (``.mlmodel``, also inside ``.mlpackage`` folders)."""

    name = "coreml"
    priority = 33  # above ONNX (another extension-less protobuf) and the TensorFlow readers

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A Core ML ModelProto prefix."""
        return sniff_coreml(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Walk the model (and nested pipeline models); yield findings."""
        with blob.open() as stream:
            size = stream.seek(0, os.SEEK_END)
            cur = Cursor(stream, size, "coreml")
            yield from _model(cur, size, ctx, "model", 0)


def _model(cur: Cursor, end: int, ctx: ScanContext, where: str, depth: int) -> Iterator[object]:
    if depth > MAX_DEPTH:
        raise LimitExceeded("max_nesting", MAX_DEPTH, f"coreml: pipelines nested deeper than {MAX_DEPTH}")
    for number, wire in pb.fields(cur, end):
        ctx.check_time()
        if wire != pb.LEN or number not in MODEL_TYPE_FIELDS:
            pb.skip(cur, wire, end)
        elif number == 555:
            name = _string_field(cur, pb.enter(cur, end), 10)
            yield ctx.finding(CUSTOM_CODE.id, f"{where} is a custom model: class {name!r}", evidence=name, detail=where)
        elif number == 556:
            yield from _linked(cur, pb.enter(cur, end), ctx, where)
        elif number == 3000:
            pb.skip(cur, wire, end)
            yield ctx.finding(OPAQUE.id, f"{where} is a private serialized model; its content was not analysed")
        elif number in PIPELINE_FIELDS:
            yield from _pipeline(cur, pb.enter(cur, end), ctx, where, depth, PIPELINE_FIELDS[number])
        elif number in NETWORK_FIELDS:
            yield from _network(cur, pb.enter(cur, end), ctx, where)
        else:
            pb.skip(cur, wire, end)


def _pipeline(cur: Cursor, end: int, ctx: ScanContext, where: str, depth: int, wrapped: bool) -> Iterator[object]:
    if wrapped:  # PipelineClassifier / PipelineRegressor: { Pipeline pipeline = 1; }
        for number, wire in pb.fields(cur, end):
            if number == 1 and wire == pb.LEN:
                yield from _pipeline(cur, pb.enter(cur, end), ctx, where, depth, False)
            else:
                pb.skip(cur, wire, end)
        return
    index = 0
    for number, wire in pb.fields(cur, end):  # Pipeline: { repeated Model models = 1; }
        if number == 1 and wire == pb.LEN:
            yield from _model(cur, pb.enter(cur, end), ctx, f"{where}.pipeline[{index}]", depth + 1)
            index += 1
        else:
            pb.skip(cur, wire, end)


def _network(cur: Cursor, end: int, ctx: ScanContext, where: str) -> Iterator[object]:
    for number, wire in pb.fields(cur, end):  # { repeated NeuralNetworkLayer layers = 1; ... }
        if number != 1 or wire != pb.LEN:
            pb.skip(cur, wire, end)
            continue
        layer_end = pb.enter(cur, end)
        name, custom = "", ""
        for field, kind in pb.fields(cur, layer_end):
            if field == 1 and kind == pb.LEN:
                name = pb.text(cur, layer_end, keep=1024)
            elif field == 500 and kind == pb.LEN:  # CustomLayerParams { string className = 10; ... }
                custom = _string_field(cur, pb.enter(cur, layer_end), 10) or "<unnamed>"
            else:
                pb.skip(cur, kind, layer_end)
        if custom:
            yield ctx.finding(
                CUSTOM_CODE.id, f"{where} layer {name!r} is a custom layer: class {custom!r}", evidence=custom
            )


def _linked(cur: Cursor, end: int, ctx: ScanContext, where: str) -> Iterator[object]:
    file_name = search_path = ""
    for number, wire in pb.fields(cur, end):  # LinkedModel { LinkedModelFile linkedModelFile = 1; }
        if number != 1 or wire != pb.LEN:
            pb.skip(cur, wire, end)
            continue
        file_end = pb.enter(cur, end)
        for field, kind in pb.fields(cur, file_end):  # StringParameter { string defaultValue = 1; }
            if field in (1, 2) and kind == pb.LEN:
                value = _string_field(cur, pb.enter(cur, file_end), 1)
                file_name, search_path = (value, search_path) if field == 1 else (file_name, value)
            else:
                pb.skip(cur, kind, file_end)
    evidence = f"file name {file_name!r}, search path {search_path!r}"
    parts = [file_name, *search_path.split(":")]
    if any(p.startswith(("/", "\\")) or ".." in p.replace("\\", "/").split("/") for p in parts if p):
        yield ctx.finding(LINKED_PATH.id, f"{where} links a model outside its folder", evidence=evidence)
    else:
        yield ctx.finding(LINKED.id, f"{where} links another compiled model", evidence=evidence)


def _string_field(cur: Cursor, end: int, wanted: int) -> str:
    """The string in field ``wanted`` of the message ending at ``end`` (the rest skipped)."""
    value = ""
    for number, wire in pb.fields(cur, end):
        if number == wanted and wire == pb.LEN:
            value = pb.text(cur, end, keep=4096)
        else:
            pb.skip(cur, wire, end)
    return value
