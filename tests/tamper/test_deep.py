"""Neural-Cleanse deep scan: anomaly index, calibration, model rebuilding, trigger recovery, PNG output."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from modelshield.errors import UsageError
from modelshield.tamper.deep import anomaly_index, calibrate

torch = pytest.importorskip("torch")

TARGET, CLASSES = 2, 6


def test_anomaly_index_of_the_smallest_norm() -> None:
    norms = [10.0, 11.0, 9.0, 10.5, 9.5, 1.0]
    index, label = anomaly_index(norms)
    assert label == 5
    assert index == pytest.approx((9.75 - 1.0) / (1.4826 * 0.75), rel=1e-6)
    assert anomaly_index([3.0, 3.0, 3.0]) == (0.0, 0)


def test_calibrated_threshold_keeps_clean_models_below_it() -> None:
    clean = [0.5, 1.0, 1.2, 1.9, 2.4, 0.8, 1.1, 1.6, 1.3, 0.9]
    threshold = calibrate(clean, fpr=0.05)
    assert all(c < threshold for c in clean)
    assert threshold == pytest.approx(2.4 * 1.1)


def trojaned_state() -> dict[str, object]:
    """conv(identity) -> relu -> flatten -> linear: label TARGET fires on pixel (7, 7)."""
    rng = np.random.default_rng(0)
    conv = np.zeros((1, 1, 3, 3), np.float32)
    conv[0, 0, 1, 1] = 1.0
    weight = rng.standard_normal((CLASSES, 64)).astype(np.float32) * 0.3
    weight[TARGET, 63] = 60.0
    bias = np.zeros(CLASSES, np.float32)
    bias[TARGET] = -5.0
    return {
        "features.0.weight": torch.tensor(conv),
        "features.0.bias": torch.zeros(1),
        "classifier.weight": torch.tensor(weight),
        "classifier.bias": torch.tensor(bias),
    }


@pytest.fixture(scope="module")
def trojan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("deep") / "classifier.safetensors"
    save_file(trojaned_state(), str(path), metadata={"input_shape": "1x8x8"})  # type: ignore[arg-type]
    return path


def test_build_cnn_infers_the_architecture_from_the_weights() -> None:
    from modelshield.tamper.deep import build_cnn

    model = build_cnn(trojaned_state(), (1, 8, 8))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "Flatten", "Linear"]
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 7, 7] = 1.0
    assert int(model(x).argmax()) == TARGET


def test_build_cnn_refuses_an_ambiguous_pool_placement() -> None:
    from modelshield.tamper.deep import build_cnn

    state = {
        "a.weight": torch.zeros(4, 1, 3, 3),
        "b.weight": torch.zeros(4, 4, 3, 3),
        "fc.weight": torch.zeros(3, 64),  # 4 x 4 x 4: one pool after either conv fits
    }
    with pytest.raises(UsageError, match="cannot infer"):
        build_cnn(state, (1, 8, 8))
    model = build_cnn(state, (1, 8, 8), "conv,relu,pool,conv,relu,flatten,linear")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_reverse_engineering_finds_the_target_label(trojan_file: Path) -> None:
    from modelshield.tamper.deep import build_cnn, load_state, reverse_engineer

    model = build_cnn(load_state(trojan_file), (1, 8, 8))
    images = np.random.default_rng(1).uniform(0, 1, (128, 1, 8, 8)).astype(np.float32)
    result = reverse_engineer(model, images, CLASSES, steps=150, time_budget_s=60, threshold=2.0)
    assert result.suspect_label == TARGET
    assert result.flagged
    target = result.triggers[TARGET]
    assert target.mask.argmax() == 63  # the trigger pixel
    assert target.norm < min(t.norm for t in result.triggers if t.label != TARGET) / 3


def test_trigger_png_is_a_valid_image(tmp_path: Path) -> None:
    from modelshield.tamper.deep import LabelTrigger, save_trigger_png

    mask = np.zeros((4, 5))
    mask[3, 4] = 1.0
    trigger = LabelTrigger(0, 1.0, 1.0, mask, np.ones((1, 4, 5)))
    data = save_trigger_png(trigger, tmp_path / "t.png", scale=2).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (10, 8)
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    raw = zlib.decompress(data[idat + 4 : idat + 4 + length])
    rows = [raw[i * (1 + width * 3) : (i + 1) * (1 + width * 3)] for i in range(height)]
    assert rows[7][1 + 9 * 3 : 1 + 10 * 3] == b"\xff\xff\xff"  # the stamped pixel, upscaled
    assert rows[0][1:4] == b"\x00\x00\x00"


def test_deep_scan_command(trojan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelshield.cli.main import main

    png = tmp_path / "trigger.png"
    args = ["deep-scan", str(trojan_file), "--input", "1x8x8", "--budget", "30", "--threshold", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trigger-png", str(png)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 1, out
    assert f"label {TARGET} anomaly index" in out and "SUSPECTED" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_scan_deep_skips_models_that_are_not_small_cnns(tmp_path: Path) -> None:
    from tests.tamper._models import llama, write_safetensors

    from modelshield.scan import scan
    from modelshield.tamper.deep_cli import add_deep_findings

    path = write_safetensors(tmp_path / "llm" / "model.safetensors", llama())
    report = scan(str(path))
    assert add_deep_findings(report, budget_s=5) == report  # no conv layers: nothing rebuilt, nothing added
