"""Container readers: lenient zip (PyTorch, TorchScript, npz), tar, 7z, compression wrappers.

Every fixture is generated here. The "malicious" pickle is built from opcodes by hand and is
never loaded: it would only ``touch CANARY``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.formats._streams import Unseekable

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats.compressed import CompressedReader
from modelshield.formats.interface import Blob, Reader, ScanContext
from modelshield.formats.sevenzip import SevenZipReader
from modelshield.formats.tar import TarReader
from modelshield.formats.zipfmt.reader import ZipReader
from modelshield.limits import Limits
from modelshield.scan import ScanOptions, scan_file
from modelshield.sources.local import file_blob
from modelshield.types import Finding, Severity

PAYLOAD = b"cos\nsystem\n(S'touch CANARY'\ntR."
CONTAINER_READERS: tuple[Reader, ...] = (ZipReader(), SevenZipReader(), CompressedReader(), TarReader())


# --------------------------------------------------------------------------- helpers


@dataclass
class Result:
    """What one reader produced for one blob."""

    reader: str
    format: str
    findings: list[Finding] = field(default_factory=list)
    children: list[Blob] = field(default_factory=list)

    def rules(self) -> set[str]:
        return {f.rule_id for f in self.findings}

    def child(self, member: str) -> Blob:
        matches = [c for c in self.children if c.members[-1] == member]
        assert matches, f"no child {member!r} in {[c.members[-1] for c in self.children]}"
        return matches[0]

    def names(self) -> list[str]:
        return [c.members[-1] for c in self.children]


def bytes_blob(data: bytes, name: str = "sample.bin") -> Blob:
    return Blob(name, (), len(data), lambda: io.BytesIO(data))


def run(blob: Blob | bytes, limits: Limits | None = None) -> Result:
    """Detect the container reader for ``blob`` and read it fully."""
    if isinstance(blob, bytes):
        blob = bytes_blob(blob)
    head = blob.head()
    reader = next((r for r in CONTAINER_READERS if r.sniff(head, blob)), None)
    assert reader is not None, f"no container reader recognises {head[:16]!r}"
    ctx = ScanContext(blob, limits or Limits())
    result = Result(reader.name, "")
    for item in reader.read(blob, ctx):
        if isinstance(item, Finding):
            result.findings.append(item)
        elif isinstance(item, Blob):
            result.children.append(item)
    result.format = ctx.format or reader.name
    return result


def read_all(blob: Blob) -> bytes:
    with blob.open() as stream:
        return stream.read()


def leaves(blob: Blob, depth: int = 0) -> Iterator[Blob]:
    """Expand containers recursively; yield every non-container blob."""
    head = blob.head()
    if depth < 8 and any(r.sniff(head, blob) for r in CONTAINER_READERS):
        for child in run(blob).children:
            yield from leaves(child, depth + 1)
    else:
        yield blob


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method, **kwargs) as archive:  # type: ignore[arg-type]
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def torch_like_zip(pickle_bytes: bytes = PAYLOAD, extra: dict[str, bytes] | None = None) -> bytes:
    members = {"archive/data.pkl": pickle_bytes, "archive/version": b"3\n", "archive/byteorder": b"little"}
    members["archive/data/0"] = bytes(range(64))
    members.update(extra or {})
    return zip_bytes(members)


def header_positions(data: bytes, signature: bytes) -> list[int]:
    out, pos = [], data.find(signature)
    while pos >= 0:
        out.append(pos)
        pos = data.find(signature, pos + 1)
    return out


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def member_header(data: bytes, name: bytes) -> tuple[int, int]:
    """Offsets of the local and central headers of member ``name``."""
    local = next(p for p in header_positions(data, b"PK\x03\x04") if data[p + 30 : p + 30 + len(name)] == name)
    central = next(p for p in header_positions(data, b"PK\x01\x02") if data[p + 46 : p + 46 + len(name)] == name)
    return local, central


def payload_children(result: Result) -> list[Blob]:
    return [c for c in result.children if read_all(c) == PAYLOAD]


# --------------------------------------------------------------------------- real frameworks


@pytest.fixture(scope="session")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    paths = {"state_dict": root / "model.pt", "script": root / "scripted.pt"}
    torch.save(model.state_dict(), paths["state_dict"])
    torch.jit.save(torch.jit.script(model), str(paths["script"]))
    return paths


def test_torch_state_dict_yields_only_the_pickle(torch_files: dict[str, Path]) -> None:
    path = torch_files["state_dict"]
    result = run(file_blob(str(path), path.stat().st_size))
    assert result.format == "pytorch-zip"
    assert result.findings == []
    assert [name.rsplit("/", 1)[-1] for name in result.names()] == ["data.pkl"]
    assert result.children[0].head(2) == b"\x80\x02"
    assert result.children[0].members[-1].startswith("model/")


def test_torchscript_module_yields_its_pickles(torch_files: dict[str, Path]) -> None:
    path = torch_files["script"]
    result = run(file_blob(str(path), path.stat().st_size))
    assert result.format == "torchscript"
    assert [f for f in result.findings if f.severity >= Severity.MEDIUM] == []
    bases = {name.rsplit("/", 1)[-1] for name in result.names()}
    assert {"data.pkl", "constants.pkl"} <= bases
    assert not any(name.endswith(".py") for name in result.names())  # code is checked in place
    assert all(c.head(1) == b"\x80" for c in result.children)
    assert {c.format_hint for c in result.children} == {"torchscript"}


def test_torchscript_code_with_file_access_is_reported(torch_files: dict[str, Path]) -> None:
    with zipfile.ZipFile(torch_files["script"]) as original:
        members = {i.filename: original.read(i.filename) for i in original.infolist()}
    code = next(n for n in members if n.endswith(".py"))
    members[code] += b"\n  def steal(self) -> Tensor:\n    return torch.from_file('/etc/shadow', False, 64)\n"
    result = run(zip_bytes(members))
    found = [f for f in result.findings if f.rule_id == "TORCHSCRIPT-DANGEROUS-CODE"]
    assert found and found[0].severity is Severity.HIGH
    assert "from_file" in found[0].message


def test_npz_members_are_yielded() -> None:
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(10), b=np.ones((2, 2)))
    result = run(buf.getvalue())
    assert result.format == "npz"
    assert sorted(result.names()) == ["a.npy", "b.npy"]
    assert all(c.head(6) == b"\x93NUMPY" for c in result.children)
    assert result.findings == []


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_joblib_compressed_dump_yields_the_pickle(tmp_path: Path, method: str) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    path = tmp_path / f"model.joblib.{method}"
    joblib.dump({"weights": np.arange(100.0), "name": "m"}, path, compress=(method, 3))
    result = run(file_blob(str(path), path.stat().st_size))
    assert result.reader == "compressed"
    assert [f.rule_id for f in result.findings] == []
    (child,) = result.children
    assert child.format_hint == "decompressed"
    assert child.head(1) == b"\x80"  # joblib pickles with protocol >= 2


# --------------------------------------------------------------------------- zip tampering


def test_encryption_flag_on_plain_member_is_tampering_and_still_scanned() -> None:
    data = torch_like_zip()
    local, central = member_header(data, b"archive/data.pkl")
    data = patch(data, local + 6, "<H", 1)
    data = patch(data, central + 8, "<H", 1)
    with zipfile.ZipFile(io.BytesIO(data)) as strict, pytest.raises(RuntimeError):
        strict.read("archive/data.pkl")  # the bypass: strict readers want a password
    result = run(data)
    assert "ZIP-FLAG-TAMPERED" in result.rules()
    assert "ARCHIVE-ENCRYPTED" not in result.rules()
    assert payload_children(result)


def test_really_encrypted_member_is_a_coverage_gap() -> None:
    data = zip_bytes({"secret.bin": b"\x13\x37" * 40})
    local, central = member_header(data, b"secret.bin")
    data = patch(data, local + 14, "<I", 0xDEADBEEF)
    data = patch(data, central + 16, "<I", 0xDEADBEEF)
    data = patch(data, local + 6, "<H", 1)
    data = patch(data, central + 8, "<H", 1)
    result = run(data)
    assert "ARCHIVE-ENCRYPTED" in result.rules()


def test_bad_crc_is_reported_and_member_still_scanned() -> None:
    data = torch_like_zip()
    local, central = member_header(data, b"archive/data.pkl")
    data = patch(data, local + 14, "<I", 0x12345678)
    data = patch(data, central + 16, "<I", 0x12345678)
    result = run(data)
    assert "ZIP-CRC-MISMATCH" in result.rules()
    assert payload_children(result)


def test_bad_crc_of_deflated_member_is_reported() -> None:
    data = zip_bytes({"model.pkl": PAYLOAD * 10}, zipfile.ZIP_DEFLATED)
    local, central = member_header(data, b"model.pkl")
    data = patch(data, central + 16, "<I", 0x1)
    data = patch(data, local + 14, "<I", 0x1)
    result = run(data)
    assert "ZIP-CRC-MISMATCH" in result.rules()
    assert read_all(result.child("model.pkl")) == PAYLOAD * 10


def test_local_and_central_names_differ() -> None:
    data = torch_like_zip(extra={"archive/extra.bin": PAYLOAD})
    local, _ = member_header(data, b"archive/extra.bin")
    data = data[: local + 30] + b"archive/extra.pkl" + data[local + 30 + 17 :]
    result = run(data)
    mismatch = [f for f in result.findings if f.rule_id == "ZIP-HEADER-MISMATCH"]
    assert mismatch and "archive/extra.pkl" in mismatch[0].message
    assert payload_children(result)


@pytest.mark.parametrize("name", ["archive/data/7", "archive/weights", "archive/README"])
def test_renamed_pickle_member_is_found_by_content(name: str) -> None:
    benign = b"\x80\x02}q\x00."
    result = run(torch_like_zip(benign, extra={name: PAYLOAD}))
    assert result.format == "pytorch-zip"
    assert name in result.names()
    assert "archive/data/0" not in result.names()  # raw storage bytes are not copied or scanned


def test_pickle_appended_after_zip() -> None:
    zipped = torch_like_zip(b"\x80\x02}q\x00.")
    result = run(zipped + PAYLOAD)
    assert "TRAILING-DATA" in result.rules()
    assert read_all(result.child(f"trailing@{len(zipped)}")) == PAYLOAD


def test_pickle_prepended_before_zip() -> None:
    zipped = torch_like_zip(b"\x80\x02}q\x00.")
    result = run(PAYLOAD + zipped)  # torch.load would unpickle the prepended bytes
    assert result.reader == "zip"
    assert "PREPENDED-DATA" in result.rules()
    assert read_all(result.child("prepended@0")) == PAYLOAD
    assert "archive/data.pkl" in result.names()


def test_hidden_local_member_not_in_central_directory() -> None:
    visible = zip_bytes({"a.txt": b"hello"})
    hidden = zip_bytes({"hidden.pkl": PAYLOAD})
    hidden_local = hidden[: hidden.find(b"PK\x01\x02")]
    cd = visible.find(b"PK\x01\x02")
    data = visible[:cd] + hidden_local + visible[cd:]
    data = patch(data, data.find(b"PK\x05\x06") + 16, "<I", cd + len(hidden_local))
    result = run(data)
    assert any("hidden member" in f.message for f in result.findings)
    assert payload_children(result)


def test_duplicate_member_names_are_both_scanned() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("model.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model.pkl", PAYLOAD)
    result = run(buf.getvalue())
    assert "ZIP-HEADER-MISMATCH" in result.rules()
    assert sorted(result.names()) == ["model.pkl", "model.pkl#2"]
    assert payload_children(result)


def test_central_directory_missing_members_recovered_from_local_headers() -> None:
    data = zip_bytes({"a.pkl": PAYLOAD, "b.bin": b"x" * 100}, zipfile.ZIP_DEFLATED)
    truncated = data[: data.find(b"PK\x01\x02")]
    result = run(truncated)
    assert "PARSE-ERROR" in result.rules()
    assert read_all(result.child("a.pkl")) == PAYLOAD


def test_data_descriptors_without_central_directory() -> None:
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("one.pkl", PAYLOAD)
        archive.writestr("two.bin", b"y" * 5000)
    data = bytes(sink.data)
    assert struct.unpack_from("<H", data, 6)[0] & 0x8  # really uses data descriptors
    full = run(data)
    assert "PARSE-ERROR" not in full.rules() and read_all(full.child("one.pkl")) == PAYLOAD
    partial = run(data[: data.find(b"PK\x01\x02")])
    assert read_all(partial.child("one.pkl")) == PAYLOAD
    assert read_all(partial.child("two.bin")) == b"y" * 5000


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compression_methods(method: int) -> None:
    result = run(zip_bytes({"m.pkl": PAYLOAD * 50}, method))
    assert result.findings == []
    assert read_all(result.child("m.pkl")) == PAYLOAD * 50


def test_zip64_archive() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive, archive.open("big.pkl", "w", force_zip64=True) as member:
        member.write(PAYLOAD)
    data = buf.getvalue()
    result = run(data)
    assert "ZIP-HEADER-MISMATCH" not in result.rules()
    assert payload_children(result)


def test_zip64_end_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)  # force ZIP64 end-of-central-directory records
    data = zip_bytes({"a.pkl": PAYLOAD, "b.bin": b"z" * 40})
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    result = run(PAYLOAD + data)  # and with prepended bytes shifting every offset
    assert result.rules() == {"PREPENDED-DATA"}
    assert read_all(result.child("a.pkl")) == PAYLOAD
    assert read_all(result.child("b.bin")) == b"z" * 40


def test_unsupported_method_is_reported() -> None:
    data = zip_bytes({"m.pkl": PAYLOAD})
    local, central = member_header(data, b"m.pkl")
    data = patch(patch(data, local + 8, "<H", 9), central + 10, "<H", 9)  # deflate64
    assert "ZIP-UNSUPPORTED-METHOD" in run(data).rules()


def test_zip_slip_names() -> None:
    result = run(zip_bytes({"../../etc/cron.d/x": b"* * * * * root id", "/abs.txt": b"x", "ok/../fine.txt": b"y"}))
    traversal = sorted(f.message for f in result.findings if f.rule_id == "ARCHIVE-PATH-TRAVERSAL")
    assert len(traversal) == 2
    assert all(f.severity is Severity.HIGH for f in result.findings if f.rule_id == "ARCHIVE-PATH-TRAVERSAL")


def test_zip_bomb_ratio_is_reported_and_bounded() -> None:
    data = zip_bytes({"zeros.bin": bytes(8 << 20)}, zipfile.ZIP_DEFLATED)
    result = run(data, Limits(max_compression_ratio=100.0))
    assert "ARCHIVE-BOMB" in result.rules()
    assert result.child("zeros.bin").size < 8 << 20


def test_zip_total_budget_raises_limit() -> None:
    data = zip_bytes({f"z{i}.bin": bytes(1 << 20) for i in range(4)}, zipfile.ZIP_DEFLATED)
    with pytest.raises(LimitExceeded):
        run(data, Limits(max_decompressed_bytes=2 << 20))


def test_overlapping_members_are_a_bomb_signature() -> None:
    data = zip_bytes({"a.bin": b"A" * 100, "b.bin": b"B" * 100})
    _, central_b = member_header(data, b"b.bin")
    data = patch(data, central_b + 42, "<I", 0)  # b's central entry points at a's local header
    assert "ARCHIVE-BOMB" in run(data).rules()


def test_too_many_members() -> None:
    data = zip_bytes({f"m{i}": b"" for i in range(20)})
    with pytest.raises(LimitExceeded):
        run(data, Limits(max_members=5))


# --------------------------------------------------------------------------- tar, 7z


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buf.getvalue()


def test_legacy_torch_tar_yields_pickles() -> None:
    members = {
        "sys_info": b"\x80\x02}q\x00.",
        "pickle": PAYLOAD,
        "storages": b"\x80\x02K\x00.",
        "tensors": b"\x80\x02K\x00.",
    }
    result = run(tar_bytes(members))
    assert result.format == "torch-legacy-tar"
    assert read_all(result.child("pickle")) == PAYLOAD
    assert sorted(result.names()) == sorted(members)


def test_tar_traversal_and_links() -> None:
    data = tar_bytes({"../evil.pkl": PAYLOAD}, {"up": "../../../etc/passwd", "abs": "/etc/shadow", "ok": "sub/file"})
    result = run(data)
    traversal = [f for f in result.findings if f.rule_id == "ARCHIVE-PATH-TRAVERSAL"]
    assert len(traversal) == 3
    links = [f for f in result.findings if f.rule_id == "ARCHIVE-LINK-MEMBER"]
    assert len(links) == 3 and all(f.severity.label == "high" for f in links)  # the harmless-looking one too
    assert payload_children(result)


def test_tar_hard_link_is_high() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("weights.bin")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"\0\0\0\0"))
        link = tarfile.TarInfo("model.bin")
        link.type = tarfile.LNKTYPE
        link.linkname = "weights.bin"
        archive.addfile(link)
    found = [f for f in run(buf.getvalue()).findings if f.rule_id == "ARCHIVE-LINK-MEMBER"]
    assert len(found) == 1 and "hard link" in found[0].message


@pytest.mark.parametrize("target", ["/etc/passwd", "f.bin"])
def test_7z_symlink_is_high_and_other_members_still_scanned(tmp_path: Path, target: str) -> None:
    py7zr = pytest.importorskip("py7zr")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(PAYLOAD)
    os.symlink(target, src / "link")
    path = tmp_path / "links.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writeall(src, "m")
    result = run(path.read_bytes())
    found = [f for f in result.findings if f.rule_id == "ARCHIVE-LINK-MEMBER"]
    assert len(found) == 1 and found[0].location.detail == "m/link"
    assert payload_children(result)  # an absolute link no longer stops py7zr extracting the rest


def test_tar_trailing_data() -> None:
    base = tar_bytes({"a.bin": b"x"})
    result = run(base + PAYLOAD)
    assert "TRAILING-DATA" in result.rules()
    assert any(read_all(c).startswith(PAYLOAD) for c in result.children if c.members[-1].startswith("trailing@"))


def test_nested_zip_in_tar_in_7z(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    inner_zip = torch_like_zip(extra={"archive/hidden": PAYLOAD})
    tar = tar_bytes({"inner/model.pt": inner_zip})
    path = tmp_path / "nested.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(tar, "bundle.tar")
    outer = file_blob(str(path), path.stat().st_size)
    found = [leaf for leaf in leaves(outer) if read_all(leaf) == PAYLOAD]
    assert found
    assert found[0].members[:2] == ("bundle.tar", "inner/model.pt")


def test_7z_trailing_data(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "a.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(b"weights", "w.bin")
    data = path.read_bytes()
    assert run(data).findings == []
    result = run(data + PAYLOAD)
    assert "TRAILING-DATA" in result.rules()
    assert read_all(result.child(f"trailing@{len(data)}")) == PAYLOAD


def test_7z_encrypted_is_a_coverage_gap(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    for header_encryption in (False, True):
        path = tmp_path / f"enc{header_encryption}.7z"
        with py7zr.SevenZipFile(path, "w", password="pw", header_encryption=header_encryption) as archive:
            archive.writestr(PAYLOAD, "model.pkl")
        result = run(file_blob(str(path), path.stat().st_size))
        assert "ARCHIVE-ENCRYPTED" in result.rules()
        assert not payload_children(result)


def test_7z_traversal_name_is_reported_and_member_still_scanned() -> None:
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        archive.set_encoded_header_mode(False)
        archive.writestr(PAYLOAD, "ab/evil.pkl")
    data = bytearray(buf.getvalue())
    old, new = "ab/evil.pkl".encode("utf-16-le"), "../evil.pkl".encode("utf-16-le")
    at = data.find(old)
    data[at : at + len(old)] = new
    offset, size = struct.unpack_from("<QQ", data, 12)  # fix the next-header and start-header CRCs
    struct.pack_into("<I", data, 28, zlib.crc32(data[32 + offset : 32 + offset + size]))
    struct.pack_into("<I", data, 8, zlib.crc32(data[12:32]))
    result = run(bytes(data))
    assert "ARCHIVE-PATH-TRAVERSAL" in result.rules()
    assert read_all(result.child("../evil.pkl")) == PAYLOAD  # 7-Zip would extract it as evil.pkl


# --------------------------------------------------------------------------- compression wrappers


def lz4_frame(data: bytes) -> bytes:
    lz4_frame_mod = pytest.importorskip("lz4.frame")
    compressed: bytes = lz4_frame_mod.compress(data)
    return compressed


WRAPPERS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "lz4": lz4_frame,
    "joblib-zf": lambda d: b"ZF" + hex(len(d)).encode().ljust(19) + zlib.compress(d),
}


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_wrapper_yields_decompressed_child(kind: str) -> None:
    result = run(bytes_blob(WRAPPERS[kind](PAYLOAD), "model.pkl.gz"))
    assert result.format == kind
    assert result.findings == []
    (child,) = result.children
    assert read_all(child) == PAYLOAD
    assert child.format_hint == "decompressed" and child.members == ("model.pkl",)


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_truncated_wrapper_keeps_what_was_recovered(kind: str) -> None:
    data = WRAPPERS[kind](PAYLOAD * 2000)
    result = run(data[: len(data) * 2 // 3])
    assert result.rules() & {"PARSE-ERROR"}
    assert any(f.location.offset is not None for f in result.findings)
    (child,) = result.children
    assert read_all(child) != PAYLOAD * 2000
    assert (PAYLOAD * 2000).startswith(read_all(child))


def test_multi_member_gzip_and_trailing_data() -> None:
    data = gzip.compress(PAYLOAD[:10]) + gzip.compress(PAYLOAD[10:]) + b"\0\0\0\0" + PAYLOAD
    result = run(data)
    decompressed = [c for c in result.children if c.format_hint == "decompressed"]
    assert read_all(decompressed[0]) == PAYLOAD
    assert "TRAILING-DATA" in result.rules()
    assert payload_children(result)


def test_gzip_bomb_is_bounded() -> None:
    data = gzip.compress(bytes(16 << 20))
    result = run(data, Limits(max_compression_ratio=50.0))
    assert "ARCHIVE-BOMB" in result.rules()
    assert result.children[0].size < 16 << 20


def test_large_output_is_spooled_to_disk() -> None:
    data = bytes(range(256)) * (20 << 12)  # 20 MiB, more than the in-memory budget
    result = run(zlib.compress(data, 1), Limits(max_member_in_memory=1 << 20))
    (child,) = result.children
    assert child.size == len(data)
    with child.open() as stream:
        stream.seek(len(data) - 256)
        assert stream.read() == bytes(range(256))


def test_corrupt_wrapper_is_a_parse_error_not_a_crash() -> None:
    data = bytearray(gzip.compress(PAYLOAD * 100))
    data[30:40] = b"\xff" * 10
    result = run(bytes(data))
    assert "PARSE-ERROR" in result.rules()


# --------------------------------------------------------------------------- through the scanner


def test_deep_nesting_hits_the_depth_limit(tmp_path: Path) -> None:
    data = PAYLOAD
    for _ in range(12):
        data = gzip.compress(data)
    path = tmp_path / "deep.gz"
    path.write_bytes(data)
    artifacts = scan_file(file_blob(str(path), len(data)), ScanOptions())
    assert any(f.rule_id == "LIMIT-EXCEEDED" for a in artifacts for f in a.findings)
    assert all(f.rule_id != "INTERNAL-ERROR" for a in artifacts for f in a.findings)


@pytest.mark.parametrize("kind", ["zip", "tar", "7z", "gzip"])
def test_truncated_archives_give_findings_not_tracebacks(tmp_path: Path, kind: str) -> None:
    py7zr = pytest.importorskip("py7zr")
    members = {"a.pkl": PAYLOAD * 300, "b.bin": bytes(range(256)) * 20}
    if kind == "zip":
        data = zip_bytes(members, zipfile.ZIP_DEFLATED)
    elif kind == "tar":
        data = tar_bytes(members)
    elif kind == "gzip":
        data = gzip.compress(tar_bytes(members))
    else:
        path7 = tmp_path / "a.7z"
        with py7zr.SevenZipFile(path7, "w") as archive:
            for name, content in members.items():
                archive.writestr(content, name)
        data = path7.read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        path = tmp_path / f"cut{cut}.{kind}"
        path.write_bytes(data[:cut])
        artifacts = scan_file(file_blob(str(path), cut), ScanOptions())
        rules = {f.rule_id for a in artifacts for f in a.findings}
        assert "INTERNAL-ERROR" not in rules
        assert rules & {"PARSE-ERROR", "LIMIT-EXCEEDED", "UNKNOWN-CONTENT", "ZIP-HEADER-MISMATCH"}, (cut, rules)


def test_every_reader_rejects_garbage_with_format_error() -> None:
    for reader in CONTAINER_READERS:
        blob = bytes_blob(b"not an archive at all" * 10)
        with pytest.raises(FormatError):
            list(reader.read(blob, ScanContext(blob, Limits())))


# --------------------------------------------------------------------------- robustness (hypothesis)


def _seed_archives() -> list[bytes]:
    py7zr = pytest.importorskip("py7zr")
    members = {"archive/data.pkl": PAYLOAD, "archive/data/0": bytes(range(200)), "x/../y.txt": b"hello" * 30}
    seven = io.BytesIO()
    with py7zr.SevenZipFile(seven, "w") as archive:
        archive.writestr(PAYLOAD * 5, "m.pkl")
        archive.writestr(b"abc" * 50, "dir/n.bin")
    seeds = [
        zip_bytes(members),
        zip_bytes(members, zipfile.ZIP_DEFLATED),
        zip_bytes(members, zipfile.ZIP_BZIP2),
        zip_bytes(members, zipfile.ZIP_LZMA),
        tar_bytes({"pickle": PAYLOAD, "b": bytes(700)}, {"l": "../x"}),
        seven.getvalue(),
    ]
    seeds += [compress(PAYLOAD * 20) for compress in WRAPPERS.values()]
    return seeds


SEEDS = _seed_archives()
ROBUST_LIMITS = Limits(max_decompressed_bytes=4 << 20, max_members=200, max_member_in_memory=1 << 20)


def _exercise(data: bytes) -> None:
    """Run every container reader on ``data``; only FormatError may escape; children must read."""
    blob = bytes_blob(data)
    for reader in CONTAINER_READERS:
        try:
            for item in reader.read(blob, ScanContext(blob, ROBUST_LIMITS)):
                if isinstance(item, Blob):
                    item.head()
                    assert len(read_all(item)) == item.size
        except FormatError:
            pass


def test_mutated_archives_never_crash_the_readers() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @hypothesis.given(
        seed=st.sampled_from(SEEDS),
        flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
        cut=st.one_of(st.none(), st.integers(0, 1 << 16)),
        insert=st.binary(max_size=16),
    )
    def check(seed: bytes, flips: list[tuple[int, int]], cut: int | None, insert: bytes) -> None:
        data = bytearray(seed)
        for position, value in flips:
            data[position % len(data)] = value
        if insert:
            at = (cut or 0) % len(data)
            data[at:at] = insert
        elif cut is not None:
            del data[cut % len(data) :]
        _exercise(bytes(data))

    check()


def test_random_bytes_never_crash_the_readers() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    prefixes = [
        b"PK\x03\x04",
        b"PK\x05\x06",
        b"7z\xbc\xaf\x27\x1c",
        b"\x1f\x8b\x08",
        b"BZh9",
        b"\xfd7zXZ\x00",
        b"ZF0x1f",
    ]

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @hypothesis.given(prefix=st.sampled_from([b"", *prefixes]), body=st.binary(max_size=2048))
    def check(prefix: bytes, body: bytes) -> None:
        _exercise(prefix + body)

    check()


# --------------------------------------------------------------------------- end to end (with the pickle engine)


@pytest.fixture(scope="module")
def pickle_engine(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The pickle reader and its analyzer flag the bare payload as critical (the end-to-end premise)."""
    from modelshield.scan import scan

    path = tmp_path_factory.mktemp("probe") / "probe.pkl"
    path.write_bytes(PAYLOAD)
    assert any(f.severity is Severity.CRITICAL for f in scan(str(path)).findings)


