"""The command line: exit codes, output formats, bad input gives messages, not tracebacks."""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshield.cli.main import build_parser, main
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
        (["scan", "--fail-on", "severe", "x"], "argument --fail-on: invalid choice: 'severe'"),
        (["scan", "--jobs", "0", "x"], "argument --jobs/-j: must be >= 1, got 0"),
        (["scan", "-j", "many", "x"], "argument --jobs/-j: expected an integer >= 1, got 'many'"),
        (["scan", "--timeout", "0", "x"], "argument --timeout: must be >= 0.1, got 0"),
        (["scan", "--limit", "max_opcodes", "x"], "expected NAME=VALUE, got 'max_opcodes'"),
        (["scan", "--limit", "bogus=1", "x"], "unknown limit"),
        (["scan", "--bogus-flag", "x"], "unrecognized arguments: --bogus-flag"),
        (["scan", "--fail", "high", "x"], "unrecognized arguments: --fail"),  # no prefix matching
        (["scan"], "required: TARGET"),
        (["verify", "x"], "required: --trust"),
        (["bogus-command"], "invalid choice: 'bogus-command'"),
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


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser tree (groups included), e.g. ("policy", "check")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _commands(sub, (*path, name))


def _parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


ALL_COMMANDS = list(_commands(build_parser()))


def test_every_command_is_registered() -> None:
    names = {" ".join(path) for path in ALL_COMMANDS}
    expected = {"scan", "demo", "rules", "env", "advisories info", "advisories lookup", "advisories update"}
    expected |= {"keygen", "verify", "sign", "card", "detonate", "diff", "weight-stats", "deep-scan"}
    expected |= {"policy", "policy check", "policy show", "policy init"}
    assert expected <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "-h"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.startswith(f"usage: modelshield {' '.join(path)} ")
    assert "Show this message and exit." in out


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_takes_what_its_parser_gives(path: tuple[str, ...]) -> None:
    # The parsed values are passed as keyword arguments: each dest must be a parameter and back.
    parser = _parser_of(path)
    handler = parser.get_default("_handler")
    if handler is None:  # a group
        return
    dests = {a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)}
    assert dests == set(inspect.signature(handler).parameters)


@pytest.mark.parametrize("group", [(), ("advisories",), ("policy",)], ids=lambda g: " ".join(g) or "modelshield")
def test_bare_group_prints_its_help_and_exits_2(group: tuple[str, ...]) -> None:
    result = run_cli(*group)
    assert result.returncode == 2
    assert result.stdout.startswith(f"usage: {' '.join(('modelshield', *group))} ")
    assert "commands:" in result.stdout and "Traceback" not in result.stderr


def test_scan_imports_no_cli_framework_pydantic_rich_or_other_commands(samples: dict[str, Path]) -> None:
    # `modelshield scan` must start fast: no typer/click, and pydantic/rich only when really needed.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelshield", "scan", "--no-progress", str(samples["benign"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert {"argparse", "modelshield.scan"} <= imported  # the parse below sees the real import list
    heavy = {"typer", "click", "pydantic", "rich"}
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []
    assert sorted(m for m in imported if m.startswith("modelshield.cli.cmd_")) == []  # other commands: not needed


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
