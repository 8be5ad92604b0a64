"""Reader for numpy ``.npy`` files (format versions 1, 2 and 3).

Layout: ``\\x93NUMPY``, major and minor version bytes, a header length (2 bytes in v1, 4 bytes in
v2/v3), then a Python-literal dict ``{'descr': ..., 'fortran_order': ..., 'shape': ...}``. The
header is parsed with :func:`ast.literal_eval` only after its size is bounded (literals only, never
``eval``). Object dtypes mean the body is a pickle: it is analysed with the pickle VM. Otherwise the
body must be exactly ``prod(shape) * itemsize`` bytes; a mismatch is a finding and extra bytes are
scanned as a trailing member. ``.npz`` files are zip archives (the zip reader yields their members).
"""

from __future__ import annotations

import ast
import re
import struct
from collections.abc import Iterator
from typing import ClassVar

from modelshield._record import record
from modelshield.errors import FormatError
from modelshield.formats._sniff import NPY_MAGIC as MAGIC
from modelshield.formats._sniff import sniff_numpy
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.pickle.vm import TRAILING_DATA, iter_pickle_streams
from modelshield.rules import rule
from modelshield.types import Category, Severity

#: numpy itself refuses headers above 10000 bytes unless told otherwise; allow some slack.
MAX_HEADER = 1 << 20
_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)(?:\[[a-zA-Z0-9]+\])?$")
_FIXED_SIZES = {"b": 1, "?": 1, "O": 8}

SIZE_MISMATCH = rule(
    "NPY-SIZE-MISMATCH",
    "npy body size does not match its header",
    Severity.MEDIUM,
    Category.INTEGRITY,
    "The array data is shorter or longer than shape x itemsize from the header: a truncated file, "
    "or extra bytes appended to an array (a polyglot hiding a second payload).",
    "Obtain an intact copy of the file from a trusted source.",
)


@record
class NpyHeader:
    """The parsed header: dtype description, shape, order, and where the body starts."""

    version: tuple[int, int]
    descr: object
    shape: tuple[int, ...]
    fortran_order: bool
    body_offset: int
    itemsize: int | None
    hasobject: bool


def parse_header(data: bytes, limit: int) -> NpyHeader:
    """Parse the first bytes of a ``.npy`` file; raise FormatError when they are not valid."""
    if len(data) < 10 or not data.startswith(MAGIC):
        raise FormatError("not an npy file (bad magic)")
    major, minor = data[6], data[7]
    if major == 1:
        (length,), start = struct.unpack_from("<H", data, 8), 10
    elif major in (2, 3):
        (length,), start = struct.unpack_from("<I", data, 8), 12
    else:
        raise FormatError(f"unsupported npy format version {major}.{minor}")
    if length > min(limit, MAX_HEADER):
        raise FormatError(f"npy header of {length} bytes is larger than the {min(limit, MAX_HEADER)} allowed")
    raw = data[start : start + length]
    if len(raw) < length:
        raise FormatError(f"npy header truncated: {len(raw)} of {length} bytes")
    fields = _literal(raw, "utf-8" if major == 3 else "latin-1")
    descr, shape, fortran = fields.get("descr"), fields.get("shape"), fields.get("fortran_order")
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise FormatError(f"npy header shape is not a tuple of non-negative ints: {shape!r}")
    if not isinstance(fortran, bool):
        raise FormatError(f"npy header fortran_order is not a bool: {fortran!r}")
    itemsize, hasobject = dtype_size(descr)
    return NpyHeader((major, minor), descr, shape, fortran, start + length, itemsize, hasobject)


def _literal(raw: bytes, encoding: str) -> dict[str, object]:
    try:
        value = ast.literal_eval(raw.decode(encoding).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise FormatError(f"npy header is not a Python literal dict: {type(exc).__name__}") from None
    if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
        raise FormatError("npy header must be a dict with exactly descr, fortran_order and shape")
    return value


def dtype_size(descr: object, depth: int = 0) -> tuple[int | None, bool]:
    """(itemsize or None when unknown, has Python objects) of an npy ``descr``."""
    if depth > 32:
        raise FormatError("npy dtype description nested too deeply")
    if isinstance(descr, str):
        match = _TYPESTR.match(descr)
        if match is None:
            raise FormatError(f"unknown npy dtype {descr!r}")
        char, digits = match.group(1), match.group(2)
        if char == "O":
            return 8, True
        if digits:
            return int(digits) * (4 if char == "U" else 1), False
        return _FIXED_SIZES.get(char), False
    if isinstance(descr, list):
        total: int | None = 0
        hasobject = False
        for field in descr:
            size, obj = _field_size(field, depth)
            hasobject = hasobject or obj
            total = None if total is None or size is None else total + size
        return total, hasobject
    raise FormatError(f"npy dtype description has an unexpected type: {type(descr).__name__}")


def _field_size(field: object, depth: int) -> tuple[int | None, bool]:
    if not isinstance(field, tuple) or len(field) not in (2, 3):
        raise FormatError(f"npy structured dtype field is malformed: {field!r}")
    size, hasobject = dtype_size(field[1], depth + 1)
    if len(field) == 3:
        shape = field[2]
        count = 1
        for dim in shape if isinstance(shape, tuple) else (shape,):
            if type(dim) is not int or dim < 0:
                raise FormatError(f"npy structured dtype field shape is malformed: {shape!r}")
            count *= dim
        size = None if size is None else size * count
    return size, hasobject


@register_reader
class NpyReader(Reader):
    """numpy ``.npy`` arrays; object arrays are pickles and get the pickle analysis."""

    name: ClassVar[str] = "numpy"
    priority: ClassVar[int] = 60

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The ``\\x93NUMPY`` magic."""
        return sniff_numpy(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Check the header and body size; analyse the pickle body of object arrays."""
        with blob.open() as stream:
            head = stream.read(12)
            length = struct.unpack_from("<H" if head[6:7] == b"\x01" else "<I", head.ljust(12, b"\0"), 8)[0]
            stream.seek(0)
            header = parse_header(stream.read(12 + min(length, MAX_HEADER)), ctx.limits.max_header_bytes)
            if header.hasobject:
                stream.seek(header.body_offset)
                yield from iter_pickle_streams(stream, ctx)
                return
        yield from _check_body(blob, ctx, header)


def _check_body(blob: Blob, ctx: ScanContext, header: NpyHeader) -> Iterator[object]:
    if header.itemsize is None:
        return
    count = 1
    for dim in header.shape:
        count *= dim
    expected = count * header.itemsize
    actual = blob.size - header.body_offset
    if actual == expected:
        return
    end = header.body_offset + expected
    if actual < expected:
        yield ctx.finding(
            SIZE_MISMATCH.id,
            f"array body has {actual} bytes but the header describes {expected} ({header.shape} x {header.itemsize})",
            offset=header.body_offset,
        )
        return
    yield ctx.finding(
        TRAILING_DATA.id,
        f"{actual - expected} bytes follow the array data described by the header",
        offset=end,
        evidence=f"shape {header.shape}, dtype {header.descr!r}",
    )
    yield ctx.blob.child_range(f"trailing@{end}", end, actual - expected)
