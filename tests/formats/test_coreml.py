"""Core ML .mlmodel files: custom code, linked models, opaque payloads; fixtures from coremltools' own protos."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.formats.coreml import looks_like_coreml
from modelshield.scan import Scanner
from modelshield.types import ScanReport, Severity

pytest.importorskip("coremltools")

# coremltools imports TensorFlow and torch when imported: build every fixture once, in a child.
BUILD = textwrap.dedent(
    """
    import os, sys
    from coremltools.proto import Model_pb2
    out = sys.argv[1]

    def network(model, custom=None):
        layer = model.neuralNetwork.layers.add()
        layer.name = "dense"
        layer.input.append("x")
        layer.output.append("y")
        layer.innerProduct.inputChannels = 2
        layer.innerProduct.outputChannels = 2
        layer.innerProduct.weights.floatValue.extend([1.0, 0.0, 0.0, 1.0])
        if custom:
            extra = model.neuralNetwork.layers.add()
            extra.name = "mystery"
            extra.custom.className = custom

    def save(name, model):
        with open(os.path.join(out, name), "wb") as f:
            f.write(model.SerializeToString())

    def new():
        m = Model_pb2.Model()
        m.specificationVersion = 4
        m.description.input.add().name = "x"
        m.description.output.add().name = "y"
        return m

    m = new(); network(m); save("benign.mlmodel", m)
    m = new(); network(m, custom="EvilLayer"); save("custom-layer.mlmodel", m)
    m = new(); m.customModel.className = "EvilModel"; save("custom-model.mlmodel", m)
    m = new(); f = m.linkedModel.linkedModelFile
    f.linkedModelFileName.defaultValue = "../../../private/Other.mlmodelc"; save("linked-out.mlmodel", m)
    m = new(); f = m.linkedModel.linkedModelFile
    f.linkedModelFileName.defaultValue = "Feature.mlmodelc"; save("linked-ok.mlmodel", m)
    m = new(); inner = m.pipeline.models.add(); inner.specificationVersion = 4
    inner.customModel.className = "Hidden"; save("pipeline.mlmodel", m)
    m = new(); m.serializedModel.identifier = "x"; m.serializedModel.model = b"\\x00" * 32; save("opaque.mlmodel", m)
    """
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("coreml")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", BUILD, str(out)], check=True, timeout=300, capture_output=True, env=env)
    return out


def _scan(path: Path) -> ScanReport:
    return Scanner().scan([str(path)])


def _rules(path: Path) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in _scan(path).findings}


def test_benign_network_is_clean_and_recognised(models: Path) -> None:
    report = _scan(models / "benign.mlmodel")
    assert report.artifacts[0].format == "coreml" and report.findings == ()


@pytest.mark.parametrize(
    ("name", "rule", "severity", "text"),
    [
        ("custom-layer.mlmodel", "COREML-CUSTOM-CODE", Severity.MEDIUM, "EvilLayer"),
        ("custom-model.mlmodel", "COREML-CUSTOM-CODE", Severity.MEDIUM, "EvilModel"),
        ("pipeline.mlmodel", "COREML-CUSTOM-CODE", Severity.MEDIUM, "Hidden"),
        ("linked-out.mlmodel", "COREML-LINKED-MODEL-PATH", Severity.HIGH, "../../../private"),
        ("linked-ok.mlmodel", "COREML-LINKED-MODEL", Severity.LOW, "Feature.mlmodelc"),
        ("opaque.mlmodel", "COREML-OPAQUE-MODEL", Severity.MEDIUM, "private serialized"),
    ],
)
def test_findings(models: Path, name: str, rule: str, severity: Severity, text: str) -> None:
    findings = [f for f in _scan(models / name).findings if f.rule_id == rule]
    assert findings and findings[0].severity is severity
    assert text in findings[0].message + findings[0].evidence


def test_truncated_model_is_a_parse_error(models: Path, tmp_path: Path) -> None:
    data = (models / "custom-layer.mlmodel").read_bytes()
    cut = tmp_path / "cut.mlmodel"
    cut.write_bytes(data[: len(data) - 5])
    assert "PARSE-ERROR" in _rules(cut)


def test_other_protobufs_are_not_claimed(models: Path) -> None:
    data = (models / "benign.mlmodel").read_bytes()
    assert looks_like_coreml(data, len(data), "weights.bin")
    assert not looks_like_coreml(b"\x08\x07\x12\x04test\x1a\x03abc", 13, "model.onnx")  # ONNX-like fields


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape(data: bytes) -> None:
    looks_like_coreml(data, len(data), "x.mlmodel")


def test_mutated_models_never_crash_the_reader(models: Path, tmp_path: Path) -> None:
    import random

    rng = random.Random(5)
    data = bytearray((models / "pipeline.mlmodel").read_bytes())
    for i in range(60):
        mutated = bytearray(data)
        for _ in range(3):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        path = tmp_path / f"m{i}.mlmodel"
        path.write_bytes(bytes(mutated))
    rules = {f.rule_id for f in Scanner().scan([str(tmp_path)]).findings}
    assert "INTERNAL-ERROR" not in rules
