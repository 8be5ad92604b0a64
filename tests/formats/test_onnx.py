"""ONNX wire-format reader: external data escapes, custom domains, nested subgraphs, absurd tensors."""

from __future__ import annotations

import glob
import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from modelshield.errors import FormatError
from modelshield.formats.interface import Blob, ScanContext, detect
from modelshield.formats.onnx_proto import OnnxReader, looks_like_onnx, read_onnx_model
from modelshield.limits import Limits
from modelshield.scan import Scanner
from modelshield.types import ScanReport, Severity


def scan(target: str | list[str]) -> ScanReport:
    """The reader pipeline alone (no advisory stage: its CVE notes are tested in tests/advisories)."""
    return Scanner().scan([target] if isinstance(target, str) else target)


OPSET = [helper.make_opsetid("", 17)]


def _rules(report: ScanReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def _graph(nodes: list[onnx.NodeProto], initializers: list[TensorProto] = (), name: str = "g") -> onnx.GraphProto:  # type: ignore[assignment]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    return helper.make_graph(nodes, name, [x], [y], list(initializers))


def _model(graph: onnx.GraphProto, **kwargs: object) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=kwargs.pop("opsets", OPSET), producer_name="test", **kwargs)  # type: ignore[arg-type]


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _benign_model() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(2, dtype=np.float32), "w")
    return _model(_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [weight]))


def _if_model(inner: onnx.NodeProto) -> onnx.ModelProto:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    then_g = helper.make_graph([inner], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "else", [], [out])
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)
    return _model(_graph([node], [cond]))


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="session")
def benign(folder: Path) -> Path:
    return _save(_benign_model(), folder / "benign.onnx")


