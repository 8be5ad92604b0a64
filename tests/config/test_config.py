"""Settings from MODELSHIELD_* variables and modelshield.toml / [tool.modelshield], through the real CLI.

Every test runs the installed command in a fresh subprocess, in a temp folder that is a git work
tree of its own (so no settings file above it is picked up), with no MODELSHIELD_* variables but
the ones the test sets.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield import config
from modelshield.cli.main import build_parser


class Shell:
    """A pickle whose load would run a shell command (never loaded here)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()  # the lookup stops at the work tree's root
    (tmp_path / "benign.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Shell(), protocol=4))
    return tmp_path


def run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIELD_")}
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def fmt_of(result: subprocess.CompletedProcess[str]) -> str:
    """Which report format the scan wrote to stdout."""
    out = result.stdout.lstrip()
    if not out.startswith("{"):
        return "text"
    return "sarif" if json.loads(out).get("version") == "2.1.0" else "json"


def test_precedence_flag_over_env_over_file_over_default(project: Path) -> None:
    assert fmt_of(run(project, "scan", "--no-progress", "benign.pkl")) == "text"
    (project / "modelshield.toml").write_text('[scan]\nformat = "sarif"\n')
    from_file = run(project, "scan", "--no-progress", "benign.pkl")
    assert fmt_of(from_file) == "sarif", from_file.stderr
    assert f"--format from {project / 'modelshield.toml'}" in from_file.stderr  # a file changing a gate is said
    assert fmt_of(run(project, "scan", "--no-progress", "benign.pkl", MODELSHIELD_FORMAT="json")) == "json"
    both = run(project, "scan", "benign.pkl", MODELSHIELD_FORMAT="json", MODELSHIELD_SCAN_FORMAT="text")
    assert fmt_of(both) == "text"  # the command's own variable beats the generic one
    flag = run(project, "scan", "-f", "json", "benign.pkl", MODELSHIELD_SCAN_FORMAT="text")
    assert fmt_of(flag) == "json"
    assert "--format from" not in flag.stderr


def test_file_top_level_and_command_table(project: Path) -> None:
    (project / "modelshield.toml").write_text('exit-zero = true\n[scan]\nfail_on = "critical"\n')
    result = run(project, "scan", "-f", "json", "evil.pkl")
    assert result.returncode == 0, result.stderr  # exit-zero from the top level
    assert json.loads(result.stdout)["verdict"] == "fail"
    assert run(project, "scan", "evil.pkl", MODELSHIELD_EXIT_ZERO="false").returncode == 1  # env turns it off


def test_pyproject_tool_table(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.modelshield.scan]\nformat = "json"\n')
    (project / "sub").mkdir()
    (project / "sub" / "m.pkl").write_bytes((project / "benign.pkl").read_bytes())
    result = run(project / "sub", "scan", "m.pkl")  # found from a sub-folder, upwards
    assert fmt_of(result) == "json", result.stderr
    (project / "modelshield.toml").write_text('[scan]\nformat = "sarif"\n')  # the own file wins in a folder
    assert fmt_of(run(project, "scan", "benign.pkl")) == "sarif"


def test_repeatable_flag_and_limit_table(project: Path) -> None:
    (project / "modelshield.toml").write_text("[scan]\nlimit = { max_opcodes = 3 }\n")
    result = run(project, "scan", "-f", "json", "benign.pkl")
    rules = {f["rule_id"] for a in json.loads(result.stdout)["artifacts"] for f in a["findings"]}
    assert any("LIMIT" in r for r in rules), rules  # the tiny opcode limit from the file was applied
    env = run(project, "scan", "-f", "json", "benign.pkl", MODELSHIELD_CONFIG="none", MODELSHIELD_LIMIT="max_opcodes=3")
    assert json.loads(env.stdout)["artifacts"] == json.loads(result.stdout)["artifacts"]


def test_required_option_given_by_environment(project: Path) -> None:
    missing = run(project, "keygen")
    assert missing.returncode == 2 and "--out" in missing.stderr
    result = run(project, "keygen", MODELSHIELD_KEYGEN_OUT=str(project / "k"))
    assert result.returncode == 0, result.stderr
    assert (project / "k.key").is_file() and (project / "k.pub").is_file()


def test_config_off_and_explicit_file(project: Path) -> None:
    (project / "modelshield.toml").write_text('[scan]\nformat = "json"\n')
    assert fmt_of(run(project, "scan", "benign.pkl", MODELSHIELD_CONFIG="none")) == "text"
    other = project / "team.toml"
    other.write_text('[scan]\nformat = "sarif"\n')
    assert fmt_of(run(project, "scan", "benign.pkl", MODELSHIELD_CONFIG=str(other))) == "sarif"


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('fail-on = "high\n', {}, "not valid TOML"),
        ("jobz = 2\n", {}, "unknown option 'jobz'"),
        ("[serve]\nfail-on = 'high'\n", {}, "[serve] fail-on: unknown option"),
        ("[scan]\njobs = 0\n", {}, "[scan] jobs='0': --jobs: must be >= 1"),
        ("[scan]\nexit-zero = 'yes'\n", {}, "--exit-zero is on or off"),
        ("[scan]\nformat = ['json']\n", {}, "--format takes one value"),
        ("", {"MODELSHIELD_FAIL_ON": "extreme"}, "env MODELSHIELD_FAIL_ON='extreme': --fail-on must be one of"),
        ("", {"MODELSHIELD_JOBS": "two"}, "env MODELSHIELD_JOBS='two'"),
        ("", {"MODELSHIELD_SCAN_EXIT_ZERO": "maybe"}, "--exit-zero is on or off"),
        ("", {"MODELSHIELD_CONFIG": "/nonexistent/modelshield.toml"}, "MODELSHIELD_CONFIG=/nonexistent"),
    ],
)
def test_bad_settings_are_exit_2_with_where(project: Path, toml: str, env: dict[str, str], expected: str) -> None:
    if toml:
        (project / "modelshield.toml").write_text(toml)
    result = run(project, "scan", "evil.pkl", **env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_generic_variable_invalid_for_one_command_names_the_scoped_one(project: Path) -> None:
    result = run(project, "detonate", "benign.pkl", MODELSHIELD_FORMAT="sarif")
    assert result.returncode == 2
    assert "MODELSHIELD_<COMMAND>_FORMAT" in result.stderr


def test_config_show_reports_value_and_source(project: Path) -> None:
    (project / "modelshield.toml").write_text('fail-on = "high"\n[scan]\njobs = 2\n')
    result = run(project, "config", "show", "scan", "-f", "json", MODELSHIELD_SCAN_TIMEOUT="30")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["file"] == str(project / "modelshield.toml")
    scan = {s["option"]: s for s in shown["commands"]["scan"]}
    assert scan["--fail-on"]["value"] == "high" and scan["--fail-on"]["source"].endswith("modelshield.toml fail-on")
    assert scan["--jobs"]["value"] == 2 and "[scan] jobs" in scan["--jobs"]["source"]
    assert scan["--timeout"] == {
        "option": "--timeout",
        "value": 30.0,
        "source": "env MODELSHIELD_SCAN_TIMEOUT",
        "env": ["MODELSHIELD_SCAN_TIMEOUT", "MODELSHIELD_TIMEOUT"],
        "key": "timeout",
    }
    assert scan["--format"]["source"] == "default"
    text = run(project, "config", "show", "policy", "check")
    assert text.returncode == 0 and "modelshield policy check" in text.stdout and "modelshield scan" not in text.stdout
    assert run(project, "config", "show", "nope").returncode == 2


def test_every_option_has_its_own_names() -> None:
    # Within a command no two options share an env variable or a file key; every flag is reachable.
    for path, parser in config.walk(build_parser()):
        actions = config.configurable(parser)
        names = [config.env_names(path, a)[0] for a in actions]
        assert len(names) == len(set(names)), path
        keys = [config.option_name(a) for a in actions]
        assert len(keys) == len(set(keys)), path


def test_no_settings_file_means_no_toml_parser(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelshield", "scan", "--no-progress", "benign.pkl"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "modelshield.config" in imported and "tomllib" not in imported
