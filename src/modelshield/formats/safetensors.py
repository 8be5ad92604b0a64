"""safetensors: header-only validation, trailing-bytes extraction, sharded index consistency.

A safetensors file is ``<u64 little-endian header length n><n bytes of JSON header><tensor data>``.
The header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the data region) plus an optional ``__metadata__`` string→string map.

Only the header is read; tensor bytes are never touched, so the cost does not depend on the size of
the model. Bytes after the last tensor are handed back to the scanner as a child blob (a pickle or
archive appended to a valid safetensors file is a polyglot other loaders may accept).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from modelshield._record import record
from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._sniff import looks_like_safetensors, sniff_safetensors, sniff_safetensors_index
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.limits import Limits
from modelshield.rules import rule
from modelshield.types import Category, Severity

#: Bits per element of every dtype the reference implementation knows (sub-byte float formats too).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

#: The header size the reference loader refuses beyond (``MAX_HEADER_SIZE``).
REFERENCE_MAX_HEADER = 100_000_000

HEADER_ABUSE = rule(
    "SAFETENSORS-HEADER-ABUSE",
    "Malformed or ambiguous safetensors header",
    Severity.HIGH,
    Category.TAMPERING,
    "The safetensors header is malformed in a way loaders disagree about or that hides bytes: a header "
    "length beyond the file, duplicate JSON keys (each parser picks a different value), unknown dtypes, "
    "shapes that do not match their byte span, offsets out of bounds, or overlapping tensors. Such "
    "files are crafted to make scanners and loaders see different content.",
    "Do not load the file; re-export the weights from a trusted source with the safetensors library.",
    ("CWE-20", "CWE-436"),
)
HIDDEN_BYTES = rule(
    "SAFETENSORS-HIDDEN-BYTES",
    "Bytes in a safetensors file that no tensor covers",
    Severity.MEDIUM,
    Category.TAMPERING,
    "Part of the data region (a gap between tensors, or bytes after the last tensor) belongs to no "
    "tensor. The safetensors library refuses such files, but the bytes can carry a second payload "
    "(polyglot) read by another loader. The uncovered bytes are scanned on their own.",
    "Re-save the weights with the safetensors library, which writes no gaps or trailing bytes.",
    ("CWE-506",),
)
BAD_METADATA = rule(
    "SAFETENSORS-BAD-METADATA",
    "safetensors __metadata__ is not a string-to-string map",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The specification allows only strings in __metadata__. Other values are rejected by the reference "
    "loader and may target a different parser.",
    "Re-save the weights with the safetensors library.",
)
INDEX_INCONSISTENT = rule(
    "SAFETENSORS-INDEX-INCONSISTENT",
    "Sharded safetensors index does not match its shards",
    Severity.MEDIUM,
    Category.INTEGRITY,
    "model.safetensors.index.json names tensors that are not in the named shard, shards that do not "
    "exist, or shards hold tensors the index does not list (hidden weights a loader may still read).",
    "Re-download the model; regenerate the index with the library that wrote the shards.",
)
INDEX_PATH_ESCAPE = rule(
    "SAFETENSORS-INDEX-PATH-ESCAPE",
    "Sharded safetensors index points outside the model folder",
    Severity.HIGH,
    Category.VULNERABILITY,
    "A shard file name in the weight_map is absolute or climbs out of the model folder with '..'. "
    "Loaders join it to the model folder and read whatever file it names.",
    "Do not load the model; shard names must be plain file names next to the index.",
    ("CWE-22",),
)


@record
class TensorEntry:
    """One tensor of a safetensors header; offsets are relative to the data region."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes_expected(self) -> int | None:
        """Bytes implied by dtype and shape (None for an unknown dtype or a sub-byte remainder)."""
        bits = DTYPE_BITS.get(self.dtype)
        if bits is None:
            return None
        count = 1
        for dim in self.shape:
            count *= dim
        total = count * bits
        return total // 8 if total % 8 == 0 else None