@pytest.fixture(scope="session")
def external(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose initializer lives in weights.bin next to it (written by onnx itself)."""
    where = tmp_path_factory.mktemp("onnx-ext")
    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(2, 2048), "w")
    model = _model(_graph([helper.make_node("Identity", ["w"], ["y"])], [weight]))
    onnx.save_model(model, str(where / "model.onnx"), save_as_external_data=True, location="weights.bin")
    return where / "model.onnx"


def test_benign_model_is_clean_and_decoded(benign: Path) -> None:
    report = scan(str(benign))
    assert report.findings == () and report.artifacts[0].format == "onnx"
    with benign.open("rb") as stream:
        model = read_onnx_model(stream)
    assert model.producer_name == "test" and model.opset_import == [("", 17)]
    (graph,) = model.graphs
    assert [n.op_type for n in graph.nodes] == ["Add"]
    assert graph.tensors[0].name == "w" and graph.tensors[0].dims == (2,) and graph.tensors[0].payload_bytes == 8


def test_real_torch_exported_models_are_clean() -> None:
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    paths = sorted(glob.glob(str(data / "pytorch-*" / "*" / "model.onnx")))
    assert len(paths) > 10
    report = scan(paths)
    assert {a.format for a in report.artifacts} == {"onnx"}
    assert [f for f in report.findings if f.severity >= Severity.MEDIUM] == []
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", "--no-progress", *paths[:5]], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_external_data_inside_the_folder_is_clean(external: Path) -> None:
    assert scan(str(external)).findings == ()


def _with_location(external: Path, tmp_path: Path, location: str, **extra: str) -> Path:
    model = onnx.load_model(str(external), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
        elif entry.key in extra:
            entry.value = extra[entry.key]
    (tmp_path / "weights.bin").write_bytes((external.parent / "weights.bin").read_bytes())
    return _save(model, tmp_path / "model.onnx")


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "C:/x.bin"])
def test_external_data_traversal_is_high(external: Path, tmp_path: Path, location: str) -> None:
    report = scan(str(_with_location(external, tmp_path, location)))
    (finding,) = [f for f in report.findings if f.rule_id == "ONNX-EXTERNAL-DATA-TRAVERSAL"]
    assert finding.severity is Severity.HIGH
    assert "CVE-2024-27318" in finding.references and repr(location) in finding.message
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", "--no-progress", str(tmp_path / "model.onnx")],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 1


def test_external_data_symlink_out_of_the_folder_is_high(external: Path, tmp_path: Path) -> None:
    path = _with_location(external, tmp_path, "link.bin")
    os.symlink("/etc/hostname", tmp_path / "link.bin")
    assert "ONNX-EXTERNAL-DATA-TRAVERSAL" in _rules(scan(str(path)))


def test_missing_or_short_external_data_is_medium(external: Path, tmp_path: Path) -> None:
    missing = scan(str(_with_location(external, tmp_path, "gone.bin")))
    assert any(f.rule_id == "ONNX-EXTERNAL-DATA-MISSING" and "missing" in f.message for f in missing.findings)
    short = scan(str(_with_location(external, tmp_path, "weights.bin", length=str(1 << 30))))
    assert any(f.rule_id == "ONNX-EXTERNAL-DATA-MISSING" and "exceeds" in f.message for f in short.findings)


def test_custom_domain_is_medium(folder: Path) -> None:
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.evil")
    model = _model(_graph([node]), opsets=[*OPSET, helper.make_opsetid("com.evil", 1)])
    report = scan(str(_save(model, folder / "custom.onnx")))
    (finding,) = report.findings
    assert finding.rule_id == "ONNX-NONSTANDARD-DOMAIN" and finding.severity is Severity.MEDIUM
    assert "com.evil" in finding.message


def test_vendor_domains_are_accepted(folder: Path) -> None:
    node = helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")
    model = _model(_graph([node]), opsets=[*OPSET, helper.make_opsetid("com.microsoft", 1)])
    assert scan(str(_save(model, folder / "contrib.onnx"))).findings == ()


def test_python_op_is_high_with_its_module(folder: Path) -> None:
    node = helper.make_node(
        "PyOp", ["x"], ["y"], domain="com.microsoft", module="evil_module", class_name="Payload", compute="run"
    )
    model = _model(_graph([node]), opsets=[*OPSET, helper.make_opsetid("com.microsoft", 1)])
    (finding,) = scan(str(_save(model, folder / "pyop.onnx"))).findings
    assert finding.rule_id == "ONNX-CUSTOM-CODE-OP" and finding.severity is Severity.HIGH
    assert "evil_module" in finding.evidence


def test_contrib_extension_op_is_high(folder: Path) -> None:
    node = helper.make_node("PyFuncAdd", ["x"], ["y"], domain="ai.onnx.contrib")
    model = _model(_graph([node]), opsets=[*OPSET, helper.make_opsetid("ai.onnx.contrib", 1)])
    assert "ONNX-CUSTOM-CODE-OP" in _rules(scan(str(_save(model, folder / "contrib-ext.onnx"))))


def test_bad_op_in_nested_subgraph_is_found(folder: Path) -> None:
    inner = helper.make_node("PyOp", ["x"], ["y"], domain="com.microsoft", module="m")
    report = scan(str(_save(_if_model(inner), folder / "nested.onnx")))
    (finding,) = report.findings
    assert finding.rule_id == "ONNX-CUSTOM-CODE-OP"
    assert "then_branch" in finding.evidence


def test_benign_if_is_clean(folder: Path) -> None:
    inner = helper.make_node("Identity", ["x"], ["y"])
    assert scan(str(_save(_if_model(inner), folder / "if.onnx"))).findings == ()


def test_local_functions_are_walked(folder: Path) -> None:
    body = [helper.make_node("PyOp", ["a"], ["b"], domain="com.microsoft", module="m")]
    fn = helper.make_function(
        "local.fns", "Wrap", ["a"], ["b"], body, [*OPSET, helper.make_opsetid("com.microsoft", 1)]
    )
    node = helper.make_node("Wrap", ["x"], ["y"], domain="local.fns")
    model = _model(_graph([node]), opsets=[*OPSET, helper.make_opsetid("local.fns", 1)], functions=[fn])
    report = scan(str(_save(model, folder / "fn.onnx")))
    assert _rules(report) == {"ONNX-CUSTOM-CODE-OP"}  # the call to the local function itself is fine
    assert "function local.fns:Wrap" in report.findings[0].evidence


@pytest.mark.parametrize(
    ("dims", "fragment"),
    [([1 << 30, 1 << 30, 1 << 20], "need"), ([-5, 2], "negative"), ([3], "raw_data holds")],
)
def test_absurd_tensors_are_medium(folder: Path, dims: list[int], fragment: str) -> None:
    tensor = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=dims, raw_data=b"\0" * 8)
    model = _model(_graph([helper.make_node("Identity", ["big"], ["y"])], [tensor]))
    report = scan(str(_save(model, folder / f"absurd{len(dims)}.onnx")))
    (finding,) = report.findings
    assert finding.rule_id == "ONNX-ABSURD-TENSOR" and fragment in finding.message


def test_constant_attribute_tensors_are_checked(folder: Path) -> None:
    value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[-1])
    node = helper.make_node("Constant", [], ["y"], value=value)
    report = scan(str(_save(_model(_graph([node])), folder / "const.onnx")))
    assert _rules(report) == {"ONNX-ABSURD-TENSOR"}


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (protobuf's own encoder refuses this much nesting)."""
    length, size = b"", len(payload)
    while True:
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            break
    return bytes([number << 3 | 2]) + length + payload


def _nested(depth: int, leaf: bytes) -> bytes:
    graph = _field(1, leaf)
    for _ in range(depth):
        attribute = _field(1, b"then_branch") + b"\xa0\x01\x05" + _field(6, graph)  # name, type=GRAPH, g
        graph = _field(1, _field(4, b"If") + _field(5, attribute))
    return b"\x08\x08" + _field(7, graph)


def test_deep_nesting_hits_the_limit(folder: Path) -> None:
    path = folder / "deep.onnx"
    path.write_bytes(_nested(80, _field(4, b"Identity")))
    report = scan(str(path))
    assert "LIMIT-EXCEEDED" in _rules(report) and report.blocking


def test_bad_op_ten_levels_down_is_found(folder: Path) -> None:
    path = folder / "ten.onnx"
    path.write_bytes(_nested(10, _field(4, b"PyOp") + _field(7, b"com.microsoft")))
    (finding,) = scan(str(path)).findings
    assert finding.rule_id == "ONNX-CUSTOM-CODE-OP"
    assert finding.evidence.count(".then_branch") == 10


def test_payload_bytes_are_skipped_not_read(folder: Path) -> None:
    big = numpy_helper.from_array(np.zeros(16 << 20, dtype=np.float32), "big")  # 64 MiB raw_data
    path = _save(_model(_graph([helper.make_node("Identity", ["x"], ["y"])], [big])), folder / "big.onnx")
    tracemalloc.start()
    with path.open("rb") as stream:
        model = read_onnx_model(stream)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model.graphs[0].tensors[0].payload_bytes == 64 << 20
    assert peak < 4 << 20


def test_sniffing_is_by_content(benign: Path, folder: Path) -> None:
    renamed = folder / "weights.bin"
    renamed.write_bytes(benign.read_bytes())
    assert scan(str(renamed)).artifacts[0].format == "onnx"
    head = benign.read_bytes()[:4096]
    assert looks_like_onnx(head, benign.stat().st_size)
    # A SavedModel-shaped protobuf (field 1 varint, field 2 a binary sub-message) is not ONNX.
    saved_model = b"\x08\x01\x12\x80\x01" + bytes([0x0A, 0x7E]) + bytes(range(126))
    assert not looks_like_onnx(saved_model, len(saved_model), "saved_model.pb")
    tensor_pb = numpy_helper.from_array(np.ones(3, np.float32)).SerializeToString()
    assert not looks_like_onnx(tensor_pb, len(tensor_pb), "input_0.pb")


def test_truncated_model_is_a_parse_error(benign: Path, folder: Path) -> None:
    path = folder / "cut.onnx"
    path.write_bytes(benign.read_bytes()[:-10])
    report = scan(str(path))
    assert "PARSE-ERROR" in _rules(report) and report.blocking


def _drain(data: bytes, name: str = "mem.onnx") -> None:
    blob = Blob(name, (), len(data), lambda: io.BytesIO(data))
    reader = detect(blob) if name != "mem.onnx" else OnnxReader()
    if not isinstance(reader, OnnxReader):
        return
    try:
        for _ in reader.read(blob, ScanContext(blob, Limits())):
            pass
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _drain(data)
    _drain(b"\x08\x08" + data, name="model.bin")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_files_never_crash(benign: Path, data: st.DataObject) -> None:
    source = _if_model(helper.make_node("Identity", ["x"], ["y"])).SerializeToString()
    content = bytearray(source)
    for _ in range(data.draw(st.integers(1, 6))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    _drain(bytes(content))


def _ints(name: str, values: list[int], *, raw: bool = True) -> TensorProto:
    if raw:
        return numpy_helper.from_array(np.array(values, dtype=np.int64), name)
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # int64_data, packed


_BOMBS = {
    "constant-of-shape": ([helper.make_node("ConstantOfShape", ["s"], ["y"])], [_ints("s", [1 << 25, 1 << 25])]),
    "typed-int64-data": (
        [helper.make_node("ConstantOfShape", ["s"], ["y"])],
        [_ints("s", [1 << 20, 1 << 20, 1 << 20], raw=False)],
    ),
    "folded-shape": (
        [
            helper.make_node("Constant", [], ["a"], value=numpy_helper.from_array(np.array([1 << 20], np.int64))),
            helper.make_node("Constant", [], ["b"], value_ints=[1 << 10]),
            helper.make_node("Mul", ["b", "k"], ["bk"]),  # 2**10 * 2**20
            helper.make_node("Concat", ["a", "bk"], ["s"], axis=0),
            helper.make_node("Cast", ["s"], ["s2"], to=TensorProto.INT64),
            helper.make_node("ConstantOfShape", ["s2"], ["y"]),
        ],
        [_ints("k", [1 << 20])],
    ),
    "tile": ([helper.make_node("Tile", ["x", "r"], ["y"])], [_ints("r", [1 << 50])]),
    "expand": ([helper.make_node("Expand", ["x", "s"], ["y"])], [_ints("s", [1 << 26, 1 << 26])]),
    "reshape": ([helper.make_node("Reshape", ["x", "s"], ["y"])], [_ints("s", [1 << 40, -1])]),
    "range": (
        [helper.make_node("Range", ["a", "b", "c"], ["y"])],
        [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("a", 0), ("b", 1 << 50), ("c", 1))],
    ),
}


@pytest.mark.parametrize("kind", sorted(_BOMBS))
def test_absurd_allocations_from_constant_shapes_are_high(folder: Path, kind: str) -> None:
    nodes, inits = _BOMBS[kind]
    report = scan(str(_save(_model(_graph(nodes, inits)), folder / f"bomb-{kind}.onnx")))
    found = [f for f in report.findings if f.rule_id == "ONNX-SHAPE-BOMB"]
    assert len(found) == 1, report.findings
    assert found[0].severity == Severity.HIGH and report.blocking


def test_bomb_inside_a_subgraph_is_found(folder: Path) -> None:
    shape = helper.make_node("Constant", [], ["s"], value=_ints("sv", [1 << 30, 1 << 30]))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    then_g = helper.make_graph([shape, helper.make_node("ConstantOfShape", ["s"], ["y"])], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "else", [], [out])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)
    cond = numpy_helper.from_array(np.array(True), "cond")
    report = scan(str(_save(_model(_graph([node], [cond])), folder / "bomb-if.onnx")))
    assert "ONNX-SHAPE-BOMB" in _rules(report)


