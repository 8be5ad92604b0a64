"""Tensor tables of model files, read from headers only (no numpy, nothing executed).

A :class:`TensorTable` lists every tensor of a model (a file, or a folder of shards) with its dtype,
its shape in row-major order and where its bytes live. It is what the structure check judges and
what the diff streams tensor by tensor.

* safetensors: the JSON header (:func:`modelshield.formats.safetensors.read_safetensors_header`);
  a folder with ``model.safetensors.index.json`` is read shard by shard.
* GGUF: the tensor infos (:func:`modelshield.formats.gguf.read_gguf_header`); ggml dims are
  reversed into row-major order.
* PyTorch zip checkpoints: ``data.pkl`` is run through the symbolic pickle VM (never unpickled);
  each ``_rebuild_tensor_v2`` call gives storage key, offset, shape and stride.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from modelshield.errors import FormatError, UsageError

#: GGML type id -> our dtype name for the float/integer types stored plainly.
GGML_PLAIN = {0: "F32", 1: "F16", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 30: "BF16"}
#: Storage class name (``torch.FloatStorage``) -> dtype name.
TORCH_STORAGE = {
    "FloatStorage": "F32",
    "DoubleStorage": "F64",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
}
ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}
ITEMSIZE.update({"I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1})


@dataclass(frozen=True, slots=True)
class TensorRef:
    """One tensor: name, dtype (safetensors spelling or a ggml type name), row-major shape, bytes on disk.

    ``offset`` is absolute in ``file``; ``ggml_type`` is set for GGUF tensors; ``contiguous`` is False
    for torch tensors whose stride is not the row-major one (their bytes cannot be streamed plainly).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    offset: int
    nbytes: int
    ggml_type: int | None = None
    contiguous: bool = True

    @property
    def numel(self) -> int:
        """Number of elements."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(slots=True)
class TensorTable:
    """Every tensor of a model plus what the model declares about itself.

    ``config`` is the parsed ``config.json`` next to the weights (or GGUF metadata under ``gguf``),
    ``problems`` are structural defects met while reading (duplicates across shards, unreadable
    entries) as ``(rule_id, message, evidence)``.
    """

    source: str
    format: str
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)
    gguf_metadata: dict[str, object] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Bytes of tensor data."""
        return sum(t.nbytes for t in self.tensors.values())

    def add(self, ref: TensorRef) -> None:
        """Add a tensor; a name seen twice (across shards) is a problem, the first copy wins."""
        if ref.name in self.tensors:
            other = self.tensors[ref.name].file
            self.problems.append(
                ("TAMPER-DUPLICATE-TENSOR", f"tensor {ref.name!r} is stored twice", f"{other} and {ref.file}")
            )
            return
        self.tensors[ref.name] = ref


def open_table(path: str | os.PathLike[str]) -> TensorTable:
    """Read the tensor table of a model file or folder; raise UsageError/FormatError when impossible."""
    target = Path(path)
    if target.is_dir():
        return _folder_table(target)
    if not target.is_file():
        raise UsageError(f"{target} is not a file or folder", hint="give a model file or the folder holding it")
    table = _file_table(target)
    config = target.parent / "config.json"
    if table.format != "gguf" and config.is_file():
        table.config = _read_config(config)
    return table


def _file_table(path: Path) -> TensorTable:
    with open(path, "rb") as stream:
        head = stream.read(16)
    if head[:4] == b"GGUF":
        return gguf_table(path)
    if head[:2] == b"PK":
        return torch_zip_table(path)
    if len(head) >= 9 and head[8:9] == b"{":
        table = TensorTable(str(path), "safetensors")
        _add_safetensors(table, path)
        return table
    raise UsageError(
        f"{path}: not a safetensors, GGUF or PyTorch zip file",
        hint="diff and structure checks read safetensors, GGUF and PyTorch zip checkpoints",
    )


def _folder_table(folder: Path) -> TensorTable:
    index = folder / "model.safetensors.index.json"
    table = TensorTable(str(folder), "safetensors")
    if index.is_file():
        for shard in _index_shards(index):
            _add_safetensors(table, folder / shard)
    else:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            files = sorted([*folder.glob("*.gguf"), *folder.glob("*.bin"), *folder.glob("*.pt"), *folder.glob("*.pth")])
            if len(files) == 1:
                return open_table(files[0])
            raise UsageError(f"{folder}: no single model file to compare", hint="give the weight file itself")
        for file in files:
            _add_safetensors(table, file)
    config = folder / "config.json"
    if config.is_file():
        table.config = _read_config(config)
    return table


def _index_shards(index: Path) -> list[str]:
    try:
        value = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{index}: unreadable index ({exc})") from None
    weight_map = value.get("weight_map") if isinstance(value, dict) else None
    if not isinstance(weight_map, dict):
        raise FormatError(f"{index}: no weight_map object")
    shards = sorted({s for s in weight_map.values() if isinstance(s, str)})
    for shard in shards:
        if "/" in shard or "\\" in shard or shard.startswith(".."):
            raise FormatError(f"{index}: shard name {shard!r} leaves the model folder")
    return shards


