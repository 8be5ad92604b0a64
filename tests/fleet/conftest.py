"""One real local Ray cluster for every fleet test (Ray starts slowly on 2 cores: share it).

The cluster's workers are started with the test hook :data:`modelshield.fleet.task.HOLD_ENV` set,
so a task for a file whose name contains ``fleet-hold-me`` writes ``<name>.<pid>.pid`` into the
hold folder and sleeps before scanning: the kill and change tests act on it mid-task. Nothing
else in the suite names files like that.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOLD = "fleet-hold-me"
HOLD_SECONDS = 4.0


@dataclass(frozen=True)
class Cluster:
    """The shared local Ray: its GCS address (for CLI subprocesses) and the hold folder."""

    address: str
    hold_dir: Path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``ray.init(num_cpus=2)`` once per session; shut down at the end."""
    import ray

    from modelshield.fleet.task import HOLD_ENV

    hold_dir = tmp_path_factory.mktemp("fleet-hold")
    os.environ[HOLD_ENV] = f"{HOLD}:{HOLD_SECONDS}:{hold_dir}"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:
        del os.environ[HOLD_ENV]  # the workers have it (they inherit the raylet's environment); no one else
    try:
        yield Cluster(ray.get_runtime_context().gcs_address, hold_dir)
    finally:
        ray.shutdown()


def benign_pickle(values: object) -> bytes:
    """A plain-data pickle (only builtins: nothing to judge)."""
    return pickle.dumps(values, protocol=4)


def malicious_pickle(command: str = "touch /nonexistent/canary") -> bytes:
    """A pickle that would call os.system on load, written as opcodes (never loaded anywhere)."""
    return b"cos\nsystem\n(S'" + command.encode() + b"'\ntR."


def safetensors(names: tuple[str, ...] = ("w",)) -> bytes:
    """A tiny valid safetensors file."""
    header: dict[str, object] = {}
    offset = 0
    for name in names:
        header[name] = {"dtype": "F32", "shape": [2], "data_offsets": [offset, offset + 8]}
        offset += 8
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def make_models(root: Path) -> Path:
    """A folder with benign and malicious models, unknown and empty files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "benign.pkl").write_bytes(benign_pickle({"w": [1, 2, 3]}))
    (root / "evil.pkl").write_bytes(malicious_pickle())
    (root / "model.safetensors").write_bytes(safetensors())
    (root / "notes.bin").write_bytes(b"\x13\x37 not a model format at all " * 4)
    (root / "empty.pt").write_bytes(b"")
    return root


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private verdict cache folder (MODELSHIELD_CACHE_DIR) for one test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(folder))
    return folder
