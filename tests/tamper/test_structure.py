"""Reference-free structure check: self-consistency, config.json and GGUF keys; wired into every scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.tamper._models import CONFIG, llama, write_safetensors

from modelshield.scan import scan
from modelshield.tamper.structure import check_structure


def shapes_of(tensors: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def rule_ids(problems: list[tuple[str, str, str]]) -> list[str]:
    return [p[0] for p in problems]


def test_clean_table_with_its_config_has_no_problem() -> None:
    assert check_structure(shapes_of(llama()), config=CONFIG) == []


def test_stray_tensor_in_one_layer_is_extra() -> None:
    shapes = shapes_of(llama())
    shapes["model.layers.2.mlp.hidden_head.weight"] = (4, 4)
    problems = check_structure(shapes)
    assert rule_ids(problems) == ["TAMPER-EXTRA-TENSOR"]
    assert "model.layers.2.mlp.hidden_head.weight" in problems[0][1]


def test_tensor_missing_from_one_layer() -> None:
    shapes = shapes_of(llama())
    del shapes["model.layers.1.mlp.up_proj.weight"]
    problems = check_structure(shapes)
    assert rule_ids(problems) == ["TAMPER-MISSING-TENSOR"]
    assert "model.layers.1.mlp.up_proj.weight" in problems[0][1]


def test_renamed_tensor_is_missing_plus_extra() -> None:
    shapes = shapes_of(llama())
    shapes["model.layers.3.mlp.up_projx.weight"] = shapes.pop("model.layers.3.mlp.up_proj.weight")
    assert sorted(rule_ids(check_structure(shapes))) == ["TAMPER-EXTRA-TENSOR", "TAMPER-MISSING-TENSOR"]


def test_reshaped_tensor_in_one_layer() -> None:
    shapes = shapes_of(llama())
    shapes["model.layers.0.mlp.down_proj.weight"] = (32, 65)
    problems = check_structure(shapes)
    assert rule_ids(problems) == ["TAMPER-RESHAPED"]
    assert "[32, 65]" in problems[0][1]


def test_missing_whole_layer_is_a_gap_and_a_config_mismatch() -> None:
    shapes = {k: v for k, v in shapes_of(llama()).items() if not k.startswith("model.layers.2.")}
    ids = rule_ids(check_structure(shapes, config=CONFIG))
    assert "TAMPER-MISSING-TENSOR" in ids  # layers 0,1,3: a gap at 2
    assert "TAMPER-CONFIG-MISMATCH" in ids  # 3 layers, config says 4


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("hidden_size", 48, "hidden size 48"),
        ("vocab_size", 51, "vocabulary of 51"),
        ("num_key_value_heads", 4, "4 key/value heads"),
        ("intermediate_size", 128, "intermediate_size=128"),
    ],
)
def test_config_json_disagreeing_with_the_weights(key: str, value: int, needle: str) -> None:
    config = {**CONFIG, key: value}
    problems = check_structure(shapes_of(llama()), config=config)
    assert problems and all(p[0] == "TAMPER-CONFIG-MISMATCH" for p in problems)
    assert any(needle in p[1] for p in problems)


def test_heterogeneous_layers_seen_in_several_layers_are_not_flagged() -> None:
    shapes = shapes_of(llama())
    for i in (1, 3):  # cross-attention every other layer: legitimate
        shapes[f"model.layers.{i}.cross_attn.q_proj.weight"] = (32, 32)
    shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = (32, 8)
    for i in range(1, 4):
        shapes[f"encoder.block.{i}.layer.0.SelfAttention.q.weight"] = (8, 8)
    shapes["encoder.block.0.layer.0.SelfAttention.q.weight"] = (8, 8)
    assert check_structure(shapes) == []


def test_gguf_architecture_keys() -> None:
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (100, 64)}
    for i in range(4):
        shapes[f"blk.{i}.attn_q.weight"] = (64, 64)
        shapes[f"blk.{i}.attn_k.weight"] = (32, 64)
    meta: dict[str, object] = {
        "general.architecture": "llama",
        "llama.block_count": 4,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
    }
    assert check_structure(shapes, gguf=meta) == []
    bad = {**meta, "llama.block_count": 5, "llama.attention.head_count_kv": 1}
    messages = [p[1] for p in check_structure(shapes, gguf=bad)]
    assert any("block_count is 5" in m for m in messages)
    assert any("1 key/value heads" in m for m in messages)


def test_scan_reports_structural_tampering(tmp_path: Path) -> None:
    tensors = llama()
    tensors["model.layers.1.mlp.trigger.weight"] = np.zeros((2, 2), np.float32)
    path = write_safetensors(tmp_path / "m" / "model.safetensors", tensors)
    ids = [f.rule_id for f in scan(str(path)).findings]
    assert ids == ["TAMPER-EXTRA-TENSOR"]


def test_scan_of_a_clean_model_has_no_tamper_finding(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m" / "model.safetensors", llama())
    assert [f for f in scan(str(path.parent)).findings if f.rule_id.startswith("TAMPER")] == []


def test_scan_compares_the_weights_with_config_json(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m" / "model.safetensors", llama())
    (path.parent / "config.json").write_text(json.dumps({**CONFIG, "num_hidden_layers": 6}))
    findings = [f for f in scan(str(path)).findings if f.rule_id == "TAMPER-CONFIG-MISMATCH"]
    assert len(findings) == 1 and "6 layers" in findings[0].message


def test_sharded_checkpoint_is_judged_once_as_a_whole(tmp_path: Path) -> None:
    tensors = llama()
    names = list(tensors)
    half = len(names) // 2
    folder = tmp_path / "sharded"
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        write_safetensors(folder / shard, {k: tensors[k] for k in keys})
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert [f for f in scan(str(folder)).findings if f.rule_id.startswith("TAMPER")] == []
    # drop one tensor from the index and its shard: the whole-model view sees it missing
    victim = "model.layers.2.mlp.up_proj.weight"
    shard = weight_map.pop(victim)
    write_safetensors(folder / shard, {k: tensors[k] for k in shards[shard] if k != victim})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    tamper = [f for f in scan(str(folder)).findings if f.rule_id.startswith("TAMPER")]
    assert [f.rule_id for f in tamper] == ["TAMPER-MISSING-TENSOR"]
    assert victim in tamper[0].message
