"""Signature and attestation rules see a verified attestation when a trust store is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

POLICY = """\
version: 1
default_profile: provenance
profiles:
  provenance:
    rules:
      - max_severity: medium
      - signature_required: {trusted_keys: [release]}
      - attestation_required: {max_age_days: 30}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )


@pytest.fixture()
def attested(tmp_path: Path) -> Path:
    np = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model = tmp_path / "model"
    model.mkdir()
    safetensors_numpy.save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(model / "model.safetensors"))
    assert _cli("keygen", "--out", "release", cwd=tmp_path).returncode == 0
    (tmp_path / "trusted").mkdir()
    (tmp_path / "release.pub").rename(tmp_path / "trusted" / "release.pub")
    done = _cli("scan", "model", "--attest", "--key", "release.key", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "policy.yaml").write_text(POLICY)
    return tmp_path


def test_verified_attestation_satisfies_provenance_rules(attested: Path) -> None:
    allowed = _cli("policy", "check", "model", "--policy", "policy.yaml", "--trust", "trusted", cwd=attested)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "[pass] signature_required: signed by release" in allowed.stdout


def test_without_trust_or_after_tampering_the_rules_fail(attested: Path) -> None:
    untrusted = _cli("policy", "check", "model", "--policy", "policy.yaml", cwd=attested)
    assert untrusted.returncode == 1
    assert "[FAIL] signature_required: no verified signature" in untrusted.stdout
    weights = attested / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    tampered = _cli("policy", "check", "model", "--policy", "policy.yaml", "--trust", "trusted", cwd=attested)
    assert tampered.returncode == 1
    assert "[FAIL] signature_required" in tampered.stdout
