"""Policy: profiles, composition, waivers (applied and expired), file errors, CLI exit codes."""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from modelshield.policy import build_subject, builtin_policy, evaluate, load_policy_text, policy_from_file
from modelshield.policy.defaults import STARTER
from modelshield.policy.model import PolicyError, schema
from modelshield.scan import scan

TODAY = _dt.date(2026, 11, 25)


@pytest.fixture(scope="session")
def torch_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A benign torch checkpoint written by torch.save (a pickle inside a zip)."""
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("policy") / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelshield", *args], capture_output=True, text=True, timeout=300)


def _policy(tmp_path: Path, waivers: str = "") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(STARTER.replace("waivers: []\n", waivers or "waivers: []\n"))
    return path


def test_published_schema_matches_model_and_accepts_starter() -> None:
    published = json.loads((Path(__file__).parents[2] / "src/modelshield/schemas/policy.schema.json").read_text())
    assert published == schema()
    jsonschema.validate(yaml.safe_load(STARTER), published)
    assert set(builtin_policy().spec.profiles) == {"experimental", "internal", "production", "regulated"}


def test_same_model_allowed_internal_denied_production(torch_model: Path) -> None:
    subject = build_subject(scan(str(torch_model)))
    policy = builtin_policy()
    internal = evaluate(policy, subject, "internal", TODAY)
    production = evaluate(policy, subject, "production", TODAY)
    assert internal.allowed and not production.allowed
    failed = [r for r in production.results if not r.ok]
    assert [r.rule for r in failed] == ["denied_formats"] and "denied" in failed[0].reasons[0]


def test_waiver_allows_until_it_expires(torch_model: Path, tmp_path: Path) -> None:
    waiver = "waivers:\n  - {rule: denied_formats, model: '*.pt', owner: alice, reason: legacy, expires: 2026-12-01}\n"
    policy = policy_from_file(_policy(tmp_path, waiver))
    subject = build_subject(scan(str(torch_model)))
    before = evaluate(policy, subject, "production", TODAY)
    assert before.allowed and [w.owner for w in before.waivers_applied] == ["alice"]
    after = evaluate(policy, subject, "production", _dt.date(2026, 12, 2))
    assert not after.allowed and [w.rule for w in after.waivers_expired] == ["denied_formats"]
    assert [f.rule_id for f in after.findings] == ["POLICY-WAIVER-EXPIRED"]
    assert "max_severity" in [r.rule for r in after.results if not r.ok]  # the expired waiver is itself a finding


def test_finding_waiver_by_advisory_id(torch_model: Path, tmp_path: Path) -> None:
    from modelshield.advisories.assess import assess
    from modelshield.advisories.environment import environment_from_pairs

    assessment = assess(scan(str(torch_model)), environment_from_pairs({"torch": "2.5.1"}))
    subject = build_subject(assessment.report, assessment.facts)
    assert not evaluate(builtin_policy(), subject, "experimental", TODAY).allowed  # critical CVE-2025-32434
    waived = "waivers:\n  - {rule: VULN-EXPLOITABLE, owner: bob, reason: sandboxed loader, expires: 2027-01-01}\n"
    decision = evaluate(policy_from_file(_policy(tmp_path, waived)), subject, "experimental", TODAY)
    assert decision.allowed and decision.waived_findings


def test_any_of_and_all_of_compose(torch_model: Path) -> None:
    text = """
default_profile: p
profiles:
  p:
    rules:
      - any_of: [{denied_formats: ["pickle*"]}, {max_severity: critical}]
      - all_of: [{max_severity: critical}, {signature_required: {trusted_keys: [k1]}}]
"""
    policy = policy_from_file_text(text)
    decision = evaluate(policy, build_subject(scan(str(torch_model))), None, TODAY)
    any_of, all_of = decision.results
    assert any_of.passed and [c.passed for c in any_of.children] == [False, True]
    assert not all_of.passed and "signature_required failed" in all_of.reasons
    assert not decision.allowed


def policy_from_file_text(text: str):  # noqa: ANN201 - test helper
    from modelshield.policy.engine import Policy

    return Policy.from_spec(load_policy_text(text, "inline.yaml"), "inline.yaml")


def test_profile_selected_by_remote_code(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"auto_map": {"AutoModel": "m.M"}, "transformers_version": "5.0.0"})
    )
    (tmp_path / "m.py").write_text("class M: pass\n")
    from modelshield.advisories.assess import assess

    assessment = assess(scan(str(tmp_path)))
    decision = evaluate(builtin_policy(), build_subject(assessment.report, assessment.facts), None, TODAY)
    assert decision.profile == "production" and "remote_code" in decision.profile_reason
    assert "remote_code" in [r.rule for r in decision.results if not r.ok]


@pytest.mark.parametrize(
    ("bad", "line", "field"),
    [
        ("      - max_severity: medium\n", "      - max_severity: hgih\n", "max_severity"),
        ("default_profile: internal\n", "default_profile: internal\nbogus: 1\n", "bogus"),
        ("      - max_severity: high\n", "      - max_severity: [high\n", None),
    ],
)
def test_malformed_policy_names_file_line_field(tmp_path: Path, bad: str, line: str, field: str | None) -> None:
    text = STARTER.replace(bad, line, 1)
    expected_line = text[: text.index(line) + len(line.rstrip())].count("\n") + 1  # last line of the edit
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "p.yaml")
    if field:
        assert err.value.line == expected_line and field in err.value.field
    else:
        assert err.value.line is not None and abs(err.value.line - expected_line) <= 1


def test_cli_malformed_policy_exits_2_without_scanning(torch_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(STARTER.replace("      - max_severity: medium\n", "      - max_severity: hgih\n", 1))
    result = _cli("scan", str(torch_model), "--policy", str(path), "--format", "json", "--no-progress")
    assert result.returncode == 2 and result.stdout == ""
    assert f"{path}:" in result.stderr and "max_severity" in result.stderr


def test_cli_policy_exit_codes_and_report(torch_model: Path) -> None:
    ok = _cli("policy", "check", str(torch_model), "--profile", "internal")
    denied = _cli("scan", str(torch_model), "--profile", "production", "--format", "json", "--no-progress")
    assert ok.returncode == 0 and "ALLOWED under profile 'internal'" in ok.stdout
    assert denied.returncode == 1 and "[FAIL] denied_formats" in denied.stderr
    report = json.loads(denied.stdout)
    assert report["policy"]["decision"] == "deny" and report["policy"]["failed"] == ["denied_formats"]
    assert report["advisories"]["snapshot"]
    assert _cli("policy", "check", str(torch_model), "--profile", "nope").returncode == 2


def test_cli_init_and_show_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    assert _cli("policy", "init", str(path)).returncode == 0
    assert load_policy_text(path.read_text(), str(path)) == builtin_policy().spec
    assert _cli("policy", "init", str(path)).returncode == 2  # no silent overwrite
    shown = _cli("policy", "show", "--policy", str(path))
    assert shown.returncode == 0 and load_policy_text(shown.stdout, "shown") == builtin_policy().spec