def _tampered_flag() -> bytes:
    data = torch_like_zip()
    local, central = member_header(data, b"archive/data.pkl")
    return patch(patch(data, local + 6, "<H", 1), central + 8, "<H", 1)


def _bad_crc() -> bytes:
    data = torch_like_zip()
    local, central = member_header(data, b"archive/data.pkl")
    return patch(patch(data, local + 14, "<I", 7), central + 16, "<I", 7)


def _nested() -> bytes:
    py7zr = pytest.importorskip("py7zr")
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        archive.writestr(
            gzip.compress(tar_bytes({"m.pt": torch_like_zip(b"\x80\x02}q\x00.", {"a/x": PAYLOAD})})), "b.tgz"
        )
    return buf.getvalue()


MALICIOUS_CONTAINERS = {
    "flag": (_tampered_flag, "archive/data.pkl"),
    "crc": (_bad_crc, "archive/data.pkl"),
    "renamed": (lambda: torch_like_zip(b"\x80\x02}q\x00.", {"archive/data/3": PAYLOAD}), "archive/data/3"),
    "appended": (lambda: torch_like_zip(b"\x80\x02}q\x00.") + PAYLOAD, "trailing@"),
    "prepended": (lambda: PAYLOAD + torch_like_zip(b"\x80\x02}q\x00."), "prepended@0"),
    "nested": (_nested, "a/x"),
    "legacy-tar": (lambda: tar_bytes({"sys_info": b"\x80\x02}q\x00.", "pickle": PAYLOAD}), "pickle"),
    "lz4": (lambda: lz4_frame(PAYLOAD), "decompressed"),
    "joblib-zf": (lambda: WRAPPERS["joblib-zf"](PAYLOAD), "decompressed"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_CONTAINERS))
