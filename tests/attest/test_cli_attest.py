"""The CLI: keygen, scan --attest, card, verify (exit codes per outcome), sign."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from modelshield.cli.main import main


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_keygen_scan_attest_card_verify_tamper(
    benign_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "keygen", "--out", tmp_path / "release", "--algorithm", "p256")
    assert code == 0 and len(out.strip()) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "release.key").st_mode) == 0o600
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "release.pub").write_bytes((tmp_path / "release.pub").read_bytes())

    report_file = tmp_path / "report.json"
    code, _, err = cli(
        capsys,
        "scan",
        benign_model,
        "--attest",
        "--key",
        tmp_path / "release.key",
        "-f",
        "json",
        "-o",
        report_file,
        "--no-progress",
        "--valid-days",
        "30",
    )
    assert code == 0 and "attestation:" in err
    report = json.loads(report_file.read_text())
    digests = {Path(a["path"]).name: a["sha256"] for a in report["artifacts"] if a["member"] is None}
    assert digests["config.json"] and digests["README.md"] is None

    code, out, _ = cli(capsys, "card", benign_model)
    assert code == 0 and "verdict: pass" in out and "attestation: modelshield.attestation.dsse.json" in out

    code, out, _ = cli(capsys, "verify", benign_model, "--trust", trust)
    assert code == 0 and out.startswith("VERIFIED")
    code, out, _ = cli(capsys, "verify", benign_model, "--trust", trust, "-f", "json")
    assert json.loads(out)["outcome"] == "VERIFIED"

    (benign_model / "config.json").write_text("{}")
    code, out, _ = cli(capsys, "verify", benign_model, "--trust", trust)
    assert code == 10 and out.startswith("TAMPERED") and "changed: config.json" in out


def test_scan_attest_needs_a_key_and_one_target(benign_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "scan", benign_model, "--attest", "--no-progress")
    assert code == 2 and "--attest needs --key" in err
    code, _, err = cli(capsys, "scan", benign_model, benign_model, "--attest", "--key", "k", "--no-progress")
    assert code == 2 and "exactly one" in err


def test_verify_exit_codes(
    benign_model: Path, malicious_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "keygen", "--out", tmp_path / "k")
    cli(capsys, "keygen", "--out", tmp_path / "other")
    trust = tmp_path / "trust.pem"
    trust.write_bytes((tmp_path / "k.pub").read_bytes())
    assert cli(capsys, "verify", benign_model, "--trust", trust)[0] == 12  # UNSIGNED
    cli(capsys, "scan", malicious_model, "--attest", "--key", tmp_path / "k.key", "--no-progress")
    code, out, _ = cli(capsys, "verify", malicious_model, "--trust", trust)
    assert code == 1 and out.startswith("POLICY-DENIED")
    assert cli(capsys, "verify", malicious_model, "--trust", trust, "--policy", "any")[0] == 0
    card = malicious_model / "README.md"
    card.write_text(card.read_text().replace("modelshield-fail-red", "modelshield-passed-brightgreen"))
    code, out, _ = cli(capsys, "verify", malicious_model, "--trust", trust, "--policy", "any")
    assert code == 14 and out.startswith("FORGED-CARD")
    cli(capsys, "scan", benign_model, "--attest", "--key", tmp_path / "other.key", "--no-progress")
    assert cli(capsys, "verify", benign_model, "--trust", trust)[0] == 13  # UNTRUSTED-SIGNER
    code, _, err = cli(capsys, "verify", tmp_path / "missing", "--trust", trust)
    assert code == 2 and "no such file" in err
