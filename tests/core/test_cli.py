"""The command line: exit codes, output formats, bad input gives messages, not tracebacks."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.demo import _proto2_call


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.fixture()
def samples(tmp_path: Path) -> dict[str, Path]:
    canary = tmp_path / "canary"
    paths = {
        "benign": tmp_path / "benign.pkl",
        "evil": tmp_path / "evil.bin",
        "unknown": tmp_path / "notes.dat",
        "canary": canary,
    }
    paths["benign"].write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    paths["evil"].write_bytes(_proto2_call("os", "system", f"touch {canary}"))
    paths["unknown"].write_bytes(b"\x00\x01\x02 definitely not a model \xfe")
    return paths


def test_benign_exits_0(samples: dict[str, Path]) -> None:
    result = run_cli("scan", str(samples["benign"]))
    assert result.returncode == 0, result.stderr
    assert "verdict: PASS" in result.stdout


def test_malicious_exits_1_and_never_runs_payload(samples: dict[str, Path]) -> None:
    result = run_cli("scan", "--format", "json", str(samples["evil"]))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "fail"
    rule_ids = {f["rule_id"] for a in report["artifacts"] for f in a["findings"]}
    assert any(r.startswith("PICKLE-") for r in rule_ids)
    assert not samples["canary"].exists()


def test_exit_zero_and_fail_on(samples: dict[str, Path]) -> None:
    assert run_cli("scan", "--exit-zero", str(samples["evil"])).returncode == 0
    # Only unknown content (low): passes the default threshold, fails at --fail-on low.
    mixed = [str(samples["benign"]), str(samples["unknown"])]
    assert run_cli("scan", *mixed).returncode == 0
    assert run_cli("scan", "--fail-on", "low", *mixed).returncode == 1


def test_nothing_scannable_exits_3(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert run_cli("scan", str(tmp_path / "empty")).returncode == 3
    (tmp_path / "x.dat").write_bytes(b"\x00\x01garbage")
    assert run_cli("scan", str(tmp_path / "x.dat")).returncode == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "/nonexistent/model.pt"], "no such file or folder"),
        (["scan", "--fail-on", "severe", "x"], "Invalid value"),
        (["scan", "--jobs", "0", "x"], "Invalid value"),
        (["scan", "--limit", "max_opcodes", "x"], "NAME=VALUE"),
        (["scan", "--limit", "bogus=1", "x"], "unknown limit"),
        (["scan", "--bogus-flag", "x"], "No such option"),
    ],
)
def test_bad_arguments_exit_2_with_message(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(pickle.dumps(1))
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_output_file_and_unwritable_output(samples: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    result = run_cli("scan", "-f", "sarif", "-o", str(out), str(samples["evil"]))
    assert result.returncode == 1
    assert result.stdout == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert "verdict: FAIL" in result.stderr
    bad = run_cli("scan", "-o", str(tmp_path / "missing" / "r.json"), str(samples["benign"]))
    assert bad.returncode == 2 and "cannot write output file" in bad.stderr


def test_jobs_runs_in_workers_and_matches_serial(samples: dict[str, Path]) -> None:
    serial = json.loads(run_cli("scan", "-f", "json", str(samples["evil"].parent)).stdout)
    parallel = json.loads(
        run_cli("scan", "-f", "json", "-j", "2", "--timeout", "60", str(samples["evil"].parent)).stdout
    )
    assert serial["artifacts"] == parallel["artifacts"]
    assert serial["verdict"] == parallel["verdict"] == "fail"


def test_help_and_version() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "scan" in result.stdout
    assert run_cli("--version").stdout.startswith("modelshield ")


def test_demo_flags_malicious_and_passes_benign(tmp_path: Path) -> None:
    result = run_cli("demo", "--keep", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "malicious flagged: 5/5" in result.stderr
    assert "canary file exists: False" in result.stderr
    assert not any(p.name.startswith("CANARY") for p in (tmp_path / "demo").rglob("*"))


def test_unknown_content_is_still_searched_for_known_bad_bytes(tmp_path: Path) -> None:
    eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    target = tmp_path / "blob.dat"
    target.write_bytes(bytes(range(256)) * 40 + eicar + b"\x00" * 64)
    result = run_cli("scan", "-f", "json", str(target))
    assert result.returncode == 1
    rules = {f["rule_id"] for a in json.loads(result.stdout)["artifacts"] for f in a["findings"]}
    assert {"UNKNOWN-CONTENT", "EICAR-TEST-FILE"} <= rules
