"""CVE relevance levels on real files, with advisory ranges from the shipped data."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.advisories.assess import assess
from modelshield.advisories.db import load_db
from modelshield.advisories.environment import environment_from_pairs
from modelshield.advisories.requirements import extract_file
from modelshield.scan import Scanner
from modelshield.types import Artifact, Category, Finding, Location, ScanReport, Severity


def _vulns(path: Path, env: dict[str, str] | None = None) -> dict[str, Finding]:
    report = Scanner().scan([str(path)])  # the readers only; the assessment under test runs below
    result = assess(report, environment_from_pairs(env) if env is not None else None)
    assert result.report.advisory_snapshot == load_db().snapshot
    out: dict[str, Finding] = {}
    for f in result.report.findings:
        if f.category is Category.VULNERABILITY:
            cve = next((r for r in f.references if r.startswith("CVE-")), f.rule_id)
            key = f.rule_id if f.rule_id == "VULN-INFO" else cve
            out[key] = f
    return out


def test_keras_version_and_lambda_pattern_read_from_real_file(models: dict[str, Path]) -> None:
    import keras

    facts = extract_file(models["lambda.keras"])
    assert facts is not None and facts.kind == "keras"
    assert ("keras", keras.__version__, "made-with") in {(n.package, n.version, n.how) for n in facts.needs}
    assert "keras-lambda" in facts.patterns
    plain = extract_file(models["plain.keras"])
    assert plain is not None and "keras-lambda" not in plain.patterns


def test_transformers_config_and_onnx_producer(models: dict[str, Path]) -> None:
    import transformers

    facts = extract_file(models["config.json"])
    assert facts is not None
    assert ("transformers", transformers.__version__) in {(n.package, n.version) for n in facts.needs}
    onnx_facts = extract_file(models["model.onnx"])
    assert onnx_facts is not None and onnx_facts.details["producer_name"] == "pytorch"
    assert onnx_facts.details["opsets"].startswith("ai.onnx=")
    assert ("torch", "2.5.1", "made-with") in {(n.package, n.version, n.how) for n in onnx_facts.needs}


def test_sklearn_version_torch_archive_and_gguf_template(models: dict[str, Path]) -> None:
    import sklearn

    sk = extract_file(models["estimator.pkl"])
    assert sk is not None and sk.details["sklearn_version"] == sklearn.__version__
    pt = extract_file(models["weights.pt"])
    assert pt is not None and pt.kind == "torch-zip" and "torch-pickle" in pt.patterns
    assert any(k.endswith("version") for k in pt.details)
    chat = extract_file(models["chat.gguf"])
    plain = extract_file(models["plain.gguf"])
    assert chat is not None and "gguf-chat-template" in chat.patterns and chat.details["general.name"] == "demo"
    assert plain is not None and "gguf-chat-template" not in plain.patterns


def test_critical_when_pattern_present_and_installed_loader_vulnerable(models: dict[str, Path]) -> None:
    found = _vulns(models["chat.gguf"], {"llama-cpp-python": "0.2.71"})
    assert found["CVE-2024-34359"].severity is Severity.CRITICAL
    assert found["CVE-2024-34359"].rule_id == "VULN-EXPLOITABLE"
    assert "0.2.72" in found["CVE-2024-34359"].evidence
    torch_found = _vulns(models["weights.pt"], {"torch": "2.5.1"})
    assert torch_found["CVE-2025-32434"].severity is Severity.CRITICAL


def test_high_when_vulnerable_loader_installed_for_format_without_pattern(models: dict[str, Path]) -> None:
    found = _vulns(models["plain.gguf"], {"llama-cpp-python": "0.2.71"})
    assert found["CVE-2024-34359"].severity is Severity.HIGH
    assert found["CVE-2024-34359"].rule_id == "VULN-LOADER"
    lam = _vulns(models["lambda.keras"], {"keras": "3.3.3"})
    plain = _vulns(models["plain.keras"], {"keras": "3.3.3"})
    assert lam["CVE-2026-12481"].severity is Severity.CRITICAL  # Lambda present
    assert plain["CVE-2026-12481"].severity is Severity.HIGH  # same loader, no Lambda


def test_low_and_info_for_a_needed_version_without_relevance(models: dict[str, Path]) -> None:
    found = _vulns(models["model.onnx"])
    assert found["CVE-2025-32434"].severity is Severity.LOW  # made with torch 2.5.1, no torch pickle here
    assert found["CVE-2025-32434"].rule_id == "VULN-REQUIREMENT"
    assert found["VULN-INFO"].severity is Severity.INFO
    assert "torch 2.5.1" in found["VULN-INFO"].message


def test_recorded_old_version_with_pattern_is_high_without_env(models: dict[str, Path]) -> None:
    found = _vulns(models["old-lambda.keras"])
    assert found["CVE-2026-12481"].severity is Severity.HIGH
    assert "installed loader unknown" in found["CVE-2026-12481"].evidence


def test_fixed_versions_produce_no_findings(models: dict[str, Path]) -> None:
    assert _vulns(models["chat.gguf"], {"llama-cpp-python": "0.2.72"}) == {}
    assert not [
        f for f in _vulns(models["weights.pt"], {"torch": "2.6.0"}).values() if "CVE-2025-32434" in f.references
    ]
    assert _vulns(models["config.json"]) == {}  # written by the installed (fixed) transformers
    assert _vulns(models["lambda.keras"], {"keras": "3.15.1"}).keys() <= {"VULN-INFO"}


def test_static_detection_naming_a_cve_counts_as_pattern(tmp_path: Path, models: dict[str, Path]) -> None:
    path = str(models["plain.keras"])
    detection = Finding(
        "KERAS-MODULE-REF",
        Severity.HIGH,
        Category.MALICIOUS_CODE,
        "config imports os.system",
        Location(path),
        references=("CVE-2025-1550",),
    )
    report = ScanReport(
        "t",
        "r",
        (path,),
        (Artifact(path, None, "keras", 10, None, (detection,)),),
        Severity.MEDIUM,
        "now",
        0.0,
        1,
        0,
        10,
    )
    result = assess(report, environment_from_pairs({"keras": "3.3.3"}))
    cve = [
        f for f in result.report.findings if f.category is Category.VULNERABILITY and "CVE-2025-1550" in f.references
    ]
    assert cve and cve[0].severity is Severity.CRITICAL and "static detection" in cve[0].evidence


@pytest.mark.parametrize(
    "content", [b"\x89HDF\r\n\x1a\n" + b"\x00" * 10, b"GGUF\x03\x00\x00\x00\xff", b"PK\x03\x04junk"]
)
def test_truncated_files_give_an_error_not_a_crash(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    facts = extract_file(path)
    assert facts is not None
    assert facts.kind in {"keras-h5", "gguf", "zip"}
    assert facts.error or facts.kind == "keras-h5"


def test_files_alike_get_their_own_findings(tmp_path: Path, models: dict[str, Path]) -> None:
    # Files with the same facts are assessed once; each must still get every finding, at its own path.
    folder = tmp_path / "alike"
    folder.mkdir()
    data = models["old-lambda.keras"].read_bytes()
    paths = [folder / name for name in ("a.keras", "b.keras", "c.keras")]
    for path in paths:
        path.write_bytes(data)
    report = assess(Scanner().scan([str(folder)])).report
    for path in paths:
        high = [
            f
            for f in report.findings
            if f.location.path == str(path)
            and f.category is Category.VULNERABILITY
            and "CVE-2026-12481" in f.references
            and f.severity is Severity.HIGH
        ]
        assert len(high) == 1, path
        artifact = next(a for a in report.artifacts if a.path == str(path) and a.member is None)
        assert high[0] in artifact.findings
