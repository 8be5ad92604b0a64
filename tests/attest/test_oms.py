"""OpenSSF model signing interop: model_signing CLI <-> modelshield, and the attestation's OMS subject."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.attest import scan_and_attest, verify
from modelshield.attest.manifest import sidecar_path
from modelshield.attest.oms import oms_root_digest, sign, verify_oms
from modelshield.attest.signers import generate, write_keypair
from modelshield.attest.verify import Outcome

pytest.importorskip("model_signing")
CLI = [sys.executable, "-m", "model_signing"]


@pytest.fixture(scope="module")
def ec_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(private key, public key, trust store folder) for an EC P-256 key made now."""
    root = tmp_path_factory.mktemp("oms-keys")
    private, public = write_keypair(root / "publisher", generate("p256"))
    trust = root / "trust"
    trust.mkdir()
    shutil.copy(public, trust / "publisher.pub")
    return private, public, trust


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_model_signing_cli_signature_verifies_with_modelshield(
    benign_model: Path, ec_keys: tuple[Path, Path, Path]
) -> None:
    private, _, trust = ec_keys
    signed = run("sign", "key", benign_model, "--private_key", private, "--signature", benign_model / "model.sig")
    assert signed.returncode == 0, signed.stderr
    result = verify_oms(benign_model, trust)
    assert result.outcome is Outcome.VERIFIED and result.signer == "publisher"
    (benign_model / "config.json").write_text('{"hidden_size": 9}')
    tampered = verify_oms(benign_model, trust)
    assert tampered.outcome is Outcome.TAMPERED and tampered.diff is not None
    assert tampered.diff.changed == ("config.json",)


def test_modelshield_signature_verifies_with_model_signing_cli(
    benign_model: Path, ec_keys: tuple[Path, Path, Path]
) -> None:
    private, public, trust = ec_keys
    signature = sign(benign_model, private)
    assert signature == benign_model / "model.sig"
    checked = run("verify", "key", benign_model, "--signature", signature, "--public_key", public)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert verify_oms(benign_model, trust).outcome is Outcome.VERIFIED
    (benign_model / "weights" / "extra.bin").write_bytes(b"x")
    assert run("verify", "key", benign_model, "--signature", signature, "--public_key", public).returncode != 0
    result = verify_oms(benign_model, trust)
    assert result.outcome is Outcome.TAMPERED and result.diff.added == ("weights/extra.bin",)  # type: ignore[union-attr]


def test_untrusted_oms_signer(benign_model: Path, ec_keys: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sign(benign_model, ec_keys[0])
    stranger, _ = write_keypair(tmp_path / "stranger", generate("p256"))
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(tmp_path / "stranger.pub", trust / "stranger.pub")
    assert verify_oms(benign_model, trust).outcome is Outcome.UNTRUSTED_SIGNER
    assert stranger.exists()


def test_attestation_binds_the_oms_manifest(benign_model: Path, ec_keys: tuple[Path, Path, Path]) -> None:
    private, _, trust = ec_keys
    signature = sign(benign_model, private)
    scan_and_attest(benign_model, private)
    payload = json.loads(base64.b64decode(json.loads(sidecar_path(benign_model).read_text())["payload"]))
    oms_subjects = [s for s in payload["subject"] if s.get("annotations", {}).get("modelshield") == "oms-manifest"]
    assert oms_subjects[0]["digest"]["sha256"] == oms_root_digest(signature)
    assert verify(benign_model, trust).outcome is Outcome.VERIFIED
    (benign_model / "config.json").write_text('{"other": 1}')
    sign(benign_model, private)  # a new OMS signature over other bytes: the attestation no longer matches
    (benign_model / "config.json").write_text(json.dumps({"hidden_size": 8, "layers": 2}))
    result = verify(benign_model, trust)
    assert result.outcome is Outcome.TAMPERED and "model-signing signature" in result.reasons[0]