def test_end_to_end_payload_in_container_is_critical(pickle_engine: None, tmp_path: Path, case: str) -> None:
    from modelshield.scan import scan

    build, member = MALICIOUS_CONTAINERS[case]
    path = tmp_path / f"{case}.bin"
    path.write_bytes(build())
    report = scan(str(path))
    critical = [f for f in report.findings if f.severity is Severity.CRITICAL]
    assert critical, [(f.rule_id, f.location.member) for f in report.findings]
    assert any(member in (f.location.member or "") for f in critical)
    assert report.verdict.value == "fail"


@pytest.mark.parametrize("kind", ["state_dict", "script"])
def test_end_to_end_real_torch_files_are_clean(pickle_engine: None, torch_files: dict[str, Path], kind: str) -> None:
    from modelshield.scan import scan

    report = scan(str(torch_files[kind]))
    assert [(f.rule_id, f.location.member) for f in report.findings if f.severity >= Severity.MEDIUM] == []


def test_plain_pickles_and_model_files_are_not_taken_for_containers() -> None:
    import pickle

    samples = [pickle.dumps(obj, protocol=p) for obj in ([], [1, 2], {"a": 1}, "x" * 50, (1.5, None)) for p in range(6)]
    samples += [b'{"__metadata__": {}}', b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'", b"GGUF\x03\x00\x00\x00", b"x^2 + y"]
    for data in samples:
        blob = bytes_blob(data)
        claimed = [r.name for r in CONTAINER_READERS if r.sniff(data, blob)]
        assert claimed == [], (data[:20], claimed)


@pytest.mark.parametrize(
    ("decoder", "data"),
    [
        ("xz", lzma.compress(PAYLOAD * 50)),
        ("lzma-alone", lzma.compress(PAYLOAD * 50, format=lzma.FORMAT_ALONE)),
        ("bzip2", bz2.compress(PAYLOAD * 50)),
    ],
)
def test_corrupt_lzma_and_bzip2_streams_report_the_decompressor_error(decoder: str, data: bytes) -> None:
    from modelshield.formats._containers import DECODERS, Budget, decode_stream

    corrupt = data[:14] + bytes(b ^ 0x55 for b in data[14:60]) + data[60:]
    out: list[bytes] = []
    outcome = decode_stream([corrupt], DECODERS[decoder], out.append, Budget(Limits()))
    expected = {"xz": "LZMAError: ", "lzma-alone": "LZMAError: ", "bzip2": "OSError: "}[decoder]
    assert outcome.error.startswith(expected) and not outcome.complete
    whole = decode_stream([data], DECODERS[decoder], out.append, Budget(Limits()))
    assert whole.complete and whole.size == len(PAYLOAD) * 50 and not whole.error


def test_bad_raw_lzma_properties_are_a_decode_error_not_a_crash() -> None:
    from modelshield.formats._containers import DECODE_ERRORS, Budget, decode_stream, raw_lzma1_decoder

    bad_props = b"\xff\x00\x00\x01\x00"
    outcome = decode_stream([b"x" * 64], lambda: raw_lzma1_decoder(bad_props), [].append, Budget(Limits()))
    assert outcome.error == "LZMAError: bad LZMA properties"
    assert not any(cls.__module__ == "lzma" for cls in DECODE_ERRORS)  # lzma imported by the streams needing it
