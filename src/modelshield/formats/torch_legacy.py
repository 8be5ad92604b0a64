"""Reader for torch's legacy (pre-1.6, ``_use_new_zipfile_serialization=False``) checkpoints.

Layout: five pickles back to back — the magic number ``0x1950a86a20f9469cfc6c``, the protocol
version, a ``sys_info`` dict, the main object (tensors as ``('storage', type, key, location,
numel)`` persistent ids), the sorted storage keys — then, for each key, an 8-byte element count and
the raw storage bytes. Every pickle is analysed; the storage bytes are skipped by size (never
loaded). Bytes after the last storage are reported as trailing data and scanned as a member.

(The even older tar-based format is a tar archive; the tar reader yields its members and the pickle
reader sniffs them.)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from modelshield.formats._sniff import sniff_torch_legacy
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.pickle.values import GlobalRef, PickleStream, SList
from modelshield.formats.pickle.vm import TRAILING_DATA, Budget, parse_one_stream
from modelshield.rules import rule
from modelshield.types import Category, Severity

#: Bytes per element of each storage type (by class name).
ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
    "UntypedStorage": 1,
}
_MAX_KEYS = 1_000_000

LEGACY_LAYOUT = rule(
    "TORCH-LEGACY-LAYOUT",
    "Legacy torch checkpoint does not follow the expected layout",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The storage section of a legacy torch checkpoint could not be walked (unknown storage type, "
    "inconsistent sizes, missing pickles), so the bytes after the pickles were not fully accounted "
    "for.",
    "Re-save the model with a current torch (zip format) or, better, as safetensors.",
)


@register_reader
class TorchLegacyReader(Reader):
    """torch.save(..., _use_new_zipfile_serialization=False) files."""

    name: ClassVar[str] = "pytorch-legacy"
    priority: ClassVar[int] = 30

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A protocol-2+ pickle of the legacy magic number opens the file."""
        return sniff_torch_legacy(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Analyse the five pickles, walk the storages by size, report what is left."""
        budget = Budget(ctx, ctx.limits)
        with blob.open() as stream:
            streams: list[PickleStream] = []
            for _ in range(5):
                found, limit = parse_one_stream(stream, ctx, budget=budget, keep_items=_MAX_KEYS)
                yield from found
                if limit is not None:
                    raise limit
                main = found[-1]
                streams.append(main)
                if main.error is not None:
                    return  # the analyzer reports the broken stream; nothing after it can be located
                if stream.tell() >= blob.size:
                    break
            if len(streams) < 5:
                yield ctx.finding(LEGACY_LAYOUT.id, f"only {len(streams)} of the 5 pickles are present")
                return
            yield from _walk_storages(stream, blob, ctx, streams[3], streams[4])


def _storage_types(main: PickleStream) -> dict[str, str]:
    """Storage key -> storage type name, from the main pickle's persistent ids."""
    types: dict[str, str] = {}
    for site in main.persids:
        pid = site.raw_args
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], GlobalRef):
            types[str(pid[2])] = pid[1].name
    return types


def _walk_storages(
    stream: BinaryIO, blob: Blob, ctx: ScanContext, main: PickleStream, keys: PickleStream
) -> Iterator[object]:
    if not isinstance(keys.value, SList) or keys.value.total > len(keys.value.items):
        yield ctx.finding(LEGACY_LAYOUT.id, "the storage-key pickle is not a complete list", offset=keys.offset)
        return
    types = _storage_types(main)
    for key in keys.value.items:
        ctx.check_time()
        type_name = types.get(str(key))
        size = ELEMENT_SIZE.get(type_name or "")
        offset = stream.tell()
        raw = stream.read(8)
        if size is None or len(raw) < 8:
            why = f"unknown storage type {type_name!r}" if size is None else "file ends inside the storage section"
            yield ctx.finding(LEGACY_LAYOUT.id, f"storage {key!r}: {why}", offset=offset)
            return
        count = struct.unpack("<q", raw)[0]
        end = stream.tell() + count * size
        if count < 0 or end > blob.size:
            yield ctx.finding(
                LEGACY_LAYOUT.id, f"storage {key!r} claims {count} elements past the end of the file", offset=offset
            )
            return
        stream.seek(end)
    rest = blob.size - stream.tell()
    if rest > 0:
        offset = stream.tell()
        yield ctx.finding(TRAILING_DATA.id, f"{rest} bytes after the last storage", offset=offset)
        yield ctx.blob.child_range(f"trailing@{offset}", offset, rest)
