"""GGUF (llama.cpp / ggml) headers: metadata, tensor infos, offsets; chat templates analysed statically.

Layout (v2/v3; v1 uses 32-bit counts and lengths): ``"GGUF"``, u32 version, u64 tensor count,
u64 metadata count, the metadata key/value pairs, the tensor infos (name, n_dims, dims, ggml type,
offset), padding to ``general.alignment``, then tensor data. Version 3 files may be big-endian.

Every declared count and length is checked against the bytes left in the file *before* anything is
read or allocated: the heap overflows found in llama.cpp's parser in 2024 (Cisco Talos, Databricks)
came from trusting exactly these numbers. Tensor data is never read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from modelshield._record import record
from modelshield.errors import FormatError
from modelshield.formats._cursor import Cursor
from modelshield.formats._sniff import GGUF_MAGIC as MAGIC
from modelshield.formats._sniff import sniff_gguf
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.rules import rule
from modelshield.types import Category, Severity

GGML_MAX_DIMS = 4
DEFAULT_ALIGNMENT = 32
MAX_ALIGNMENT = 1 << 20
MAX_ARRAY_NESTING = 8
#: Strings longer than this are skipped, not kept (chat templates are far shorter).
MAX_KEPT_STRING = 1 << 20
#: Array elements kept as a sample (the rest is skipped).
ARRAY_SAMPLE = 8
INT64_MAX = (1 << 63) - 1

# ggml type id -> (block size in elements, bytes per block); from ggml's type traits.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# Metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(8, 13)
_SCALAR_FORMATS = {
    T_UINT8: "B",
    T_INT8: "b",
    T_UINT16: "H",
    T_INT16: "h",
    T_UINT32: "I",
    T_INT32: "i",
    T_FLOAT32: "f",
    T_BOOL: "?",
    T_UINT64: "Q",
    T_INT64: "q",
    T_FLOAT64: "d",
}

CVE_COUNTS = ("CVE-2024-21836", "CVE-2024-23605", "CVE-2024-25664", "CVE-2024-25666")
CVE_STRINGS = ("CVE-2024-23496", "CVE-2024-21825", "CVE-2024-25665")
CVE_DIMS = ("CVE-2024-21802",)

HEADER_OVERFLOW = rule(
    "GGUF-HEADER-OVERFLOW",
    "GGUF header built to overflow the parser",
    Severity.HIGH,
    Category.VULNERABILITY,
    "A count, length, dimension, type or offset in the GGUF header is impossible for the file it is in "
    "(more entries or longer strings than bytes left, more than 4 dimensions, dimensions whose product "
    "overflows, unknown ggml types, offsets past the end). This is the pattern of the heap overflows in "
    "llama.cpp's GGUF parser (CVE-2024-21802, -21825, -21836, -23496, -23605, -25664, -25665, -25666); "
    "an unpatched or third-party loader may corrupt memory while loading it.",
    "Do not load the file. Update llama.cpp / ggml-based runtimes; obtain the model from a trusted source.",
    (*CVE_COUNTS, *CVE_STRINGS, *CVE_DIMS, "CWE-190", "CWE-122"),
)
HEADER_ANOMALY = rule(
    "GGUF-HEADER-ANOMALY",
    "Ambiguous or inconsistent GGUF header",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The GGUF header has duplicate keys or tensor names (loaders disagree which one wins), misaligned "
    "or overlapping tensor data, or a malformed general.alignment.",
    "Re-convert the model with the upstream conversion scripts, or obtain it from a trusted source.",
    ("CWE-436",),
)
HIDDEN_BYTES = rule(
    "GGUF-HIDDEN-BYTES",
    "Bytes after the last GGUF tensor",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The file continues past the end of its last tensor. Those bytes are no part of the model and can "
    "carry a second payload (polyglot); they are scanned on their own.",
    "Truncate the file after the last tensor, or re-convert the model.",
    ("CWE-506",),
)


class GGUFOverflow(FormatError):
    """A declared count or length cannot be true for this file (the llama.cpp overflow class)."""

    def __init__(self, message: str, offset: int, references: tuple[str, ...]) -> None:
        super().__init__(message)
        self.offset = offset
        self.references = references


@record
class GGUFArray:
    """A metadata array: element type, element count and the first few elements."""

    item_type: int
    count: int
    sample: tuple[object, ...]


@record
class GGUFSkippedString:
    """A metadata string too long to keep (only its length and offset are known)."""

    length: int
    offset: int


@record
class GGUFTensorInfo:
    """One tensor info: dims are in ggml order (fastest-varying first); offset is data-relative."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    info_offset: int

    @property
    def nbytes(self) -> int | None:
        """Bytes of tensor data, or None for an unknown type or a row not divisible into blocks."""
        traits = GGML_TYPES.get(self.ggml_type)
        if traits is None:
            return None
        _, block, size = traits
        count = 1
        for dim in self.dims:
            count *= dim
        row = self.dims[0] if self.dims else 1
        return None if row % block else count // block * size


