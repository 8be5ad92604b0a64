"""Tiny model builders for the tamper tests: safetensors written byte by byte (any dtype), Llama-shaped tables."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

LAYERS, HIDDEN, FFN, VOCAB = 4, 32, 64, 50
CONFIG = {
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": VOCAB,
}


def llama(seed: int = 0) -> dict[str, np.ndarray]:
    """A Llama-shaped float32 state dict (4 layers, GQA with 2 key/value heads)."""
    rng = np.random.default_rng(seed)
    kv = HIDDEN // 2
    w = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, HIDDEN))}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        w[f"{p}.self_attn.q_proj.weight"] = rng.standard_normal((HIDDEN, HIDDEN))
        w[f"{p}.self_attn.k_proj.weight"] = rng.standard_normal((kv, HIDDEN))
        w[f"{p}.self_attn.v_proj.weight"] = rng.standard_normal((kv, HIDDEN))
        w[f"{p}.self_attn.o_proj.weight"] = rng.standard_normal((HIDDEN, HIDDEN))
        w[f"{p}.mlp.up_proj.weight"] = rng.standard_normal((FFN, HIDDEN))
        w[f"{p}.mlp.gate_proj.weight"] = rng.standard_normal((FFN, HIDDEN))
        w[f"{p}.mlp.down_proj.weight"] = rng.standard_normal((HIDDEN, FFN))
        w[f"{p}.input_layernorm.weight"] = 1 + 0.01 * rng.standard_normal(HIDDEN)
    w["lm_head.weight"] = rng.standard_normal((VOCAB, HIDDEN))
    return {k: (v * 0.05).astype(np.float32) for k, v in w.items()}


def to_bf16_bytes(x: np.ndarray) -> bytes:
    """Round-to-nearest-even float32 -> bfloat16 bytes."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")).tobytes()


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], *, dtype: str = "F32", trailing: bytes = b"", config: bool = True
) -> Path:
    """Write a safetensors file (F32, F16 or BF16 storage) and, optionally, config.json next to it."""
    header: dict[str, object] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, value in tensors.items():
        numpy_dtype = {"F32": "<f4", "F16": "<f2"}.get(dtype, "<f4")
        raw = to_bf16_bytes(value) if dtype == "BF16" else value.astype(numpy_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs) + trailing)
    if config:
        (path.parent / "config.json").write_text(json.dumps(CONFIG))
    return path
