"""The manifest: one SHA-256 per file, ignored names, parallel == serial, digest reuse in reports."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelshield.attest.manifest import (
    ManifestError,
    build_manifest,
    check_unchanged,
    hash_file,
    is_ignored,
    sidecar_path,
    with_digests,
)
from modelshield.scan import scan


def test_digests_match_hashlib_and_ignored_files_are_left_out(benign_model: Path) -> None:
    (benign_model / "modelshield.attestation.dsse.json").write_text("{}")
    (benign_model / "model.sig").write_text("{}")
    (benign_model / ".git").mkdir()
    (benign_model / ".git" / "HEAD").write_text("ref")
    manifest = build_manifest(benign_model)
    names = [f.name for f in manifest.files]
    assert names == ["config.json", "weights/embed.safetensors", "weights/head.safetensors"]
    for item in manifest.files:
        data = (benign_model / item.name).read_bytes()
        assert item.sha256 == hashlib.sha256(data).hexdigest() and item.size == len(data)


def test_parallel_and_serial_agree(benign_model: Path) -> None:
    assert build_manifest(benign_model, workers=1).files == build_manifest(benign_model, workers=4).files


def test_chunk_boundaries(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(str(tmp_path / "f"), chunk_size=1024) == (len(data), hashlib.sha256(data).hexdigest())


def test_is_ignored() -> None:
    assert is_ignored("README.md") and is_ignored("x.bin.modelshield.dsse.json") and is_ignored(".git/config")
    assert not is_ignored("docs/README.md") and not is_ignored("model.safetensors")


def test_sidecar_paths(tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_bytes(b"x")
    assert sidecar_path(tmp_path / "m.pt").name == "m.pt.modelshield.dsse.json"
    assert sidecar_path(tmp_path).name == "modelshield.attestation.dsse.json"


def test_report_reuses_manifest_digests(benign_model: Path) -> None:
    manifest = build_manifest(benign_model)
    report = with_digests(scan(str(benign_model)), manifest.digests_by_path())
    top = {os.path.relpath(a.path, benign_model): a.sha256 for a in report.artifacts if a.member is None}
    assert top["config.json"] == manifest.by_name()["config.json"].sha256
    assert top["README.md"] is None  # the card is not part of the manifest


def test_change_after_hashing_is_detected(benign_model: Path) -> None:
    manifest = build_manifest(benign_model)
    check_unchanged(manifest)
    (benign_model / "config.json").write_text('{"hidden_size": 9}')
    with pytest.raises(ManifestError, match="changed"):
        check_unchanged(manifest)
    (benign_model / "new.bin").write_bytes(b"1")
    with pytest.raises(ManifestError, match="appeared or vanished"):
        check_unchanged(manifest)
