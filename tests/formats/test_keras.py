"""Keras: .keras v3 configs, legacy H5, Lambda bytecode, safe_mode bypass CVEs (fixtures built with keras)."""

from __future__ import annotations

import base64
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.formats._tf_models import cli

from modelshield.formats._marshal import marshal_strings
from modelshield.formats.interface import Blob, ScanContext
from modelshield.formats.keras import keras_config_findings
from modelshield.limits import Limits
from modelshield.scan import scan
from modelshield.types import Severity

pytest.importorskip("keras")


def findings(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in scan(str(path)).findings:
        out.setdefault(finding.rule_id, []).append(finding)
    return out


@pytest.mark.parametrize("name", ["benign_keras", "benign_h5"])
def test_benign_keras_models_pass(tf_models: Path, name: str) -> None:
    assert cli(str(tf_models / name)) == 0
    report = scan(str(tf_models / name))
    assert not [f for f in report.findings if f.severity >= Severity.LOW]
    assert {a.format for a in report.artifacts} & {"keras-config", "keras-h5"}


@pytest.mark.parametrize(("name", "cve"), [("lambda_keras", "CVE-2024-3660"), ("lambda_h5", "CVE-2025-9905")])
def test_lambda_layer_is_critical_and_decoded(tf_models: Path, name: str, cve: str) -> None:
    assert cli(str(tf_models / name)) == 1
    (lam,) = findings(tf_models / name)["KERAS-LAMBDA"]
    assert lam.severity is Severity.CRITICAL
    assert cve in lam.references
    assert "'MODELSHIELD_CANARY'" in lam.evidence and "'__import__'" in lam.evidence


def test_lambda_payload_fires_only_without_safe_mode(tf_models: Path, tmp_path: Path) -> None:
    """Proof the sample is real: in a throwaway subprocess, safe_mode=False runs the payload."""
    code = (
        "import os, sys, numpy as np, keras\n"
        "m = keras.models.load_model(sys.argv[1], safe_mode=sys.argv[2] == '1')\n"
        "m(np.zeros((1, 4), 'float32'))\n"
    )
    canary = tmp_path / "canary"
    env = {**os.environ, "MODELSHIELD_CANARY": str(canary), "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    model = str(tf_models / "lambda_keras" / "model.keras")
    safe = subprocess.run([sys.executable, "-c", code, model, "1"], env=env, capture_output=True, timeout=300)
    assert safe.returncode != 0 and not canary.exists()
    unsafe = subprocess.run([sys.executable, "-c", code, model, "0"], env=env, capture_output=True, timeout=300)
    assert unsafe.returncode == 0, unsafe.stderr[-2000:]
    assert canary.read_text() == "pwned"


@pytest.mark.parametrize(
    ("name", "rule", "cve"),
    [
        ("cve_2025_1550", "KERAS-UNSAFE-MODULE", "CVE-2025-1550"),
        ("get_file", "KERAS-UNSAFE-FUNCTION", "CVE-2025-8747"),
        ("unsafe_deser", "KERAS-UNSAFE-FUNCTION", "CVE-2025-9906"),
    ],
)
def test_safe_mode_bypass_configs(tf_models: Path, name: str, rule: str, cve: str) -> None:
    assert cli(str(tf_models / name)) == 1
    (hit,) = findings(tf_models / name)[rule]
    assert hit.severity is Severity.CRITICAL and cve in hit.references
    assert hit.location.member and hit.location.member.endswith("config.json")


def _ctx() -> ScanContext:
    return ScanContext(Blob("config.json", (), 0, lambda: open(os.devnull, "rb")), Limits())


def _rules(config: object, legacy: bool = False) -> list[tuple[str, Severity]]:
    return [(f.rule_id, f.severity) for f in keras_config_findings(config, _ctx(), legacy=legacy)]


def _layer(class_name: str, config: dict | None = None, module: str = "keras.layers") -> dict:
    return {"module": module, "class_name": class_name, "config": config or {"name": "x"}, "registered_name": None}


def _model(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "m", "layers": list(layers)}}


def test_nested_models_are_walked() -> None:
    inner = _model(_layer("Dense"), _layer("system", module="os"))
    outer = _model(_layer("Dense"), {"module": "keras", "class_name": "Functional", "config": {"layers": [inner]}})
    assert _rules(outer) == [("KERAS-UNSAFE-MODULE", Severity.CRITICAL)]


def test_other_bypass_families() -> None:
    assert _rules(_model(_layer("TorchModuleWrapper"))) == [("KERAS-TORCH-MODULE", Severity.CRITICAL)]
    lookup = _layer("StringLookup", {"name": "s", "vocabulary": "/etc/passwd"})
    assert _rules(_model(lookup)) == [("KERAS-LOOKUP-FILE", Severity.HIGH)]
    assert _rules(_model(_layer("Dense", {"name": "../../x"}))) == [("KERAS-NAME-TRAVERSAL", Severity.HIGH)]
    custom = {"module": None, "class_name": "MyLayer", "config": {}, "registered_name": "Custom>MyLayer"}
    assert _rules(_model(custom)) == [("KERAS-CUSTOM-OBJECT", Severity.MEDIUM)]
    exec_fn = {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}
    assert _rules(_model(_layer("Activation", {"name": "a", "activation": exec_fn}))) == [
        ("KERAS-UNSAFE-MODULE", Severity.CRITICAL)
    ]
    tf_op = {"class_name": "TFOpLambda", "config": {"name": "t", "function": "io.write_file"}}
    assert ("KERAS-UNSAFE-FUNCTION", Severity.CRITICAL) in _rules(_model(tf_op), legacy=True)


def test_legacy_lambda_list_encoding() -> None:
    code = base64.b64encode(marshal.dumps((lambda x: __import__("os").system("id")).__code__)).decode()
    legacy = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [code, None, None], "function_type": "lambda"},
    }
    (finding,) = keras_config_findings(_model(legacy), _ctx(), legacy=True)
    assert finding.severity is Severity.CRITICAL and "'system'" in finding.evidence
    assert "CVE-2025-9905" in finding.references


def test_marshal_extractor_reads_nested_code() -> None:
    def outer() -> object:
        def inner() -> object:
            return eval("1")

        return inner

    summary = marshal_strings(marshal.dumps(outer.__code__))
    assert summary.parsed and "eval" in summary.names and {"inner", "outer"} <= set(summary.functions)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_marshal_extractor_never_crashes(data: bytes) -> None:
    summary = marshal_strings(data)
    assert isinstance(summary.all_strings(), list)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_marshal_extractor_on_mutated_code(noise: bytes) -> None:
    raw = bytearray(marshal.dumps((lambda x: x + 1).__code__))
    raw[len(noise) % len(raw)] ^= noise[0]
    marshal_strings(bytes(raw) + noise)


def test_config_json_alone_is_judged(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_model(_layer("Popen", module="subprocess"))))
    assert cli(str(path)) == 1
