"""Small model files for the service tests and the load benchmark, generated into a folder.

Benign: a plain pickle of numbers, a hand-written safetensors file, a ``torch.save`` checkpoint
(when torch is installed). Malicious: a pickle whose load would run ``touch CANARY`` through
``os.system``; the service never loads it (the canary proves that), it only parses the bytes.
Every call with a different ``seed`` gives different bytes, so the service's content-addressed
store scans each file (identical bytes are scanned once).
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

from tests.formats._pickle_payloads import os_system


def benign_pickle(folder: Path, seed: int = 0, name: str = "weights.pkl") -> Path:
    """A pickle of a dict of floats and a string: builtins only, the scanner passes it."""
    path = folder / name
    state = {"weights": [0.1 * seed, 0.2, 0.3], "bias": 0.5, "seed": seed, "name": f"tiny-{seed}"}
    path.write_bytes(pickle.dumps(state, protocol=4))
    return path


def slow_pickle(folder: Path, seed: int = 0, name: str = "slow.pkl") -> Path:
    """A benign pickle of a million tiny lists (~12 MB): its scan takes a few seconds, long enough to
    catch the worker that scans it in the act (kill tests); builtins only, the scanner passes it."""
    path = folder / name
    path.write_bytes(pickle.dumps([[i, seed] for i in range(1_000_000)], protocol=2))
    return path


def benign_safetensors(folder: Path, seed: int = 0, name: str = "model.safetensors") -> Path:
    """A valid safetensors file with one 2x2 F32 tensor; the seed goes into the metadata and the values."""
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"seed": str(seed)}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path = folder / name
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<4f", float(seed), 1.0, 2.0, 3.0))
    return path


def benign_torch(folder: Path, seed: int = 0, name: str = "pytorch_model.bin") -> Path | None:
    """A ``torch.save`` checkpoint of one small tensor, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    path = folder / name
    torch.save({"layer.weight": torch.full((2, 2), float(seed)), "layer.bias": torch.zeros(2)}, path)
    return path


def malicious_pickle(folder: Path, canary: Path, name: str = "evil.pkl") -> Path:
    """A pickle whose load would run ``touch CANARY`` (os.system): a critical finding, never executed."""
    path = folder / name
    path.write_bytes(os_system(str(canary), 4))
    return path
