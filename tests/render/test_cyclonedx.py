"""The CycloneDX 1.6 ML-BOM: written by the installed CLI, valid against the schema, signed and verified.

One session BOM of the hostile folder (a GGUF whose chat template escapes the Jinja sandbox,
CVE-2024-34359 class; a malicious pickle; a torch zip holding one) checks the mapping: components,
hashes, members, properties, vulnerabilities with CVE ids from the advisory data, tool metadata.
Then ``sign-bom`` / ``verify-bom`` end to end, with every way the check must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from tests.render.conftest import HOSTILE_GGUF, HOSTILE_PICKLE, Models, cli


def validate(text: str) -> Any:
    """The strict CycloneDX 1.6 JSON schema validator's complaint, or None."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)


@pytest.fixture(scope="session")
def bom_file(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``modelshield scan HOSTILE -f cyclonedx -o bom.cdx.json`` (no --hash: the BOM hashes anyway)."""
    out = tmp_path_factory.mktemp("bom") / "bom.cdx.json"
    done = cli("scan", models.hostile, "-f", "cyclonedx", "-o", out, "--no-progress")
    assert done.returncode == 1, done.stderr
    return out


@pytest.fixture(scope="session")
def bom(bom_file: Path) -> dict[str, Any]:
    return dict(json.loads(bom_file.read_text(encoding="utf-8")))


def props(item: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in item.get("properties", []) if p["name"] == f"modelshield:{name}"]


def by_name(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in bom["components"]}


def test_valid_cyclonedx_1_6(bom_file: Path, bom: dict[str, Any]) -> None:
    assert validate(bom_file.read_text(encoding="utf-8")) is None
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["serialNumber"].startswith("urn:uuid:")


def test_the_validator_rejects_a_broken_bom(bom: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(bom))
    broken["components"][0]["type"] = "weights"
    assert validate(json.dumps(broken)) is not None


def test_one_model_component_per_file_with_hashes(models: Models, bom: dict[str, Any]) -> None:
    components = by_name(bom)
    assert set(components) == {HOSTILE_GGUF, HOSTILE_PICKLE, "checkpoint.pt"}
    for name, component in components.items():
        assert component["type"] == "machine-learning-model"
        digest = hashlib.sha256((models.hostile / name).read_bytes()).hexdigest()
        assert component["hashes"] == [{"alg": "SHA-256", "content": digest}]
        assert props(component, "path") == [str(models.hostile / name)]
        assert props(component, "verdict") == ["fail"]
    assert props(components[HOSTILE_GGUF], "format") == ["gguf"]
    assert props(components[HOSTILE_PICKLE], "format") == ["pickle"]
    assert props(components["checkpoint.pt"], "format") == ["pytorch-zip"]
    assert any(v.startswith("TEMPLATE-SSTI critical: ") for v in props(components[HOSTILE_GGUF], "finding"))


def test_archive_members_are_sub_components(bom: dict[str, Any]) -> None:
    checkpoint = by_name(bom)["checkpoint.pt"]
    (member,) = checkpoint["components"]
    assert member["name"] == "archive/data.pkl" and member["type"] == "file"
    assert props(member, "format") == ["pickle"] and props(member, "verdict") == ["fail"]
    assert any(v.startswith("PICKLE-UNSAFE-GLOBAL critical") for v in props(member, "finding"))


def test_findings_are_vulnerabilities_with_cve_ids(bom: dict[str, Any]) -> None:
    refs = {c["name"]: c["bom-ref"] for c in bom["components"]}
    member_ref = by_name(bom)["checkpoint.pt"]["components"][0]["bom-ref"]
    vulns = bom["vulnerabilities"]
    ssti = [v for v in vulns if v["id"] == "CVE-2024-34359"]
    assert ssti, [v["id"] for v in vulns]
    assert all(v["affects"] == [{"ref": refs[HOSTILE_GGUF]}] for v in ssti)
    assert all(v["source"]["name"] == "NVD" and v["source"]["url"].endswith("/CVE-2024-34359") for v in ssti)
    critical = next(v for v in ssti if v["ratings"][0]["severity"] == "critical")
    assert {"name": "modelshield:rule-id", "value": "TEMPLATE-SSTI"} in critical["properties"]
    assert 94 in critical["cwes"] and critical["recommendation"]
    # the advisory record's other ids (from the advisory data) are references
    pattern = next(v for v in ssti if {"name": "modelshield:rule-id", "value": "VULN-PATTERN"} in v["properties"])
    assert {"GHSA-56xg-wfcc-g829", "PYSEC-2026-392"} <= {r["id"] for r in pattern["references"]}
    # a rule finding without a CVE is a vulnerability under its rule id, rated by modelshield
    pickles = [v for v in vulns if v["id"] == "PICKLE-UNSAFE-GLOBAL"]
    assert {v["affects"][0]["ref"] for v in pickles} == {refs[HOSTILE_PICKLE], member_ref}
    assert all(v["ratings"][0] == {**v["ratings"][0], "severity": "critical", "method": "other"} for v in pickles)
    assert all("touch" in v["detail"] for v in pickles)  # the evidence


def test_tool_and_scan_metadata(bom: dict[str, Any]) -> None:
    (tool,) = bom["metadata"]["tools"]["components"]
    assert tool["name"] == "modelshield" and tool["type"] == "application" and tool["version"]
    assert props(bom["metadata"], "verdict") == ["fail"]
    assert props(bom["metadata"], "fail-on") == ["medium"]
    assert props(bom["metadata"], "advisory-snapshot")


def test_bom_to_stdout(models: Models) -> None:
    done = cli("scan", models.benign, "-f", "cyclonedx", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert validate(done.stdout) is None
    (component,) = json.loads(done.stdout)["components"]
    assert component["type"] == "machine-learning-model" and props(component, "verdict") == ["pass"]
    assert "vulnerabilities" not in json.loads(done.stdout) or not json.loads(done.stdout)["vulnerabilities"]


# ----------------------------------------------------------------------------- sign-bom / verify-bom


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bom-keys")
    for name in ("release", "stranger"):
        assert cli("keygen", "--out", root / name).returncode == 0
    trust = root / "trusted"
    trust.mkdir()
    (trust / "release.pub").write_bytes((root / "release.pub").read_bytes())
    return {"key": root / "release.key", "stranger": root / "stranger.key", "trust": trust}


def test_sign_and_verify(models: Models, keys: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model.safetensors"
    model.write_bytes(models.benign.read_bytes())
    bom_path = tmp_path / "bom.json"
    assert cli("scan", model, "-f", "cyclonedx", "-o", bom_path, "--no-progress").returncode == 0
    signed = cli("sign-bom", bom_path, "--key", keys["key"])
    assert signed.returncode == 0, signed.stderr
    envelope = tmp_path / "bom.json.dsse.json"
    assert f"signed BOM envelope: {envelope}" in signed.stderr
    data = json.loads(envelope.read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    assert data["payloadType"] == "application/vnd.in-toto+json"
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    assert statement["predicate"] == json.loads(bom_path.read_text())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert statement["subject"] == [{"name": str(model), "digest": {"sha256": digest}}]

    ok = cli("verify-bom", envelope, "--trust", keys["trust"], "--bom", bom_path, "--check-files")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("VERIFIED: BOM envelope (signed by release, 1 subject(s))")

    # the BOM file edited after signing
    edited = tmp_path / "edited.json"
    changed = json.loads(bom_path.read_text())
    changed["metadata"]["properties"][0]["value"] = "pass-please"
    edited.write_text(json.dumps(changed))
    bad = cli("verify-bom", envelope, "--trust", keys["trust"], "--bom", edited)
    assert bad.returncode == 10 and "differs from the BOM that was signed" in bad.stdout

    # the envelope's payload swapped (signature kept)
    forged = dict(data)
    statement["predicate"]["metadata"]["properties"][0]["value"] = "pass"
    forged["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged_path = tmp_path / "forged.dsse.json"
    forged_path.write_text(json.dumps(forged))
    bad = cli("verify-bom", forged_path, "--trust", keys["trust"])
    assert bad.returncode == 10 and "altered after signing" in bad.stdout

    # signed by a key the verifier does not trust
    other = tmp_path / "other.dsse.json"
    assert cli("sign-bom", bom_path, "--key", keys["stranger"], "-o", other).returncode == 0
    bad = cli("verify-bom", other, "--trust", keys["trust"])
    assert bad.returncode == 13 and bad.stdout.startswith("UNTRUSTED-SIGNER")

    # the model changed after the BOM was signed
    model.write_bytes(model.read_bytes() + b"\0")
    assert cli("verify-bom", envelope, "--trust", keys["trust"]).returncode == 0  # files not checked
    bad = cli("verify-bom", envelope, "--trust", keys["trust"], "--check-files")
    assert bad.returncode == 10 and f"{model}: changed since the BOM was signed" in bad.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the BOM"),
        ("{not json", "not JSON"),
        ('{"bomFormat": "SPDX"}', "not a CycloneDX JSON BOM"),
        ('{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}', "no component has a SHA-256"),
        ('{"bomFormat": "CycloneDX", "components": [{"name": "m", "hashes": [{"alg": "SHA-256"}]}]}', "malformed"),
        (
            '{"bomFormat": "CycloneDX", "components": [{"name": "m", "hashes": [{"alg": "SHA-256", "content": "x"}]}]}',
            "malformed SHA-256",
        ),
        ('{"bomFormat": "CycloneDX", "components": "none"}', "malformed components"),
    ],
)
def test_sign_bom_bad_input(keys: dict[str, Path], tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bom.json"
    if content is not None:
        path.write_text(content)
    done = cli("sign-bom", path, "--key", keys["key"])
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bom.json.dsse.json").exists()


def test_verify_bom_bad_input(bom_file: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    done = cli("verify-bom", bom_file, "--trust", keys["trust"])  # the BOM itself, not its envelope
    assert done.returncode == 2 and "malformed DSSE envelope" in done.stderr and "Traceback" not in done.stderr
    done = cli("verify-bom", tmp_path / "missing.dsse.json", "--trust", keys["trust"])
    assert done.returncode == 2 and "cannot read the BOM envelope" in done.stderr


def test_unknown_content_is_a_file_component_with_a_coverage_gap(tmp_path: Path) -> None:
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"\x00\x01\x02 definitely not a model \xfe" * 4)
    done = cli("scan", blob, "-f", "cyclonedx", "--no-progress")
    assert done.returncode == 3, done.stderr  # nothing scannable (low coverage gap under the threshold)
    assert validate(done.stdout) is None
    data = json.loads(done.stdout)
    (component,) = data["components"]
    assert component["type"] == "file" and props(component, "format") == ["unknown"]
    assert any(v.startswith("UNKNOWN-CONTENT: ") for v in props(component, "coverage-gap"))
    assert not any(v["id"] == "UNKNOWN-CONTENT" for v in data.get("vulnerabilities", []))
    assert props(data["metadata"], "coverage-complete") == ["false"]


def test_skipping_the_library_validation_changes_nothing(models: Models) -> None:
    """render_cyclonedx skips the library's quadratic Bom.validate: the output must equal the library's own path."""
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    from modelshield.render.cyclonedx import build_bom, render_cyclonedx
    from modelshield.scan import scan

    report = scan([str(models.hostile)], compute_hashes=True)
    ours = json.loads(render_cyclonedx(report))
    library = json.loads(make_outputter(build_bom(report), OutputFormat.JSON, SchemaVersion.V1_6).output_as_string())
    assert ours.pop("serialNumber") != library.pop("serialNumber")  # random per BOM
    assert ours == library
    assert len(ours["dependencies"]) == len(ours["components"]) == 3
