"""Tensor-by-tensor diff: classification of the change, rounding tolerance, findings, CLI, formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.tamper._models import FFN, HIDDEN, LAYERS, llama, write_safetensors

from modelshield.cli.main import main
from modelshield.tamper.diff import diff_models
from modelshield.tamper.report import diff_findings, render_text


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = llama()
    return write_safetensors(tmp_path_factory.mktemp("base") / "model.safetensors", tensors), tensors


def candidate(tmp_path: Path, tensors: dict[str, np.ndarray], **kwargs: object) -> Path:
    return write_safetensors(tmp_path / "cand" / "model.safetensors", tensors, **kwargs)  # type: ignore[arg-type]


def test_identical(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    result = diff_models(base[0], candidate(tmp_path, base[1]))
    assert result.classification.kind == "identical"
    assert diff_findings(result) == []


def test_rank_one_edit_of_one_mlp_matrix_is_rome_like(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    tensors = dict(base[1])
    key = "model.layers.2.mlp.down_proj.weight"
    rng = np.random.default_rng(5)
    tensors[key] = tensors[key] + 0.01 * np.outer(rng.standard_normal(HIDDEN), rng.standard_normal(FFN)).astype(
        np.float32
    )
    result = diff_models(base[0], candidate(tmp_path, tensors))
    c = result.classification
    assert (c.kind, c.layers, c.tensors, c.rank) == ("rank-1-edit", ("model.layers.2",), (key,), 1)
    assert [f.rule_id for f in diff_findings(result)] == ["TAMPER-LOW-RANK-EDIT"]
    assert "rank 1" in render_text(result)


def test_merged_lora_rank_is_measured(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    tensors = dict(base[1])
    rng = np.random.default_rng(6)
    for i in range(LAYERS):
        key = f"model.layers.{i}.self_attn.q_proj.weight"
        tensors[key] = tensors[key] + (
            rng.standard_normal((HIDDEN, 4)) @ rng.standard_normal((4, HIDDEN)) * 0.01
        ).astype(np.float32)
    c = diff_models(base[0], candidate(tmp_path, tensors)).classification
    assert (c.kind, c.rank, len(c.layers)) == ("merged-lora", 4, LAYERS)


def test_low_rank_edit_in_a_few_layers_is_memit_like(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    tensors = dict(base[1])
    rng = np.random.default_rng(7)
    for i in (1,):
        key = f"model.layers.{i}.mlp.down_proj.weight"
        tensors[key] = tensors[key] + (rng.standard_normal((HIDDEN, 3)) @ rng.standard_normal((3, FFN)) * 0.01).astype(
            np.float32
        )
    c = diff_models(base[0], candidate(tmp_path, tensors)).classification
    assert (c.kind, c.rank, c.layers) == ("low-rank-edit", 3, ("model.layers.1",))


def test_dense_change_everywhere_is_a_fine_tune(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    tensors = {k: (v + 1e-3 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in base[1].items()}
    result = diff_models(base[0], candidate(tmp_path, tensors))
    assert result.classification.kind == "fine-tune"
    assert [f.rule_id for f in diff_findings(result)] == ["TAMPER-UNEXPLAINED-CHANGE"]


def test_dense_change_in_one_layer_is_localised(tmp_path: Path) -> None:
    tensors = llama()
    for i in range(4, 12):  # a deeper model, so one layer is "a few"
        for k in [k for k in list(tensors) if k.startswith("model.layers.0.")]:
            tensors[k.replace("layers.0.", f"layers.{i}.")] = tensors[k]
    ref = write_safetensors(tmp_path / "ref" / "model.safetensors", tensors, config=False)
    rng = np.random.default_rng(9)
    key = "model.layers.7.mlp.up_proj.weight"
    tensors[key] = (tensors[key] + 1e-2 * rng.standard_normal(tensors[key].shape)).astype(np.float32)
    c = diff_models(ref, candidate(tmp_path, tensors, config=False)).classification
    assert (c.kind, c.layers) == ("localised-edit", ("model.layers.7",))


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_dtype_round_trip_is_benign(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, dtype: str) -> None:
    result = diff_models(base[0], candidate(tmp_path, base[1], dtype=dtype))
    assert result.classification.kind == "round-trip"
    assert {f.rule_id for f in diff_findings(result)} <= {"TAMPER-RETYPED", "TAMPER-ROUND-TRIP"}
    assert all(f.severity.label == "info" for f in diff_findings(result))


def test_bf16_values_stored_back_as_f32_are_a_round_trip(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from tests.tamper._models import to_bf16_bytes

    rounded = {k: np.frombuffer(to_bf16_bytes(v), "<u2").astype(np.uint32) << 16 for k, v in base[1].items()}
    tensors = {k: v.view(np.float32).reshape(base[1][k].shape) for k, v in rounded.items()}
    result = diff_models(base[0], candidate(tmp_path, tensors))
    assert result.classification.kind == "round-trip"
    assert all(d.exact_rounding for d in result.by_status("rounding"))


def test_an_edit_hidden_in_a_bf16_conversion_is_still_an_edit(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    tensors = dict(base[1])
    key = "model.layers.3.mlp.down_proj.weight"
    rng = np.random.default_rng(10)
    tensors[key] = tensors[key] + 0.02 * np.outer(rng.standard_normal(HIDDEN), rng.standard_normal(FFN)).astype(
        np.float32
    )
    c = diff_models(base[0], candidate(tmp_path, tensors, dtype="BF16")).classification
    assert (c.kind, c.tensors, c.rank) == ("rank-1-edit", (key,), 1)


def test_added_removed_reshaped_tensors_are_an_architecture_change(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    tensors = dict(base[1])
    tensors["model.layers.1.extra.weight"] = np.ones((2, 2), np.float32)
    del tensors["model.layers.0.mlp.up_proj.weight"]
    tensors["model.layers.3.mlp.gate_proj.weight"] = tensors["model.layers.3.mlp.gate_proj.weight"][:-1]
    result = diff_models(base[0], candidate(tmp_path, tensors))
    assert result.classification.kind == "architecture-change"
    ids = sorted(f.rule_id for f in diff_findings(result))
    assert ids == ["TAMPER-EXTRA-TENSOR", "TAMPER-MISSING-TENSOR", "TAMPER-RESHAPED"]


def test_trailing_bytes_are_header_tampering(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    result = diff_models(base[0], candidate(tmp_path, base[1], trailing=b"\x80\x04payload"))
    assert result.classification.kind == "header-tampering"
    assert [f.rule_id for f in diff_findings(result)] == ["TAMPER-HEADER-LAYOUT"]


def test_truncated_candidate_is_reported_not_a_traceback(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path = candidate(tmp_path, base[1])
    path.write_bytes(path.read_bytes()[:-1000])
    result = diff_models(base[0], path)
    assert result.classification.kind == "header-tampering"  # offsets beyond the file
    assert any(d.status == "unreadable" for d in result.deltas)


def test_cli_exit_codes_and_json(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = candidate(tmp_path, base[1], dtype="BF16")
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", str(base[0]), str(same)])
    assert exit_info.value.code == 0
    assert "change: round-trip" in capsys.readouterr().out
    tensors = dict(base[1])
    tensors["model.layers.0.mlp.down_proj.weight"] = tensors["model.layers.0.mlp.down_proj.weight"] * 1.5
    edited = write_safetensors(tmp_path / "edited" / "model.safetensors", tensors)
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", str(base[0]), str(edited), "--format", "json"])
    assert exit_info.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["classification"]["kind"] == "localised-edit"  # a rescaled matrix: a dense change of one matrix
    assert data["classification"]["layers"] == ["model.layers.0"]
    assert data["deltas"][0]["rank"] == HIDDEN  # full rank


def test_cli_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", str(tmp_path / "nope"), str(tmp_path / "nope2")])
    assert exit_info.value.code == 2


def test_scan_reference_adds_findings_for_the_policy(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    tensors = {k: (v + 1e-3 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in base[1].items()}
    path = candidate(tmp_path, tensors)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "scan",
                str(path),
                "--reference",
                str(base[0]),
                "--no-progress",
                "-f",
                "json",
                "-o",
                str(tmp_path / "r.json"),
            ]
        )
    assert exit_info.value.code == 1
    report = json.loads((tmp_path / "r.json").read_text())
    ids = [f["rule_id"] for a in report["artifacts"] for f in a["findings"]]
    assert ids == ["TAMPER-UNEXPLAINED-CHANGE"]


def test_torch_zip_checkpoint_is_read_from_the_pickle_ir(
    base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({k: torch.tensor(v) for k, v in base[1].items()}, str(path))
    assert diff_models(base[0], path).classification.kind == "identical"
    edited = {k: torch.tensor(v) for k, v in base[1].items()}
    edited["model.layers.1.mlp.up_proj.weight"][3, :] += 0.5
    torch.save(edited, str(path))
    c = diff_models(base[0], path).classification
    assert (c.kind, c.rank) == ("rank-1-edit", 1)


def test_weight_stats_flags_an_outlier_row(base: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    from modelshield.tamper.stats import model_stats

    tensors = dict(base[1])
    tensors["model.layers.2.mlp.up_proj.weight"] = tensors["model.layers.2.mlp.up_proj.weight"].copy()
    tensors["model.layers.2.mlp.up_proj.weight"][5] *= 40
    stats = {s.name: s for s in model_stats(candidate(tmp_path, tensors))}
    assert stats["model.layers.2.mlp.up_proj.weight"].outlier_rows == 1
    assert stats["model.layers.1.mlp.up_proj.weight"].outlier_rows == 0
    assert abs(stats["model.layers.2.mlp.up_proj.weight"].peer_z or 0) > 3
