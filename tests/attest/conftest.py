"""Fixtures for the attestation tests: keys made at test time, small real models."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelshield.attest.signers import KeySigner, generate, write_keypair

CARD_WITH_FRONT_MATTER = (
    "---\nlicense: apache-2.0\ntags:\n- vision\n- test\n---\n\n# Tiny model\n\nIt classifies nothing.  \n"
)


@dataclass(frozen=True)
class Keys:
    """Key pairs: alice (Ed25519) and bob (P-256) are trusted, mallory is not."""

    alice: KeySigner
    bob: KeySigner
    mallory: KeySigner
    alice_key: Path
    bob_key: Path
    mallory_key: Path
    trust: Path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Fresh keys for this test session and a trust store folder holding alice and bob."""
    root = tmp_path_factory.mktemp("keys")
    signers = {"alice": generate("ed25519"), "bob": generate("p256"), "mallory": generate("ed25519")}
    paths = {name: write_keypair(root / name, signer)[0] for name, signer in signers.items()}
    trust = root / "trust"
    trust.mkdir()
    for name in ("alice", "bob"):
        shutil.copy(root / f"{name}.pub", trust / f"{name}.pub")
    return Keys(
        signers["alice"], signers["bob"], signers["mallory"], paths["alice"], paths["bob"], paths["mallory"], trust
    )


def write_safetensors(path: Path, values: list[float]) -> None:
    """A minimal valid safetensors file with one F32 tensor."""
    body = struct.pack(f"<{len(values)}f", *values)
    header = {"t": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(body)]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _write_benign_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "layers": 2}), encoding="utf-8")
    (folder / "weights").mkdir()
    write_safetensors(folder / "weights" / "embed.safetensors", [float(i) for i in range(64)])
    write_safetensors(folder / "weights" / "head.safetensors", [1.0] * 16)
    (folder / "README.md").write_text(CARD_WITH_FRONT_MATTER, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def benign_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model folder the scanner passes (numpy tensors + config + a card)."""
    return _write_benign_model(tmp_path_factory.mktemp("tpl") / "model")


@pytest.fixture
def benign_model(tmp_path: Path, benign_template: Path) -> Path:
    """A private copy of the benign model for one test to modify."""
    target = tmp_path / "model"
    shutil.copytree(benign_template, target)
    return target


def malicious_pickle(canary: Path) -> bytes:
    """Protocol-0 pickle calling os.system to touch ``canary`` (never loaded outside a guard test)."""
    command = f"touch {canary}"
    return b"cos\nsystem\n(V" + command.encode() + b"\ntR."


@pytest.fixture
def malicious_model(tmp_path: Path) -> Path:
    """A folder whose pickle would touch a canary in tmp_path: the scanner fails it."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(malicious_pickle(tmp_path / "canary"))
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder
