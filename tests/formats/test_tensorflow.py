"""TensorFlow SavedModel / GraphDef / TFLite readers (fixtures built with tensorflow-cpu once per session)."""

from __future__ import annotations

import contextlib
import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.formats._tf_models import cli

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats.interface import Blob, ScanContext
from modelshield.formats.tensorflow import decode_graphs, looks_like_graph_def, looks_like_saved_model
from modelshield.formats.tflite import FlatBuffer, operator_codes
from modelshield.limits import Limits
from modelshield.scan import scan
from modelshield.types import Severity

pytest.importorskip("tensorflow")


@pytest.mark.parametrize("name", ["tf_benign", "keras_export", "tflite/benign.tflite"])
def test_benign_tensorflow_models_pass(tf_models: Path, name: str) -> None:
    report = scan(str(tf_models / name))
    assert cli(str(tf_models / name)) == 0
    assert all(a.format != "unknown" for a in report.artifacts), [(a.path, a.format) for a in report.artifacts]
    assert not [f for f in report.findings if f.severity >= Severity.LOW]


def test_saved_model_formats_recognised(tf_models: Path) -> None:
    formats = {Path(a.path).name: a.format for a in scan(str(tf_models / "tf_benign")).artifacts}
    assert formats["saved_model.pb"] == "tf-saved-model"
    assert formats["fingerprint.pb"] == "tf-fingerprint"
    assert formats["variables.index"] == "tf-checkpoint-index"
    assert formats["variables.data-00000-of-00001"] == "tf-checkpoint-data"


def test_file_ops_in_function_library(tf_models: Path) -> None:
    assert cli(str(tf_models / "tf_fileops")) == 1
    hits = [f for f in scan(str(tf_models / "tf_fileops")).findings if f.rule_id == "TF-FILE-OP"]
    assert {f.message.split()[2] for f in hits} == {"ReadFile", "WriteFile"}
    assert all(f.severity is Severity.HIGH and "__inference" in f.evidence for f in hits)


def test_pyfunc_in_frozen_graph(tf_models: Path) -> None:
    assert cli(str(tf_models / "tf_pyfunc")) == 1
    (hit,) = [f for f in scan(str(tf_models / "tf_pyfunc")).findings if f.rule_id == "TF-PYTHON-OP"]
    assert hit.severity is Severity.CRITICAL and "PyFunc" in hit.message


def test_tflite_flex_file_op(tf_models: Path) -> None:
    path = tf_models / "tflite" / "flex_readfile.tflite"
    assert cli(str(path)) == 1
    (hit,) = scan(str(path)).findings
    assert hit.rule_id == "TF-FILE-OP" and "FlexReadFile" in hit.message


def _node(name: str, op: str, attrs: bytes = b"", inputs: tuple[str, ...] = ()) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode()) + b"".join(_field(3, i.encode()) for i in inputs) + attrs
    return _field(1, body)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string_attr(key: str, value: str) -> bytes:
    return _field(5, _field(1, key.encode()) + _field(2, _field(2, value.encode())))


def _const_string(key: str, value: str) -> bytes:
    tensor = _field(8, value.encode())
    return _field(5, _field(1, key.encode()) + _field(2, _field(8, tensor)))


def test_handmade_graph_rules(tmp_path: Path) -> None:
    graph = (
        _node("path", "Const", _const_string("value", "/etc/cron.d/x"))
        + _node("save", "SaveV2", inputs=("path:0",))
        + _node("p", "PrintV2", _string_attr("output_stream", "file:///tmp/log"))
        + _node("x", "MyCustomKernel")
    )
    path = tmp_path / "graph.pb"
    path.write_bytes(graph)
    assert looks_like_graph_def(graph)
    rules = {f.rule_id for f in scan(str(path)).findings}
    assert rules == {"TF-CHECKPOINT-PATH", "TF-FILE-OP", "TF-CUSTOM-OP"}


def _blob(data: bytes) -> Blob:
    return Blob("fuzz.pb", (), len(data), lambda: io.BytesIO(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_protobuf_decoder_fuzz(data: bytes, saved: bool) -> None:
    blob = _blob(data)
    with contextlib.suppress(FormatError, LimitExceeded):
        decode_graphs(blob, ScanContext(blob, Limits()), saved_model=saved)
    looks_like_saved_model(data)
    looks_like_graph_def(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_flatbuffer_fuzz(data: bytes) -> None:
    payload = struct.pack("<I", 8) + b"TFL3" + data
    with contextlib.suppress(FormatError, LimitExceeded):
        operator_codes(FlatBuffer(io.BytesIO(payload), len(payload)))


def test_flatbuffer_mutations_of_real_model(tf_models: Path) -> None:
    data = (tf_models / "tflite" / "flex_readfile.tflite").read_bytes()
    for position in range(0, min(len(data), 400), 3):
        mutated = bytearray(data)
        mutated[position] ^= 0xFF
        with contextlib.suppress(FormatError, LimitExceeded):
            operator_codes(FlatBuffer(io.BytesIO(bytes(mutated)), len(mutated)))
