"""The one-pass zip parser for plain archives gives exactly the general parser's layout, or declines.

``parse_plain`` only speeds up archives nobody tampered with; on anything else it must return None
so that the general parser (which reports every disagreement) decides. Checked on archives written
by real tools and on thousands of mutations of them.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
from pathlib import Path

import pytest
from tests.formats._streams import Unseekable

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats.zipfmt.parser import Layout, parse, parse_plain
from modelshield.limits import Limits

LIMITS = Limits()


def _zip(
    method: int, *, comment: bytes = b"", zip64: bool = False, names: tuple[str, ...] = ("a/x.bin", "a/y.bin")
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for i, name in enumerate(names):
            with archive.open(name, "w", force_zip64=zip64) as member:
                member.write(bytes(range(i, i + 40)) * 3)
        archive.comment = comment
    return buf.getvalue()


def _streamed() -> bytes:
    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("s/one.txt", b"hello " * 20)
        archive.writestr("s/two.txt", b"world " * 30)
    return bytes(out.data)


def _torch_checkpoint() -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "b": torch.zeros(3), "n": 7}, buf)
    return buf.getvalue()


def _with_symlink(data: bytes, name: str = "archive/link", target: str = "/etc/passwd") -> bytes:
    """``data`` with a member whose Unix mode says symlink (what ``zip --symlinks`` writes)."""
    buf = io.BytesIO(data)
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(buf, "a") as archive:
        archive.writestr(info, target)
    return buf.getvalue()


def _npz() -> bytes:
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(10), b=np.ones((2, 2)))
    return buf.getvalue()


def _general(data: bytes) -> Layout | Exception:
    try:
        return parse(io.BytesIO(data), len(data), LIMITS)  # a BytesIO is not a MemoryStream: general path
    except (FormatError, LimitExceeded) as exc:
        return exc


PLAIN = {
    "torch": _torch_checkpoint,
    "stored": lambda: _zip(zipfile.ZIP_STORED),
    "deflated": lambda: _zip(zipfile.ZIP_DEFLATED),
    "symlink": lambda: _with_symlink(_zip(zipfile.ZIP_STORED)),
    "torch-symlink": lambda: _with_symlink(_torch_checkpoint()),
}
OTHER = {
    "npz": _npz,  # numpy forces ZIP64 sizes in local headers
    "comment": lambda: _zip(zipfile.ZIP_STORED, comment=b"hi"),
    "zip64": lambda: _zip(zipfile.ZIP_STORED, zip64=True),
    "streamed": _streamed,
    "duplicate": lambda: _zip(zipfile.ZIP_STORED, names=("d/x", "d/x")),
    "prepended": lambda: b"#!/bin/sh\n" + _zip(zipfile.ZIP_STORED),
    "appended": lambda: _zip(zipfile.ZIP_STORED) + b"tail",
}


@pytest.mark.parametrize("kind", sorted(PLAIN))
def test_plain_archives_take_the_one_pass_parser(kind: str) -> None:
    data = PLAIN[kind]()
    plain = parse_plain(data, LIMITS)
    assert plain is not None, "a plain archive must not fall back (the fast path would be dead)"
    assert plain == _general(data)
    assert not plain.anomalies


@pytest.mark.parametrize("kind", sorted({**PLAIN, **OTHER}))
def test_mutations_give_the_general_layout_or_none(kind: str) -> None:
    data = {**PLAIN, **OTHER}[kind]()
    rng = random.Random(kind)
    plain_results = 0
    for round_ in range(400):
        mutated = bytearray(data)
        if round_ % 10 == 9:
            del mutated[rng.randrange(len(mutated)) :]  # truncated
        else:
            for _ in range(rng.choice((1, 1, 2, 4))):
                at = rng.randrange(len(mutated))
                if rng.random() < 0.5:
                    mutated[at] = rng.randrange(256)
                else:  # a plausible field value: 0, a signature byte, a small or huge number
                    value = rng.choice((0, 1, 0xFFFF, 0xFFFFFFFF, len(mutated), 0x04034B50))
                    struct.pack_into("<I", mutated, min(at, len(mutated) - 4), value)
        blob = bytes(mutated)
        plain = parse_plain(blob, LIMITS)
        if plain is not None:
            plain_results += 1
            assert plain == _general(blob), f"{kind} mutation {round_}"
    assert plain_results or kind in OTHER


@pytest.mark.parametrize("kind", sorted(OTHER))
def test_unusual_archives_fall_back(kind: str) -> None:
    data = OTHER[kind]()
    if kind in ("streamed", "npz"):  # may or may not count as plain; equal to the general layout if so
        plain = parse_plain(data, LIMITS)
        assert plain is None or plain == _general(data)
        return
    assert parse_plain(data, LIMITS) is None


def test_paged_file_reads_like_the_file(tmp_path: Path) -> None:
    from modelshield.formats.zipfmt.parser import PagedFile

    data = random.Random(7).randbytes(5 * PagedFile.PAGE + 123)
    target = tmp_path / "blob.bin"
    target.write_bytes(data)
    with open(target, "rb") as stream:
        paged = PagedFile.over(stream, len(data))
        assert paged is not None
        rng = random.Random(8)
        for _ in range(500):
            offset = rng.randrange(-5, len(data) + 10)
            size = rng.choice(
                (0, 1, 4, 30, PagedFile.PAGE, PagedFile.PAGE + 1, 3 * PagedFile.PAGE, rng.randrange(20000))
            )
            expected = data[offset : offset + size] if offset >= 0 and size > 0 else b""
            assert paged.read_at(offset, size) == expected, (offset, size)
        paged.seek(PagedFile.PAGE - 2)
        assert paged.read(10) == data[PagedFile.PAGE - 2 : PagedFile.PAGE + 8]
        assert paged.read() == data[PagedFile.PAGE + 8 :]


def test_large_archives_on_disk_are_still_fully_checked(tmp_path: Path) -> None:
    # Over IN_MEMORY_BYTES, the zip reader reads through PagedFile: a payload pickle, a CRC
    # mismatch and a hidden member must all still be found.
    import pickle

    from modelshield.formats.zipfmt.reader import IN_MEMORY_BYTES
    from modelshield.scan import scan

    class _Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {tmp_path / 'canary'}",))

    target = tmp_path / "big.pt"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("big/data/0", bytes(IN_MEMORY_BYTES + 4096))
        archive.writestr("big/data.pkl", pickle.dumps(_Payload(), protocol=2))
        archive.writestr("big/version", b"3\n")
    raw = bytearray(target.read_bytes())
    member_at = raw.index(b"big/version")  # its local header: break the CRC there only
    struct.pack_into("<I", raw, member_at - 30 + 14, 0xDEADBEEF)
    target.write_bytes(bytes(raw))
    assert target.stat().st_size > IN_MEMORY_BYTES
    report = scan(str(target))
    rules = {f.rule_id for f in report.findings}
    assert "PICKLE-UNSAFE-GLOBAL" in rules, rules
    assert report.blocking
    assert "ZIP-HEADER-MISMATCH" in rules
    assert not (tmp_path / "canary").exists()


def _read_all(data: bytes, quiet: bool, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    import time as _time

    from modelshield.formats import interface
    from modelshield.formats.zipfmt import reader

    if not quiet:
        monkeypatch.setattr(reader, "_quiet_skip", lambda *args: False)
    blob = interface.Blob("t.pt", (), len(data), lambda: io.BytesIO(data))
    ctx = interface.ScanContext(blob, LIMITS, _time.monotonic() + 60)
    out: list[object] = []
    try:
        for item in reader.ZipReader().read(blob, ctx):
            if isinstance(item, interface.Blob):
                out.append(("blob", item.members, item.size, item.format_hint, item.head()))
            else:
                out.append(item)
    except (FormatError, LimitExceeded) as exc:
        out.append(("raised", type(exc).__name__, str(exc)))
    out.append(("facts", ctx.facts, ctx.format))
    monkeypatch.undo()
    return out


@pytest.mark.parametrize("kind", ["torch", "stored", "streamed", "torch-symlink"])
def test_quiet_member_skip_changes_nothing(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The zip reader skips storage and metadata members of torch archives without its generic
    # member checks; on real and mutated archives the output must be what those checks give.
    data = {**PLAIN, **OTHER}[kind]()
    rng = random.Random(kind + "quiet")
    for round_ in range(150):
        mutated = bytearray(data)
        if round_:
            for _ in range(rng.choice((1, 2))):
                mutated[rng.randrange(len(mutated))] = rng.choice(
                    (0, 0x2E, 0x80, ord("/"), ord("."), rng.randrange(256))
                )
        blob = bytes(mutated)
        assert _read_all(blob, True, monkeypatch) == _read_all(blob, False, monkeypatch), f"{kind} mutation {round_}"


@pytest.mark.parametrize("kind", ["symlink", "torch-symlink"])
@pytest.mark.parametrize("path", ["one-pass", "general"])
def test_symlink_members_are_found_on_every_path(kind: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.formats.zipfmt import parser

    data = PLAIN[kind]()
    assert parse_plain(data, LIMITS) is not None
    if path == "general":
        monkeypatch.setattr(parser, "parse_plain", lambda *args: None)
    found = [
        i
        for i in _read_all(data, path == "one-pass", monkeypatch)
        if getattr(i, "rule_id", "") == "ARCHIVE-LINK-MEMBER"
    ]
    assert len(found) == 1
    assert found[0].severity.label == "high" and "/etc/passwd" in found[0].message