@dataclass(slots=True)
class SafetensorsHeader:
    """A parsed safetensors header.

    ``tensors`` maps names to entries in header order; ``problems`` lists structural defects found
    while reading (duplicate keys, entries of the wrong shape) as ``(message, evidence)`` pairs.
    """

    header_length: int
    data_offset: int
    tensors: dict[str, TensorEntry] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def read_safetensors_header(
    stream: BinaryIO, *, max_header_bytes: int = Limits().max_header_bytes
) -> SafetensorsHeader:
    """Read and structurally parse the header of a safetensors stream (positioned anywhere).

    Raises FormatError when the bytes are not a safetensors header at all (truncated length, header
    longer than the stream, invalid UTF-8 or JSON, not an object) and LimitExceeded when the declared
    header is larger than ``max_header_bytes``. Semantic checks (offsets, sizes) are done by
    :func:`validate_layout`.
    """
    stream.seek(0)
    prefix = stream.read(8)
    if len(prefix) < 8:
        raise FormatError(f"safetensors: file too short for the 8-byte header length ({len(prefix)} bytes)")
    (length,) = struct.unpack("<Q", prefix)
    if length > max_header_bytes:
        raise LimitExceeded("max_header_bytes", max_header_bytes, f"safetensors header declares {length} bytes")
    raw = stream.read(length)
    if len(raw) < length:
        raise FormatError(f"safetensors: header declares {length} bytes but only {len(raw)} follow offset 8")
    header = SafetensorsHeader(length, 8 + length)
    top = _parse_json(raw, header.problems)
    if not isinstance(top, dict):
        raise FormatError("safetensors: header JSON is not an object (offset 8)")
    for name, value in top.items():
        if name == "__metadata__":
            header.metadata = value if isinstance(value, dict) else {"<not an object>": value}
            continue
        entry = _tensor_entry(name, value)
        if isinstance(entry, str):
            header.problems.append((f"tensor {name!r}: {entry}", json.dumps(value)[:300]))
        else:
            header.tensors[name] = entry
    return header


