"""``modelshield scan hf://org/name[@revision]``: offline from the local HF cache, ``--online`` through huggingface_hub.

The offline tests build a cache tree in tmp (``HF_HUB_CACHE``: ``models--org--name/snapshots/<commit>``
with symlinks into ``blobs/``, ``refs/main``). The ``--online`` tests run the real
``huggingface_hub.snapshot_download`` inside the installed CLI against a fake Hub on 127.0.0.1
(``HF_ENDPOINT``; tests/integrations/fake_hub.py): nothing ever goes to the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from tests.integrations._helpers import benign_pickle, clean_env, malicious_pickle, modelshield_cli, run
from tests.integrations.fake_hub import FakeRepo, serve

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 437985598\n"
)


def cache_repo(hub: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT, ref: str | None = "main") -> Path:
    """Lay out ``repo`` in the HF cache ``hub`` the way huggingface_hub does; returns the snapshot folder."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return snapshot


def scan(hub: Path, *args: str, endpoint: str | None = None, pythonpath: Path | None = None) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """The installed CLI, JSON report: (exit code, report or {}, stderr). HF settings point only at tmp."""
    env = clean_env(HF_HUB_CACHE=str(hub), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HOME", "HF_ENDPOINT", "PYTHONPATH"):
        env.pop(name, None)
    env["HF_ENDPOINT"] = endpoint or "http://127.0.0.1:9"  # discard port: nothing listens, nothing leaves the host
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result = run([*modelshield_cli(), "scan", "--no-progress", "-f", "json", *args], env=env, timeout=120)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def rule_ids(report: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["rule_id"] for a in report["artifacts"] for f in a["findings"]}


def test_offline_hf_url_scans_the_cached_snapshot(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    canary = tmp_path / "canary"
    config = json.dumps({"model_type": "bert"}).encode()
    cache_repo(hub, "org/evil", {"config.json": config, "pytorch_model.bin": malicious_pickle(canary)})
    snapshot = cache_repo(hub, "org/good", {"config.json": config, "weights.pkl": benign_pickle()})
    cache_repo(hub, "org/good", {"config.json": config}, commit=OTHER, ref="v1")

    code, report, err = scan(hub, "hf://org/evil")
    assert code == 1, err
    assert "PICKLE-UNSAFE-GLOBAL" in rule_ids(report)
    assert any(a["path"].endswith("/pytorch_model.bin") for a in report["artifacts"])

    for target in ("hf://org/good", f"hf://org/good@{COMMIT}", "hf://org/good@main", "hf:org/good"):
        code, report, err = scan(hub, target)
        assert code == 0, (target, err)
        assert sorted(Path(a["path"]).relative_to(snapshot).as_posix() for a in report["artifacts"]) == [
            "config.json",
            "weights.pkl",
        ]
    code, report, err = scan(hub, "hf://org/good@v1")
    assert code == 0 and [Path(a["path"]).name for a in report["artifacts"]] == ["config.json"]
    assert not canary.exists()


def test_lfs_pointer_in_the_cache_is_a_coverage_finding(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    cache_repo(hub, "org/partial", {"config.json": b'{"model_type": "gpt2"}', "model.safetensors": LFS_POINTER})
    code, report, err = scan(hub, "hf://org/partial")
    assert code == 1, err  # fail closed: the weights were never scanned
    [pointer] = [a for a in report["artifacts"] if a["path"].endswith("model.safetensors")]
    findings = {f["rule_id"]: f for f in pointer["findings"]}
    assert findings["LFS-POINTER-NOT-FETCHED"]["category"] == "coverage"
    assert report["verdict"] != "pass"


def test_offline_and_not_cached_is_a_clear_error(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    cache_repo(hub, "org/model", {"config.json": b"{}"})
    code, report, err = scan(hub, "hf://org/absent")
    assert code == 2 and report == {}
    assert "hf://org/absent: no such file or folder, and not in the Hugging Face cache" in err
    assert "hint: rerun with --online" in err
    code, _, err = scan(hub, "hf://org/model@v9")
    assert code == 2 and "revision 'v9' is not in the cache" in err and "--online" in err
    assert "Traceback" not in err


@pytest.fixture()
def fake_hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    canary = tmp_path / "canary"
    evil = {
        "config.json": b'{"model_type": "bert"}',
        "pytorch_model.bin": malicious_pickle(canary),
        "tokenizer/vocab.txt": b"[PAD]\nthe\n",
    }
    good = {"config.json": b'{"model_type": "bert"}', "weights.pkl": benign_pickle()}
    with serve([FakeRepo("org/evil", evil, COMMIT), FakeRepo("org/good", good, OTHER, refs=("main", "v1"))]) as hub:
        yield hub


def test_online_downloads_into_the_cache_then_scans(tmp_path: Path, fake_hub) -> None:  # type: ignore[no-untyped-def]
    hub = tmp_path / "hub"
    code, report, err = scan(hub, "hf://org/evil", "--online", endpoint=fake_hub.url)
    assert code == 1, err
    assert "PICKLE-UNSAFE-GLOBAL" in rule_ids(report)
    snapshot = hub / "models--org--evil" / "snapshots" / COMMIT
    assert sorted(Path(a["path"]).relative_to(snapshot).as_posix() for a in report["artifacts"]) == [
        "config.json",
        "pytorch_model.bin",
        "tokenizer/vocab.txt",
    ]
    assert (hub / "models--org--evil" / "refs" / "main").read_text() == COMMIT
    assert ("GET", f"/org/evil/resolve/{COMMIT}/pytorch_model.bin") in fake_hub.requests

    seen = len(fake_hub.requests)
    code, report, err = scan(hub, "hf://org/evil", endpoint=fake_hub.url)  # offline now: from the cache
    assert code == 1 and "PICKLE-UNSAFE-GLOBAL" in rule_ids(report), err
    assert len(fake_hub.requests) == seen  # offline means no request at all

    code, report, err = scan(hub, "hf://org/good@v1", "--online", endpoint=fake_hub.url)
    assert code == 0, err
    assert (hub / "models--org--good" / "refs" / "v1").read_text() == OTHER
    assert not (tmp_path / "canary").exists()


def test_online_errors_are_clear(tmp_path: Path, fake_hub) -> None:  # type: ignore[no-untyped-def]
    hub = tmp_path / "hub"
    code, _, err = scan(hub, "hf://org/absent", "--online", endpoint=fake_hub.url)
    assert code == 2 and "hf://org/absent: no such repo on the Hub" in err and "hint:" in err
    code, _, err = scan(hub, "hf://org/good@v9", "--online", endpoint=fake_hub.url)
    assert code == 2 and "revision 'v9' does not exist on the Hub" in err
    code, _, err = scan(hub, "hf://org/good", "--online")  # nothing listens on the endpoint
    assert code == 2 and "hf://org/good: cannot reach the Hub" in err and "Traceback" not in err


def test_online_without_the_hub_extra_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "block" / "huggingface_hub"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('huggingface_hub is not installed (test)')\n")
    code, _, err = scan(tmp_path / "hub", "hf://org/model", "--online", pythonpath=tmp_path / "block")
    assert code == 2
    assert "--online needs huggingface_hub" in err and "pip install 'modelshield[hub]'" in err
