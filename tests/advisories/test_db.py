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


def _format_1(db: AdvisoryDB, indent: int | None = None) -> str:
    """The single-document format earlier versions wrote (and users may still have)."""
    packages = {pkg: [a.to_compact() for a in sorted(advs, key=lambda a: a.id)] for pkg, advs in db.packages.items()}
    document = {"format": 1, "snapshot": db.snapshot, "source": db.source, "count": len(db), "packages": packages}
    return json.dumps(document, indent=indent, ensure_ascii=False) + "\n"


def test_shipped_file_is_a_header_and_one_line_per_package(tmp_path: Path) -> None:
    from modelshield.advisories.db import shipped_path

    text = shipped_path().read_text(encoding="utf-8")
    db = AdvisoryDB.from_json(text, "shipped")
    lines = text.splitlines()
    assert json.loads(lines[0]) == {"format": 2, "snapshot": db.snapshot, "source": db.source, "count": len(db)}
    assert [line.split("\t", 1)[0] for line in lines[1:]] == sorted(db.packages)
    assert db.to_json() == text  # what scripts/build_advisories.py writes, byte for byte
    for indent in (None, 1):  # format 1, on one line or pretty-printed: the same records
        old = AdvisoryDB.from_json(_format_1(db, indent), "old")
        assert (old.snapshot, old.source) == (db.snapshot, db.source)
        assert dict(old.packages.items()) == dict(db.packages.items())


def test_a_package_line_is_decoded_on_first_use_and_errors_name_file_line_and_package(tmp_path: Path) -> None:
    good = AdvisoryDB.from_json(load_db().to_json(), "x")
    torch_line = next(line for line in good.to_json().splitlines() if line.startswith("torch\t"))
    header = '{"format":2,"snapshot":"2026-01-01","source":"s","count":0}\n'
    text = header + 'broken\t[{"id": \n' + torch_line + "\n"
    db = AdvisoryDB.from_json(text, "db.json")
    assert "broken" in db.packages and "torch" in db.packages and "numpy" not in db.packages
    assert db.for_package("torch") == good.for_package("torch") and db.for_package("numpy") == ()
    with pytest.raises(AdvisoryDataError, match=r"db\.json:2: field packages\.broken: not valid JSON"):
        db.for_package("broken")
    no_tab = header + "torch [] \n"
    with pytest.raises(AdvisoryDataError, match=r"db\.json:2: field packages"):
        AdvisoryDB.from_json(no_tab, "db.json")
    with pytest.raises(AdvisoryDataError, match="expected advisory database format 2"):
        AdvisoryDB.from_json('{"format": 3}\n', "db.json")
    with pytest.raises(AdvisoryDataError, match=r"db\.json:2: field \(top level\): not valid JSON"):
        AdvisoryDB.from_json('{"format": 1,\n "packages": {', "db.json")


def test_a_user_copy_in_format_1_still_wins_when_newer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.advisories.db import clear_cache

    shipped = load_db()
    newer = AdvisoryDB("2099-01-01", "user copy", {"torch": shipped.for_package("torch")})
    (tmp_path / "advisories.json").write_text(_format_1(newer), encoding="utf-8")
    monkeypatch.setenv("MODELSHIELD_DATA_DIR", str(tmp_path))
    clear_cache()
    try:
        db = load_db()
        assert db.snapshot == "2099-01-01" and db.for_package("torch") == shipped.for_package("torch")
    finally:
        clear_cache()
