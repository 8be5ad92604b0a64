"""The local Hugging Face cache as a source: hf:org/name[@rev], bare ids, symlinks into blobs/."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from modelshield.errors import SourceError
from modelshield.scan import scan
from modelshield.sources import resolve_source
from modelshield.sources.hf_cache import HFCacheSource, hub_cache, snapshot_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_repo(hub: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT, ref: str | None = "main") -> Path:
    folder = hub / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = folder / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_scan_by_repo_id_follows_blob_symlinks(hub: Path) -> None:
    config = json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "other/repo--m.M"}}).encode()
    snapshot = make_repo(hub, "org/model", {"config.json": config, "sub/vocab.txt": b"[PAD]\nthe\n"})
    for target in ("hf:org/model", "org/model", f"hf:org/model@{COMMIT}", "org/model@main"):
        report = scan(target)
        assert sorted(Path(a.path).relative_to(snapshot).as_posix() for a in report.artifacts) == [
            "config.json",
            "sub/vocab.txt",
        ]
        assert [f.rule_id for f in report.findings] == ["HF-REMOTE-CODE-EXTERNAL"]


def test_single_snapshot_without_ref(hub: Path) -> None:
    snapshot = make_repo(hub, "org/noref", {"README.md": b"# hi\n"}, ref=None)
    assert snapshot_folder("hf:org/noref") == snapshot


def test_missing_repo_and_revision_are_clear_errors(hub: Path) -> None:
    make_repo(hub, "org/model", {"README.md": b"x"})
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        scan("hf:org/absent")
    with pytest.raises(SourceError, match="revision 'v9' is not in the cache"):
        scan("hf:org/model@v9")
    with pytest.raises(SourceError, match="invalid"):
        snapshot_folder("hf:org/model@../../etc")


def test_local_paths_win_over_repo_ids(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").write_text("local")
    assert not HFCacheSource().accepts("org/model")
    assert type(resolve_source("org/model")).__name__ == "LocalSource"
    assert HFCacheSource().accepts("hf:org/model")


def test_cache_location_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"
