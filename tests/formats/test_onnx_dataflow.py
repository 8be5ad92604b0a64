"""ONNX graph self-consistency: computation nothing reads and weights nothing uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelshield.scan import Scanner
from modelshield.types import Severity

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="test")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _io() -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto, onnx.TensorProto]:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    return x, y, w


def _rules(path: Path) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in Scanner().scan([str(path)]).findings}


def test_connected_graph_is_clean(tmp_path: Path) -> None:
    x, y, w = _io()
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    assert _rules(_save(graph, tmp_path / "m.onnx")) == {}


def test_dormant_branch_is_a_tampering_finding(tmp_path: Path) -> None:
    x, y, w = _io()
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("ReduceMax", ["x"], ["probe"], keepdims=0, name="trigger_probe"),  # read by nothing
    ]
    rules = _rules(_save(helper.make_graph(nodes, "g", [x], [y], [w]), tmp_path / "m.onnx"))
    assert rules.get("ONNX-DEAD-OPERATOR") is Severity.MEDIUM


def test_unused_weights_are_a_low_note(tmp_path: Path) -> None:
    x, y, w = _io()
    spare = numpy_helper.from_array(np.zeros(16, dtype=np.uint8), "blob")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w, spare])
    assert _rules(_save(graph, tmp_path / "m.onnx")) == {"ONNX-STRAY-INITIALIZER": Severity.LOW}


def test_values_read_only_inside_a_subgraph_count_as_used(tmp_path: Path) -> None:
    x, y, w = _io()
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    branch_out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
    then_graph = helper.make_graph([helper.make_node("Identity", ["scaled"], ["b"])], "then", [], [branch_out])
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "else", [], [branch_out])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["scaled"]),  # read only by the then-branch (outer scope)
        helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    graph = helper.make_graph(nodes, "g", [x, cond], [y], [w])
    assert _rules(_save(graph, tmp_path / "m.onnx")) == {}
