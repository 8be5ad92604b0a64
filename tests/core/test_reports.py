"""Reports: the JSON report validates against the published schema, SARIF against SARIF 2.1.0."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema
import pytest

from modelshield.demo import _proto2_call
from modelshield.render import render
from modelshield.render.json import report_dict, schema_path
from modelshield.render.sarif import sarif_dict
from modelshield.scan import scan
from modelshield.types import ScanReport, VerdictKind

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ScanReport:
    folder = tmp_path_factory.mktemp("models")
    (folder / "ok.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    (folder / "evil.pkl").write_bytes(_proto2_call("os", "system", "touch /nonexistent/canary"))
    (folder / "blob.dat").write_bytes(b"\x00garbage\xff")
    (folder / "empty.bin").write_bytes(b"")
    return scan([str(folder)], compute_hashes=True)


def test_json_report_matches_published_schema(report: ScanReport) -> None:
    schema = json.loads(Path(schema_path()).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(render(report, "json"))
    jsonschema.validate(data, schema)
    assert data["verdict"] == "fail"
    assert data["summary"]["files_scanned"] == 4
    assert {a["path"].rsplit("/", 1)[-1] for a in data["artifacts"]} >= {"ok.pkl", "evil.pkl", "blob.dat"}
    assert all(a["sha256"] and len(a["sha256"]) == 64 for a in data["artifacts"] if a["member"] is None)
    gaps = data["coverage"]["gaps"]
    assert any(g["rule_id"] == "UNKNOWN-CONTENT" for g in gaps) and data["coverage"]["complete"] is False


def test_schema_rejects_a_broken_report(report: ScanReport) -> None:
    schema = json.loads(Path(schema_path()).read_text())
    data = report_dict(report)
    data["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_sarif_validates_against_official_schema(report: ScanReport) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    log = sarif_dict(report)
    jsonschema.Draft4Validator(schema).validate(log)
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    for result in run["results"]:
        rule = rules[result["ruleId"]]
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert rule["help"]["text"] and rule["shortDescription"]["text"]
        assert float(rule["properties"]["security-severity"]) >= 0
        assert result["partialFingerprints"]["modelshieldFinding/v1"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert any(r["level"] == "error" for r in run["results"])


def test_verdicts(report: ScanReport) -> None:
    by_name = {a.path.rsplit("/", 1)[-1]: a for a in report.artifacts if a.member is None}
    assert by_name["ok.pkl"].verdict(report.fail_on) is VerdictKind.PASS
    assert by_name["evil.pkl"].verdict(report.fail_on) is VerdictKind.FAIL
    assert by_name["blob.dat"].verdict(report.fail_on) is VerdictKind.WARN
    assert report.blocking
