"""``modelshield detonate`` and ``modelshield scan --dynamic`` end to end (subprocess CLI)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.sandbox.isolation import SandboxUnavailable, probe


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args], capture_output=True, text=True, timeout=300, env=env
    )


class Shell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.fixture()
def models(tmp_path: Path) -> dict[str, Path]:
    try:
        probe()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox on this machine: {exc.message}")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "benign.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (folder / "evil.pkl").write_bytes(pickle.dumps(Shell(f"touch {tmp_path / 'canary'}"), protocol=2))
    return {
        "folder": folder,
        "benign": folder / "benign.pkl",
        "evil": folder / "evil.pkl",
        "canary": tmp_path / "canary",
    }


def test_detonate_json_has_the_full_event_log(models: dict[str, Path]) -> None:
    result = run_cli("detonate", str(models["evil"]), "--format", "json", "--timeout", "30")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    [det] = data["detonations"]
    assert det["loader"] == "pickle" and det["outcome"] == "completed"
    assert [r["event"] for r in det["records"] if r["kind"] == "event"] == ["pickle.find_class", "os.system"]
    assert {f["rule_id"] for f in det["findings"]} == {"DYN-IMPORT", "DYN-PROCESS-EXEC"}
    assert all(f["source"] == "dynamic" for f in det["findings"])
    assert not models["canary"].exists()


def test_detonate_benign_exits_0(models: dict[str, Path]) -> None:
    result = run_cli("detonate", str(models["benign"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout and "->" not in result.stdout


def test_detonate_nothing_loadable_exits_3(tmp_path: Path, models: dict[str, Path]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert run_cli("detonate", str(tmp_path / "notes.txt")).returncode == 3


def test_scan_dynamic_merges_static_and_dynamic_findings(models: dict[str, Path]) -> None:
    result = run_cli("scan", "--dynamic", "--jobs", "2", "--format", "json", "--no-progress", str(models["folder"]))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_path = {Path(a["path"]).name: a for a in report["artifacts"] if a["member"] is None}
    evil_sources = {f["source"] for f in by_path["evil.pkl"]["findings"]}
    assert "dynamic" in evil_sources
    assert "DYN-PROCESS-EXEC" in {f["rule_id"] for f in by_path["evil.pkl"]["findings"]}
    assert not [f for f in by_path["benign.pkl"]["findings"] if f["source"] == "dynamic"]
    assert not models["canary"].exists()


def test_refuses_clearly_when_no_sandbox_works(models: dict[str, Path], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with python but neither bwrap nor unshare
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    for args in (["detonate", str(models["evil"])], ["scan", "--dynamic", "--no-progress", str(models["evil"])]):
        result = run_cli(*args, env=env)
        assert result.returncode == 2
        assert "no working sandbox" in result.stderr and "never runs unsandboxed" in result.stderr
    assert not models["canary"].exists()
