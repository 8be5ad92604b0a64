"""The shipped advisory data, the indexed matcher, the builder and the OSV export import."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from modelshield.advisories.db import AdvisoryDataError, AdvisoryDB, load_db
from modelshield.advisories.matcher import Matcher
from modelshield.advisories.osv import build_from_folder, import_export


def test_shipped_data_has_snapshot_and_curated_ranges() -> None:
    db = load_db()
    assert db.snapshot >= "2026-01-01" and len(db) > 1000
    adv = db.get("CVE-2025-1550")
    assert adv is not None and adv.package == "keras" and adv.fixed_versions == ("3.9.0",)  # curated, not 3.8.0


@pytest.mark.parametrize(
    ("package", "version", "expected"),
    [
        ("llama-cpp-python", "0.2.71", True),
        ("llama_cpp_python", "0.2.72", False),
        ("llama-cpp-python", "0.2.29", False),
        ("torch", "2.5.1", True),
        ("torch", "2.6.0", False),
        ("keras", "3.8.0", True),
        ("keras", "3.9.0", False),
    ],
)
def test_pep440_ranges(package: str, version: str, expected: bool) -> None:
    cve = {
        "llama-cpp-python": "CVE-2024-34359",
        "llama_cpp_python": "CVE-2024-34359",
        "torch": "CVE-2025-32434",
        "keras": "CVE-2025-1550",
    }[package]
    hits = {m.advisory.display_id for m in Matcher(load_db()).affected(package, version)}
    assert (cve in hits) is expected


def test_lookup_only_touches_one_package() -> None:
    matcher = Matcher(load_db())
    matcher.affected("onnx", "1.10.0")
    assert set(matcher._compiled) == {"onnx"}  # the index, not a scan of every record


def _record(rid: str, package: str, events: list[dict[str, str]], aliases: list[str]) -> dict[str, object]:
    return {
        "id": rid,
        "modified": "2026-05-01T00:00:00Z",
        "aliases": aliases,
        "summary": f"{rid} summary",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": package}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
    }


def test_build_applies_curation_and_names_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "osv").mkdir()
    (tmp_path / "curation").mkdir()
    rec = _record("PYSEC-1", "keras", [{"introduced": "3.0.0"}, {"fixed": "3.8.0"}], ["CVE-1"])
    (tmp_path / "osv" / "PYSEC-1.json").write_text(json.dumps(rec, indent=1))
    curated = tmp_path / "curation" / "curated.yaml"
    curated.write_text(
        'CVE-1: {relevant: true, ranges: [{introduced: "3.0.0"}, {fixed: "3.9.0"}], range_verified: true}\n'
    )
    db = build_from_folder(tmp_path)
    adv = db.get("CVE-1")
    assert adv is not None and adv.relevant and adv.fixed_versions == ("3.9.0",) and db.snapshot == "2026-05-01"
    curated.write_text("CVE-1: {relevant: true}\nCVE-2:\n  relevant: maybe\n")
    with pytest.raises(AdvisoryDataError) as err:
        build_from_folder(tmp_path)
    assert err.value.line == 3 and err.value.field == "CVE-2.relevant" and "curated.yaml:3" in str(err.value)
    curated.unlink()
    (tmp_path / "osv" / "PYSEC-2.json").write_text('{\n "id": "PYSEC-2",\n "affected": [\n {"package": {}}]\n}')
    with pytest.raises(AdvisoryDataError) as err:
        build_from_folder(tmp_path)
    assert "PYSEC-2.json:4" in str(err.value) and "affected[0].package.name" in str(err.value)


def test_import_export_zip_dedupes_and_keeps_flags(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "PYSEC-9.json",
            json.dumps(
                _record("PYSEC-9", "torch", [{"introduced": "0"}, {"fixed": "2.6.0"}], ["CVE-2025-32434", "GHSA-x"])
            ),
        )
        zf.writestr(
            "GHSA-x.json",
            json.dumps(
                _record("GHSA-x", "torch", [{"introduced": "0"}, {"fixed": "2.6.0"}], ["CVE-2025-32434", "PYSEC-9"])
            ),
        )
        zf.writestr("PYSEC-10.json", json.dumps(_record("PYSEC-10", "requests", [{"introduced": "0"}], [])))
    db = import_export(archive, load_db())
    assert len(db) == 1 and db.packages["torch"][0].id == "PYSEC-9"
    assert db.packages["torch"][0].relevant  # carried over from the curated shipped record
    assert AdvisoryDB.from_json(db.to_json(), "x").packages["torch"][0].fixed_versions == ("2.6.0",)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(AdvisoryDataError, match="bad.zip"):
        import_export(bad, load_db())


def test_update_cli_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.cli.main import main

    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.json", "{ broken")
    monkeypatch.setenv("MODELSHIELD_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exc:
        main(["advisories", "update", "--from", str(archive)])
    assert exc.value.code == 2 and not (tmp_path / "data").exists()