def _parse_json(raw: bytes, problems: list[tuple[str, str]]) -> object:
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in items:
            if key in seen:
                problems.append((f"duplicate JSON key {key!r} (parsers disagree which value wins)", key))
            seen[key] = value
        return seen

    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise FormatError(f"safetensors: header is not UTF-8 (offset {8 + exc.start})") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"safetensors: header is not valid JSON: {exc.msg} (offset {8 + exc.pos})") from None
    except RecursionError:
        raise LimitExceeded("max_nesting", "json", "safetensors header JSON nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer literal too long for int()
        raise FormatError(f"safetensors: header JSON rejected: {exc}") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def _tensor_entry(name: str, value: object) -> TensorEntry | str:
    if not isinstance(value, dict):
        return "entry is not an object"
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not isinstance(dtype, str):
        return "dtype missing or not a string"
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        return "shape missing or not a list of non-negative integers"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        return "data_offsets missing or not two non-negative integers"
    extra = set(value) - {"dtype", "shape", "data_offsets"}
    if extra:
        return f"unexpected fields {sorted(extra)}"
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_layout(header: SafetensorsHeader, file_size: int) -> Iterator[tuple[str, str, str]]:
    """Check dtypes, sizes, bounds, overlaps and gaps; yield ``(rule_id, message, evidence)``.

    Gaps and trailing bytes are reported by :func:`uncovered_ranges`, which also yields them.
    """
    data_size = file_size - header.data_offset
    for entry in header.tensors.values():
        where = f"tensor {entry.name!r}"
        if entry.dtype not in DTYPE_BITS:
            yield HEADER_ABUSE.id, f"{where}: unknown dtype {entry.dtype!r}", entry.dtype
        elif entry.nbytes_expected != entry.end - entry.begin:
            yield (
                HEADER_ABUSE.id,
                f"{where}: shape {list(entry.shape)} of {entry.dtype} needs {entry.nbytes_expected} bytes, "
                f"offsets span {entry.end - entry.begin}",
                f"data_offsets={[entry.begin, entry.end]}",
            )
        if entry.begin > entry.end or entry.end > data_size:
            yield (
                HEADER_ABUSE.id,
                f"{where}: data_offsets {[entry.begin, entry.end]} outside the data region of {data_size} bytes",
                f"data_offsets={[entry.begin, entry.end]}",
            )
    ordered = sorted(header.tensors.values(), key=lambda e: (e.begin, e.end))
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.begin < prev.end:
            yield (
                HEADER_ABUSE.id,
                f"tensors {prev.name!r} and {cur.name!r} overlap (bytes {cur.begin}..{min(prev.end, cur.end)})",
                f"{prev.name}={[prev.begin, prev.end]} {cur.name}={[cur.begin, cur.end]}",
            )
    for key, value in header.metadata.items():
        if not isinstance(value, str):
            yield BAD_METADATA.id, f"__metadata__[{key!r}] is a {type(value).__name__}, not a string", repr(value)[:200]


def uncovered_ranges(header: SafetensorsHeader, file_size: int) -> list[tuple[int, int]]:
    """Absolute ``(start, end)`` byte ranges of the data region that no tensor covers."""
    data_size = file_size - header.data_offset
    spans = sorted((e.begin, min(e.end, data_size)) for e in header.tensors.values() if e.begin < e.end)
    ranges: list[tuple[int, int]] = []
    cursor = 0
    for begin, end in spans:
        if begin > cursor:
            ranges.append((cursor, begin))
        cursor = max(cursor, end)
    if cursor < data_size:
        ranges.append((cursor, data_size))
    return [(header.data_offset + a, header.data_offset + b) for a, b in ranges]


@register_reader
class SafetensorsReader(Reader):
    """Validates a safetensors header and scans bytes no tensor covers."""

    name = "safetensors"
    priority = 80

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A plausible 8-byte length followed by a JSON object."""
        return sniff_safetensors(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse the header, report defects, yield uncovered byte ranges as child blobs.

        Content that claims to be safetensors (by its first bytes or its name) but has no valid
        header is a high finding, and is then read for what it really is (see :meth:`_not_safetensors`).
        """
        size = blob.size
        with blob.open() as stream:
            head = stream.read(8)
            if len(head) < 8:
                yield from self._not_safetensors(blob, ctx, f"{size} bytes: too short for the 8-byte header length")
                return
            (length,) = struct.unpack("<Q", head)
            if length > max(size - 8, 0):
                yield from self._not_safetensors(blob, ctx, f"header length {length} exceeds the file ({size} bytes)")
                return
            if length > REFERENCE_MAX_HEADER:
                yield ctx.finding(
                    HEADER_ABUSE.id,
                    f"header length {length} exceeds what the reference loader accepts ({REFERENCE_MAX_HEADER})",
                    evidence=f"header_length={length}",
                    offset=0,
                )
            try:
                header = read_safetensors_header(stream, max_header_bytes=ctx.limits.max_header_bytes)
            except LimitExceeded:
                raise
            except FormatError as exc:
                problem = exc.message.removeprefix("safetensors: ")
                yield from self._not_safetensors(blob, ctx, problem)
                return
        for message, evidence in header.problems:
            yield ctx.finding(HEADER_ABUSE.id, message, evidence=evidence, offset=8)
        for rule_id, message, evidence in validate_layout(header, size):
            yield ctx.finding(rule_id, message, evidence=evidence, offset=8)
        yield from self._uncovered(blob, ctx, header)
        yield header  # IR for the structure check (modelshield.analyzers.tamper_structure)

    def _not_safetensors(self, blob: Blob, ctx: ScanContext, problem: str) -> Iterator[object]:
        """A high finding, then the bytes read as what they are.

        Readers below this one are asked about the whole blob (a pickle named ``model.safetensors``
        is analysed as the pickle it is); when none claims it, the bytes after the length field are
        scanned as a child (a payload placed behind a fake length), and the blob itself gets the
        generic content checks (EICAR, executables, YARA).
        """
        head = blob.head()
        claim = "by its first bytes" if looks_like_safetensors(head) else "by its name"
        yield ctx.finding(
            HEADER_ABUSE.id,
            f"not a valid safetensors file, although it claims to be one {claim}: {problem}",
            evidence=f"first bytes {head[:24]!r}",
            offset=0,
        )
        from modelshield.formats.interface import detect

        other = detect(blob, head, below=self.priority)
        if other is not None:
            ctx.format = other.name
            yield from other.read(blob, ctx)
            return
        from modelshield.formats.executables import generic_findings, read_small

        data = read_small(blob)
        if data is not None:
            yield from generic_findings(data, ctx)
        if blob.size > 8:
            yield blob.child_range("body@8", 8, blob.size - 8)

    def _uncovered(self, blob: Blob, ctx: ScanContext, header: SafetensorsHeader) -> Iterator[object]:
        last_end = max((e.end for e in header.tensors.values()), default=0) + header.data_offset
        for start, end in uncovered_ranges(header, blob.size):
            kind = "trailing" if start >= last_end else "gap"
            yield ctx.finding(
                HIDDEN_BYTES.id,
                f"{end - start} bytes at offset {start} belong to no tensor ({kind} bytes)",
                evidence=f"{kind}@{start}..{end}",
                offset=start,
            )
            yield blob.child_range(f"{kind}@{start}", start, end - start)


# ---------------------------------------------------------------------------------------------
# Sharded checkpoints: model.safetensors.index.json


@register_reader
class SafetensorsIndexReader(Reader):
    """Checks a sharded checkpoint index against the shard files next to it."""

    name = "safetensors-index"
    priority = 70

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A JSON object with a ``weight_map`` (or the conventional file name and a JSON object)."""
        return sniff_safetensors_index(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse the index; when it is a file on disk, compare it with the shard headers."""
        if blob.size > ctx.limits.max_header_bytes:
            raise LimitExceeded("max_header_bytes", ctx.limits.max_header_bytes, "index file too large")
        with blob.open() as stream:
            raw = stream.read(ctx.limits.max_header_bytes + 1)
        problems: list[tuple[str, str]] = []
        try:
            top = _parse_json(raw, problems)
        except FormatError as exc:
            raise FormatError(exc.message.replace("safetensors: header", "safetensors index")) from None
        weight_map = top.get("weight_map") if isinstance(top, dict) else None
        if not isinstance(weight_map, dict):
            raise FormatError("safetensors index: no weight_map object")
        for message, evidence in problems:
            yield ctx.finding(HEADER_ABUSE.id, f"index: {message}", evidence=evidence)
        shards: dict[str, set[str]] = {}
        for tensor, shard in weight_map.items():
            if not isinstance(shard, str):
                yield ctx.finding(
                    INDEX_INCONSISTENT.id, f"weight_map[{tensor!r}] is not a file name", evidence=repr(shard)
                )
                continue
            shards.setdefault(shard, set()).add(tensor)
        for shard in shards:
            if _escapes(shard):
                yield ctx.finding(INDEX_PATH_ESCAPE.id, f"shard name {shard!r} leaves the model folder", evidence=shard)
        if not blob.members:
            yield from _check_shards(os.path.dirname(os.path.abspath(blob.path)), shards, ctx)


def _escapes(shard: str) -> bool:
    name = shard.replace("\\", "/")
    return name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in name.split("/")


def _check_shards(folder: str, shards: dict[str, set[str]], ctx: ScanContext) -> Iterator[object]:
    for shard, listed in sorted(shards.items()):
        if _escapes(shard):
            continue
        ctx.check_time()
        path = os.path.join(folder, shard)
        if not os.path.isfile(path):
            yield ctx.finding(
                INDEX_INCONSISTENT.id, f"shard {shard!r} named by the index does not exist", evidence=shard
            )
            continue
        try:
            with open(path, "rb") as stream:
                header = read_safetensors_header(stream, max_header_bytes=ctx.limits.max_header_bytes)
        except (FormatError, OSError) as exc:
            yield ctx.finding(INDEX_INCONSISTENT.id, f"shard {shard!r} has no readable header: {exc}", evidence=shard)
            continue
        present = set(header.tensors)
        missing, unlisted = sorted(listed - present), sorted(present - listed)
        if missing:
            yield ctx.finding(
                INDEX_INCONSISTENT.id,
                f"{len(missing)} tensor(s) the index places in {shard!r} are not in that shard",
                evidence=", ".join(missing[:20]),
            )
        if unlisted:
            yield ctx.finding(
                INDEX_INCONSISTENT.id,
                f"shard {shard!r} holds {len(unlisted)} tensor(s) the index does not list",
                evidence=", ".join(unlisted[:20]),
            )
