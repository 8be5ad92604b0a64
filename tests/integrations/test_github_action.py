"""action.yml, the composite GitHub Action: its inputs and steps agree, and its scripts run as GitHub runs them.

GitHub substitutes ``${{ ... }}`` expressions into a composite step before bash runs it (composite
actions get no ``INPUT_*`` variables). The test does the same with the few expression forms the
action uses (inputs, github.action_path, step outputs), gives each step the files GitHub provides
(GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP), and runs ``bash --noprofile --norc -eo pipefail``
on the script: the install step really pip installs this working tree's package into a venv, the
scan step really scans a temp folder with a generated malicious pickle (never loaded) and a benign
one, and the gate step fails or passes the job by fail-on.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integrations._helpers import ROOT, benign_pickle, clean_env, malicious_pickle, package_copy

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    return data


def step(action: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in action["runs"]["steps"] if s["name"] == name)
    return found


class Runner:
    """Runs the action's shell steps the way a GitHub runner does, one job's state at a time."""

    def __init__(self, action: dict[str, Any], action_path: Path, work: Path, **inputs: str) -> None:
        self.action = action
        self.inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
        unknown = set(inputs) - set(self.inputs)
        assert not unknown, f"not inputs of the action: {unknown}"
        self.inputs.update(inputs)
        self.action_path = action_path
        self.work = work
        self.temp = work / "runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.outputs: dict[str, dict[str, str]] = {}
        self.summary = work / "step-summary.md"

    def evaluate(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("inputs."):
                return self.inputs[expr[len("inputs.") :]]
            if expr == "github.action_path":
                return str(self.action_path)
            parts = expr.split(".")
            if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
                return self.outputs.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"expression the test does not know: {expr}")

        return EXPRESSION.sub(value, text)

    def run(self, name: str, preset: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run step ``name``; its outputs are recorded under its id. ``preset`` stands in for earlier steps."""
        spec = step(self.action, name)
        assert spec["shell"] == "bash"
        output = self.work / f"output-{spec.get('id', 'anon')}"
        output.write_text("")
        env = clean_env(
            GITHUB_OUTPUT=str(output),
            GITHUB_STEP_SUMMARY=str(self.summary),
            RUNNER_TEMP=str(self.temp),
            GITHUB_ACTIONS="true",
        )
        for key, raw in spec.get("env", {}).items():
            env[key] = self.evaluate(str(raw))
        env.update(preset or {})
        script = self.work / "step.sh"
        script.write_text(self.evaluate(spec["run"]))
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if "id" in spec:
            pairs = [line.split("=", 1) for line in output.read_text().splitlines() if "=" in line]
            self.outputs[spec["id"]] = {key: val for key, val in pairs}
        return result


def test_inputs_steps_and_outputs_are_coherent() -> None:
    action = load_action()
    assert action["runs"]["using"] == "composite"
    inputs = set(action["inputs"])
    assert {"paths", "fail-on", "package", "extras", "sarif-file", "upload-sarif", "args"} <= inputs
    steps = action["runs"]["steps"]
    written: dict[str, set[str]] = {}  # step id -> outputs its script writes, for the steps so far
    for s in steps:
        assert ("run" in s) != ("uses" in s), s["name"]
        text = yaml.safe_dump({k: v for k, v in s.items() if k != "run"})
        for ref in re.findall(r"inputs\.([\w-]+)", text):
            assert ref in inputs, f"{s['name']} uses unknown input {ref}"
        for sid, out in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
            assert out in written.get(sid, set()), f"{s['name']} reads {sid}.{out}, which no earlier step writes"
        if "run" in s:
            assert s["shell"] == "bash"
            assert "${{" not in s["run"], f"{s['name']}: pass expressions through env, never into the script"
            found = set(re.findall(r'echo "([\w-]+)=[^"]*" >> "\$GITHUB_OUTPUT"', s["run"]))
            if "id" in s:
                written[s["id"]] = found
            else:
                assert not found, f"{s['name']} writes outputs but has no id"
    for name, spec in action["outputs"].items():
        sid, out = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", spec["value"]).groups()  # type: ignore[union-attr]
        assert out in written[sid], name
    upload = step(action, "Upload SARIF to code scanning")
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["if"].startswith("always()") and "inputs.upload-sarif == 'true'" in upload["if"]
    assert upload["with"]["sarif_file"] == "${{ steps.scan.outputs.sarif-file }}"
    names = [s["name"] for s in steps]
    assert names.index("Install modelshield") < names.index("Scan") < names.index("Upload SARIF to code scanning")
    assert names[-1] == "Gate" and "if" not in step(action, "Gate")  # runs only when every step before succeeded


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    """The install step run for real once: (action, action path, runner temp holding the venv)."""
    action = load_action()
    work = tmp_path_factory.mktemp("action-install")
    action_path = package_copy(work / "action")
    runner = Runner(action, action_path, work)
    result = runner.run("Install modelshield")
    assert result.returncode == 0, result.stdout + result.stderr
    binary = runner.outputs["install"]["modelshield"]
    assert Path(binary).is_file() and binary.startswith(str(runner.temp))
    assert "modelshield" in result.stdout  # --version printed
    return action, action_path, runner.temp / "modelshield-venv" / "bin" / "modelshield"


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "models" / "benign.pkl").write_bytes(benign_pickle())
    (root / "models" / "evil.pkl").write_bytes(malicious_pickle(tmp_path / "canary"))
    (root / "models" / "notes.md").write_text("# notes\n")
    return root