@dataclass(slots=True)
class GGUFHeader:
    """A parsed GGUF header. ``problems`` are non-fatal defects ``(rule_id, message, offset, references)``."""

    version: int = 0
    byte_order: str = "<"
    tensor_count: int = 0
    kv_count: int = 0
    metadata: dict[str, object] = field(default_factory=dict)
    key_offsets: dict[str, int] = field(default_factory=dict)
    tensors: list[GGUFTensorInfo] = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0
    problems: list[tuple[str, str, int, tuple[str, ...]]] = field(default_factory=list)

    def chat_templates(self) -> dict[str, str]:
        """``tokenizer.chat_template`` and ``tokenizer.chat_template.<name>`` values that are strings."""
        return {
            k: v
            for k, v in self.metadata.items()
            if (k == "tokenizer.chat_template" or k.startswith("tokenizer.chat_template.")) and isinstance(v, str)
        }


def read_gguf_header(stream: BinaryIO, size: int | None = None) -> GGUFHeader:
    """Parse a GGUF header from ``stream``; raise GGUFOverflow / FormatError on impossible or bad bytes."""
    if size is None:
        size = stream.seek(0, 2)
    header = GGUFHeader()
    parse_gguf(stream, size, header)
    return header


def parse_gguf(stream: BinaryIO, size: int, header: GGUFHeader, check_time: Callable[[], None] | None = None) -> None:
    """Fill ``header`` from ``stream`` (partially, if an error is raised midway)."""
    cur = Cursor(stream, size, "gguf")
    magic = cur.read(4)
    if magic != MAGIC:
        raise FormatError(f"gguf: bad magic {magic!r} at offset 0")
    _read_preamble(cur, header)
    p = _Parser(cur, header, check_time)
    p.read_metadata()
    p.read_tensor_infos()
    p.finish_layout()


def _read_preamble(cur: Cursor, header: GGUFHeader) -> None:
    raw = cur.read(4)
    (little,) = struct.unpack("<I", raw)
    (big,) = struct.unpack(">I", raw)
    if 1 <= little <= 3:
        header.version, header.byte_order = little, "<"
    elif 1 <= big <= 3:
        header.version, header.byte_order = big, ">"
    else:
        raise FormatError(f"gguf: unsupported version {little} (offset 4)")
    count_fmt = "I" if header.version == 1 else "Q"
    counts = struct.Struct(header.byte_order + count_fmt * 2)
    header.tensor_count, header.kv_count = (int(x) for x in cur.unpack(counts))  # type: ignore[call-overload]
    min_kv, min_tensor = (9, 20) if header.version == 1 else (13, 24)
    if header.kv_count * min_kv > cur.remaining:
        raise GGUFOverflow(
            f"metadata count {header.kv_count} needs at least {header.kv_count * min_kv} bytes, {cur.remaining} left",
            cur.pos - counts.size,
            ("CVE-2024-23605", "CVE-2024-25664"),
        )
    if header.kv_count * min_kv + header.tensor_count * min_tensor > cur.remaining:
        raise GGUFOverflow(
            f"tensor count {header.tensor_count} needs at least {header.tensor_count * min_tensor} bytes, "
            f"{cur.remaining} left",
            cur.pos - counts.size,
            ("CVE-2024-21836", "CVE-2024-25666"),
        )


