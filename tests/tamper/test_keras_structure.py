"""Keras v3 archives: weight groups the declared architecture does not account for are tampering."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from modelshield.scan import Scanner
from modelshield.tamper.keras_structure import snake_case

pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

BUILD = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(8)(x)
    head = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)], name="head")
    keras.Model(inp, head(x)).save(sys.argv[1])
    """
)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "model.keras"
    subprocess.run([sys.executable, "-c", BUILD, str(path)], check=True, timeout=300, capture_output=True)
    return path


def _tampered(source: Path, target: Path, edit: str) -> Path:
    with zipfile.ZipFile(source) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        h5.copy(h5["layers/dense"], edit)  # a copy of real weights under another layer's name
    parts["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return target


def _tamper_rules(path: Path) -> list[str]:
    return [f.rule_id for f in Scanner().scan([str(path)]).findings if f.rule_id.startswith("TAMPER-")]


def test_snake_case_matches_keras_naming() -> None:
    assert [snake_case(n) for n in ("Dense", "BatchNormalization", "ReLU", "Conv2D", "InputLayer")] == [
        "dense",
        "batch_normalization",
        "re_lu",
        "conv2d",
        "input_layer",
    ]


def test_real_keras_model_is_consistent(keras_file: Path) -> None:
    assert _tamper_rules(keras_file) == []


@pytest.mark.parametrize("group", ["layers/trigger_detector", "layers/dense_7", "layers/sequential/layers/dense_9"])
def test_extra_weight_groups_are_tampering(keras_file: Path, tmp_path: Path, group: str) -> None:
    tampered = _tampered(keras_file, tmp_path / "t.keras", group)
    assert _tamper_rules(tampered) == ["TAMPER-EXTRA-LAYER-WEIGHTS"]