def _read_config(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_bytes()[: 16 << 20])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _add_safetensors(table: TensorTable, path: Path) -> None:
    from modelshield.formats.safetensors import read_safetensors_header, uncovered_ranges, validate_layout

    with open(path, "rb") as stream:
        header = read_safetensors_header(stream)
        size = stream.seek(0, os.SEEK_END)
    table.files.append(str(path))
    for message, evidence in header.problems:
        table.problems.append(("TAMPER-HEADER-LAYOUT", f"{path.name}: {message}", evidence))
    for _rule, message, evidence in validate_layout(header, size):
        table.problems.append(("TAMPER-HEADER-LAYOUT", f"{path.name}: {message}", evidence))
    for start, end in uncovered_ranges(header, size):
        table.problems.append(
            ("TAMPER-HEADER-LAYOUT", f"{path.name}: {end - start} bytes at offset {start} belong to no tensor", "")
        )
    for entry in header.tensors.values():
        ref = TensorRef(
            entry.name, entry.dtype, entry.shape, str(path), header.data_offset + entry.begin, entry.end - entry.begin
        )
        table.add(ref)


def gguf_table(path: Path) -> TensorTable:
    """Tensor table of a GGUF file (row-major shapes; quantised types keep their ggml name)."""
    from modelshield.formats.gguf import GGML_TYPES, read_gguf_header

    with open(path, "rb") as stream:
        header = read_gguf_header(stream)
    table = TensorTable(str(path), "gguf", gguf_metadata=dict(header.metadata), files=[str(path)])
    for _rule, message, _offset, _refs in header.problems:
        table.problems.append(("TAMPER-HEADER-LAYOUT", f"{path.name}: {message}", ""))
    for info in header.tensors:
        traits = GGML_TYPES.get(info.ggml_type)
        dtype = GGML_PLAIN.get(info.ggml_type) or (traits[0] if traits else f"GGML{info.ggml_type}")
        shape = tuple(reversed(info.dims))
        table.add(
            TensorRef(
                info.name, dtype, shape, str(path), header.data_offset + info.offset, info.nbytes or 0, info.ggml_type
            )
        )
    return table


_REBUILD = re.compile(r"^torch\._utils\._rebuild_(tensor|tensor_v2|parameter)$")


def torch_zip_table(path: Path) -> TensorTable:
    """Tensor table of a ``torch.save`` zip, from the symbolic pickle VM's view of ``data.pkl``."""
    import io

    from modelshield.formats.pickle.vm import parse_one_stream

    table = TensorTable(str(path), "pytorch-zip", files=[str(path)])
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FormatError(f"{path}: not a readable zip ({exc})") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise FormatError(f"{path}: expected one data.pkl member, found {len(pkl)}")
        root = pkl[0][: -len("data.pkl")]
        data = archive.read(pkl[0])
        streams, _ = parse_one_stream(io.BytesIO(data), None, keep_items=1 << 20)
        pairs = _state_pairs(streams[-1].value)
        if pairs is None:
            raise FormatError(f"{path}: data.pkl is not a flat state dict of tensors")
        for name, value in pairs:
            ref = _torch_ref(archive, root, path, str(name), value)
            if ref is None:
                table.problems.append(
                    ("TAMPER-UNREADABLE-TENSOR", f"entry {name!r} is not a plain tensor", str(value)[:200])
                )
            else:
                table.add(ref)
    return table


def _state_pairs(value: object) -> list[tuple[object, object]] | None:
    from modelshield.formats.pickle.values import Call, SDict

    if isinstance(value, Call) and isinstance(value.state, SDict):  # OrderedDict built by BUILD/SETITEMS
        value = value.state
    if isinstance(value, Call) and value.items:
        items = value.items
        return [(k, v) for k, v in zip(items[::2], items[1::2], strict=False)]
    if isinstance(value, SDict):
        if value.total > len(value.pairs):
            raise FormatError(f"state dict has {value.total} entries, more than the symbolic VM keeps")
        return list(value.pairs)
    return None


def _torch_ref(archive: zipfile.ZipFile, root: str, path: Path, name: str, value: object) -> TensorRef | None:
    from modelshield.formats.pickle.values import Call, GlobalRef, PersId

    if not isinstance(value, Call) or not isinstance(value.func, GlobalRef) or not isinstance(value.args, tuple):
        return None
    if value.func.dotted == "torch._utils._rebuild_parameter" and value.args:
        return _torch_ref(archive, root, path, name, value.args[0])
    if not _REBUILD.match(value.func.dotted) or len(value.args) < 4:
        return None
    pid, offset, shape, stride = value.args[:4]
    if not isinstance(pid, PersId) or not isinstance(pid.pid, tuple) or len(pid.pid) < 3:
        return None
    storage, key = pid.pid[1], pid.pid[2]
    if not isinstance(storage, GlobalRef) or not isinstance(key, str) or not isinstance(offset, int):
        return None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        return None
    dtype = TORCH_STORAGE.get(storage.name, storage.name)
    itemsize = ITEMSIZE.get(dtype, 1)
    try:
        info = archive.getinfo(f"{root}data/{key}")
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    header_offset = _member_data_offset(path, info)
    count = 1
    for dim in shape:
        count *= dim
    return TensorRef(
        name,
        dtype,
        tuple(shape),
        str(path),
        header_offset + offset * itemsize,
        count * itemsize,
        contiguous=tuple(stride) == _row_major(shape) if isinstance(stride, tuple) else False,
    )


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides: list[int] = []
    acc = 1
    for dim in reversed(shape):
        strides.append(acc)
        acc *= dim
    return tuple(reversed(strides))


def _member_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    import struct

    with open(path, "rb") as stream:
        stream.seek(info.header_offset)
        local = stream.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise FormatError(f"{path}: bad local header for {info.filename} at offset {info.header_offset}")
    name_len, extra_len = struct.unpack_from("<HH", local, 26)
    return int(info.header_offset) + 30 + int(name_len) + int(extra_len)