class _Parser:
    """Stateful reader of the metadata and tensor-info sections."""

    def __init__(self, cur: Cursor, header: GGUFHeader, check_time: Callable[[], None] | None) -> None:
        self.cur = cur
        self.h = header
        bo = header.byte_order
        self.v1 = header.version == 1
        self.len_fmt = struct.Struct(bo + ("I" if self.v1 else "Q"))
        self.u32 = struct.Struct(bo + "I")
        self.scalars = {t: struct.Struct(bo + f) for t, f in _SCALAR_FORMATS.items()}
        self.check_time = check_time

    def problem(self, rule_id: str, message: str, offset: int, refs: tuple[str, ...] = ()) -> None:
        self.h.problems.append((rule_id, message, offset, refs))

    def length(self, what: str, refs: tuple[str, ...], unit: int = 1) -> int:
        start = self.cur.pos
        (n,) = self.cur.unpack(self.len_fmt)
        assert isinstance(n, int)
        if n * unit > self.cur.remaining:
            raise GGUFOverflow(f"{what} of {n} exceeds the {self.cur.remaining} bytes left", start, refs)
        return n

    def string(self, what: str, keep: int = MAX_KEPT_STRING) -> str | GGUFSkippedString:
        n = self.length(f"{what} length", CVE_STRINGS)
        if n > keep:
            offset = self.cur.pos
            self.cur.skip(n)
            return GGUFSkippedString(n, offset)
        return self.cur.read(n).decode("utf-8", errors="replace")

    def read_metadata(self) -> None:
        for _ in range(self.h.kv_count):
            if self.check_time is not None:
                self.check_time()
            offset = self.cur.pos
            key = self.string("metadata key", keep=1 << 16)
            if isinstance(key, GGUFSkippedString):
                raise GGUFOverflow(f"metadata key of {key.length} bytes", offset, CVE_STRINGS)
            (vtype,) = self.cur.unpack(self.u32)
            assert isinstance(vtype, int)
            value = self.value(vtype, key, 0)
            if key in self.h.metadata:
                self.problem(HEADER_ANOMALY.id, f"duplicate metadata key {key!r}", offset)
            self.h.metadata[key] = value
            self.h.key_offsets[key] = offset

    def value(self, vtype: int, key: str, depth: int) -> object:
        fmt = self.scalars.get(vtype)
        if fmt is not None:
            return self.cur.unpack(fmt)[0]
        if vtype == T_STRING:
            return self.string(f"string value of {key!r}")
        if vtype == T_ARRAY:
            return self.array(key, depth)
        raise GGUFOverflow(f"metadata {key!r} has unknown value type {vtype}", self.cur.pos - 4, CVE_STRINGS)

    def array(self, key: str, depth: int) -> GGUFArray:
        start = self.cur.pos
        if depth >= MAX_ARRAY_NESTING:
            raise GGUFOverflow(f"metadata {key!r}: arrays nested {depth} deep", start, CVE_STRINGS)
        (item_type,) = self.cur.unpack(self.u32)
        assert isinstance(item_type, int)
        fmt = self.scalars.get(item_type)
        if fmt is None and item_type not in (T_STRING, T_ARRAY):
            raise GGUFOverflow(f"metadata {key!r}: array of unknown type {item_type}", start, CVE_STRINGS)
        unit = fmt.size if fmt is not None else self.len_fmt.size + (4 if item_type == T_ARRAY else 0)
        count = self.length(f"array {key!r} count", CVE_STRINGS, unit)
        if fmt is not None:
            sample = tuple(self.cur.unpack(fmt)[0] for _ in range(min(count, ARRAY_SAMPLE)))
            self.cur.skip((count - len(sample)) * fmt.size)
            return GGUFArray(item_type, count, sample)
        if item_type == T_ARRAY:
            return GGUFArray(item_type, count, tuple(self._nested(key, depth, count)))
        sample = tuple(self.string(f"array {key!r} item", keep=4096) for _ in range(min(count, ARRAY_SAMPLE)))
        self._skip_strings(key, count - len(sample))
        return GGUFArray(item_type, count, sample)

    def _nested(self, key: str, depth: int, count: int) -> Iterator[object]:
        for i in range(count):
            if self.check_time is not None and i % 4096 == 0:
                self.check_time()
            item = self.array(key, depth + 1)
            if i < ARRAY_SAMPLE:
                yield item

    def _skip_strings(self, key: str, count: int) -> None:
        """Skip ``count`` length-prefixed strings with a tight loop over the window buffer."""
        cur, fmt = self.cur, self.len_fmt
        width = fmt.size
        unpack_from = fmt.unpack_from
        left = count
        while left:
            buf, i = cur.window(1 << 20)
            size = len(buf)
            limit = size - width
            base = i
            while left and i <= limit:
                j = i + width + unpack_from(buf, i)[0]
                if j > size:
                    break
                i = j
                left -= 1
            cur.pos += i - base
            if left:
                if cur.pos > cur.size:
                    raise FormatError(f"gguf: array {key!r} runs past the end of the file")
                self.string(f"array {key!r} item", keep=0)
                left -= 1
                if self.check_time is not None:
                    self.check_time()
        if cur.pos > cur.size:
            raise GGUFOverflow(f"array {key!r} runs past the end of the file", cur.pos, CVE_STRINGS)

    def read_tensor_infos(self) -> None:
        self.read_alignment()
        names: set[str] = set()
        dim_fmt = struct.Struct(self.h.byte_order + ("I" if self.v1 else "Q"))
        tail = struct.Struct(self.h.byte_order + "IQ")
        for _ in range(self.h.tensor_count):
            if self.check_time is not None:
                self.check_time()
            offset = self.cur.pos
            name = self.string("tensor name", keep=1 << 16)
            if isinstance(name, GGUFSkippedString):
                raise GGUFOverflow(f"tensor name of {name.length} bytes", offset, CVE_STRINGS)
            (n_dims,) = self.cur.unpack(self.u32)
            assert isinstance(n_dims, int)
            if n_dims * dim_fmt.size + tail.size > self.cur.remaining:
                raise GGUFOverflow(f"tensor {name!r} declares {n_dims} dimensions", offset, CVE_DIMS)
            dims = tuple(int(self.cur.unpack(dim_fmt)[0]) for _ in range(n_dims))  # type: ignore[call-overload]
            ggml_type, data_offset = self.cur.unpack(tail)
            assert isinstance(ggml_type, int) and isinstance(data_offset, int)
            info = GGUFTensorInfo(name, dims, ggml_type, data_offset, offset)
            self.check_tensor(info, names)
            self.h.tensors.append(info)

    def read_alignment(self) -> None:
        value = self.h.metadata.get("general.alignment")
        if value is None:
            return
        offset = self.h.key_offsets.get("general.alignment", 0)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value & (value - 1):
            self.problem(HEADER_OVERFLOW.id, f"general.alignment {value!r} is not a positive power of two", offset)
        elif value > MAX_ALIGNMENT:
            self.problem(HEADER_OVERFLOW.id, f"general.alignment {value} is absurdly large", offset)
        else:
            self.h.alignment = value

    def check_tensor(self, info: GGUFTensorInfo, names: set[str]) -> None:
        at = info.info_offset
        if info.name in names:
            self.problem(HEADER_ANOMALY.id, f"duplicate tensor name {info.name!r}", at)
        names.add(info.name)
        if len(info.dims) > GGML_MAX_DIMS:
            self.problem(
                HEADER_OVERFLOW.id, f"tensor {info.name!r} has {len(info.dims)} dimensions (max 4)", at, CVE_DIMS
            )
        product = 1
        for dim in info.dims:
            product *= dim
        if any(d > INT64_MAX for d in info.dims) or product > INT64_MAX:
            self.problem(
                HEADER_OVERFLOW.id, f"tensor {info.name!r} dimensions {list(info.dims)} overflow int64", at, CVE_DIMS
            )
        traits = GGML_TYPES.get(info.ggml_type)
        if traits is None:
            self.problem(HEADER_OVERFLOW.id, f"tensor {info.name!r} has unknown ggml type {info.ggml_type}", at)
        elif info.dims and info.dims[0] % traits[1]:
            self.problem(
                HEADER_OVERFLOW.id,
                f"tensor {info.name!r}: row of {info.dims[0]} is not a multiple of the {traits[0]} block size",
                at,
            )

    def finish_layout(self) -> None:
        align = self.h.alignment
        self.h.data_offset = -(-self.cur.pos // align) * align
        data_size = self.cur.size - self.h.data_offset
        spans: list[tuple[int, int, str]] = []
        for info in self.h.tensors:
            nbytes = info.nbytes
            if info.offset % align:
                self.problem(
                    HEADER_ANOMALY.id,
                    f"tensor {info.name!r} offset {info.offset} is not aligned to {align}",
                    info.info_offset,
                )
            if nbytes is None:
                continue
            if info.offset + nbytes > data_size:
                self.problem(
                    HEADER_OVERFLOW.id,
                    f"tensor {info.name!r} data [{info.offset}, {info.offset + nbytes}) lies beyond the end of the "
                    f"file (data region of {max(data_size, 0)} bytes)",
                    info.info_offset,
                )
            spans.append((info.offset, info.offset + nbytes, info.name))
        spans.sort()
        for (_, prev_end, prev), (begin, _, name) in zip(spans, spans[1:], strict=False):
            if begin < prev_end:
                self.problem(HEADER_ANOMALY.id, f"tensors {prev!r} and {name!r} overlap", self.h.data_offset + begin)


def _facts(path: str, header: GGUFHeader) -> object:
    """Framework facts from the parsed metadata; None (read the file again) when a string was skipped.

    Arrays read as ``[N items]``, as the vulnerability stage's own GGUF reader spells them.
    """
    if any(isinstance(v, GGUFSkippedString) for v in header.metadata.values()):
        return None
    from modelshield.advisories.requirements import facts_from_gguf

    values = {k: f"[{v.count} items]" if isinstance(v, GGUFArray) else v for k, v in header.metadata.items()}
    return facts_from_gguf(path, header.version, values)


def _data_end(header: GGUFHeader) -> int:
    ends = [i.offset + (i.nbytes or 0) for i in header.tensors]
    align = header.alignment
    return header.data_offset + -(-max(ends, default=0) // align) * align


@register_reader
class GGUFReader(Reader):
    """Validates GGUF headers and analyses embedded chat templates."""

    name = "gguf"
    priority = 80

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The ``GGUF`` magic."""
        return sniff_gguf(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse the header; report impossible numbers, analyse chat templates, scan trailing bytes."""
        header = GGUFHeader()
        failure: FormatError | None = None
        with blob.open() as stream:
            try:
                parse_gguf(stream, blob.size, header, ctx.check_time)
            except GGUFOverflow as exc:
                yield ctx.finding(HEADER_OVERFLOW.id, exc.message, offset=exc.offset, references=exc.references)
            except FormatError as exc:  # truncated or corrupt: report after what was found so far
                failure = exc
            else:
                if not blob.members:  # what the model needs, for the vulnerability stage (no second parse)
                    ctx.facts = _facts(blob.path, header)
        for rule_id, message, offset, refs in header.problems:
            yield ctx.finding(rule_id, message, offset=offset, references=refs)
        yield from self._templates(header, ctx)
        if failure is not None:
            raise failure
        if header.tensors and header.data_offset <= blob.size:
            end = _data_end(header)
            if end < blob.size:
                yield ctx.finding(
                    HIDDEN_BYTES.id, f"{blob.size - end} bytes follow the last tensor at offset {end}", offset=end
                )
                yield blob.child_range(f"trailing@{end}", end, blob.size - end)
        if header.tensors and len(header.tensors) == header.tensor_count:
            yield header  # IR for the structure check (modelshield.analyzers.tamper_structure)

    def _templates(self, header: GGUFHeader, ctx: ScanContext) -> Iterator[object]:
        from modelshield.analyzers.chat_template import TEMPLATE_UNANALYSED, analyze_template

        for key, value in header.metadata.items():
            if key != "tokenizer.chat_template" and not key.startswith("tokenizer.chat_template."):
                continue
            if isinstance(value, str):
                yield from analyze_template(value, ctx, f"gguf:{key}")
            else:
                yield ctx.finding(
                    TEMPLATE_UNANALYSED.id,
                    f"gguf:{key}: chat template is not a string that can be analysed ({type(value).__name__})",
                    offset=header.key_offsets.get(key),
                )