@pytest.mark.parametrize(
    ("nodes", "inits"),
    [
        ([helper.make_node("ConstantOfShape", ["s"], ["y"])], [_ints("s", [1, 2048, 2048])]),  # a causal mask
        ([helper.make_node("Tile", ["x", "r"], ["y"])], [_ints("r", [64])]),
        ([helper.make_node("Reshape", ["x", "s"], ["y"])], [_ints("s", [-1, 0, 2])]),
        ([helper.make_node("Expand", ["x", "s"], ["y"])], [_ints("s", [1 << 16, 1 << 16])]),  # 2**32: the bound
    ],
    ids=["mask", "tile", "reshape", "at-the-bound"],
)
def test_ordinary_constant_shapes_are_clean(
    folder: Path, nodes: list[onnx.NodeProto], inits: list[TensorProto]
) -> None:
    report = scan(str(_save(_model(_graph(nodes, inits)), folder / f"shape-ok-{len(nodes)}-{nodes[0].op_type}.onnx")))
    assert "ONNX-SHAPE-BOMB" not in _rules(report)


def test_packed_integer_fields_decode() -> None:
    # proto2 ONNX writes int64_data packed; the decoder read one varint short of such a run before
    tensor = _ints("s", [1 << 20, 3, 1 << 40], raw=False)
    model = _model(_graph([helper.make_node("Identity", ["s"], ["y"])], [tensor]))
    decoded = read_onnx_model(io.BytesIO(model.SerializeToString()))
    (t,) = decoded.graphs[0].tensors
    assert t.values == (1 << 20, 3, 1 << 40)