def scan_and_gate(
    installed: tuple[dict[str, Any], Path, Path], work: Path, **inputs: str
) -> tuple[Runner, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str] | None]:
    action, action_path, binary = installed
    runner = Runner(action, action_path, work, **inputs)
    runner.outputs["install"] = {"modelshield": str(binary)}
    scan = runner.run("Scan")
    gate = runner.run("Gate") if scan.returncode == 0 else None
    return runner, scan, gate


def test_malicious_model_fails_the_job_after_writing_sarif(
    installed: tuple[dict[str, Any], Path, Path], models: Path
) -> None:
    runner, scan, gate = scan_and_gate(installed, models, paths="models")
    assert scan.returncode == 0, scan.stderr  # the scan step succeeds so the SARIF upload runs
    assert runner.outputs["scan"] == {"exit-code": "1", "sarif-file": "modelshield.sarif"}
    sarif = json.loads((models / "modelshield.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"PICKLE-UNSAFE-GLOBAL"}
    flagged = {loc["physicalLocation"]["artifactLocation"]["uri"] for r in results for loc in r["locations"]}
    assert any(uri.endswith("evil.pkl") for uri in flagged) and not any(uri.endswith("benign.pkl") for uri in flagged)
    assert gate is not None and gate.returncode == 1
    assert "::error title=modelshield::findings at or above 'medium'" in gate.stdout
    assert "verdict: FAIL" in runner.summary.read_text()
    assert not (models.parent / "canary").exists()


def test_benign_models_pass_and_fail_on_never_only_reports(
    installed: tuple[dict[str, Any], Path, Path], models: Path
) -> None:
    runner, scan, gate = scan_and_gate(installed, models, paths="models/benign.pkl\nmodels/notes.md")
    assert runner.outputs["scan"]["exit-code"] == "0", scan.stderr
    assert gate is not None and gate.returncode == 0 and "passed" in gate.stdout

    runner, scan, gate = scan_and_gate(installed, models, paths="models", **{"fail-on": "never"})
    assert runner.outputs["scan"]["exit-code"] == "0"
    assert gate is not None and gate.returncode == 0
    assert json.loads((models / "modelshield.sarif").read_text())["runs"][0]["results"]  # still reported

    runner, scan, gate = scan_and_gate(installed, models, paths="models", **{"fail-on": "critical", "args": "--jobs 2"})
    assert runner.outputs["scan"]["exit-code"] == "1"  # os.system is critical


def test_nothing_scannable_and_bad_input(installed: tuple[dict[str, Any], Path, Path], tmp_path: Path) -> None:
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "empty-dir" / "blank").write_bytes(b"")
    runner, scan, gate = scan_and_gate(installed, tmp_path, paths="empty-dir")
    assert runner.outputs["scan"]["exit-code"] == "3"
    assert gate is not None and gate.returncode == 3 and "nothing scannable" in gate.stdout
    runner, scan, gate = scan_and_gate(installed, tmp_path, paths="empty-dir", **{"allow-nothing-scannable": "true"})
    assert gate is not None and gate.returncode == 0

    runner, scan, gate = scan_and_gate(installed, tmp_path, paths="does-not-exist")
    assert scan.returncode == 2 and gate is None  # the job fails at the scan step; no SARIF to upload
    assert "does-not-exist: no such file or folder" in scan.stderr
    assert "sarif-file" not in runner.outputs["scan"]

    runner, scan, gate = scan_and_gate(installed, tmp_path, paths="empty-dir", **{"fail-on": "sometimes"})
    assert scan.returncode == 2 and "fail-on must be" in scan.stdout


def test_example_workflow_uses_the_action_with_its_inputs() -> None:
    inputs = set(load_action()["inputs"])
    workflow = yaml.safe_load((ROOT / "docs" / "examples" / "modelshield.yml").read_text())
    assert workflow["permissions"]["security-events"] == "write"  # upload-sarif needs it
    steps = workflow["jobs"]["scan-models"]["steps"]
    [ours] = [s for s in steps if s.get("uses", "").split("@")[0].endswith("/modelshield")]
    assert set(ours["with"]) <= inputs
    doc = (ROOT / "docs" / "github-action.md").read_text()
    for name in inputs:
        assert f"| `{name}` |" in doc, f"input {name} is not documented"
