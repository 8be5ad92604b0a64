"""Compression wrappers: gzip, bzip2, xz, lzma (alone), raw zlib, lz4 frame, joblib's ``ZF``.

``joblib.dump(..., compress=...)`` and hand-compressed checkpoints (``model.pkl.gz``) wrap a
pickle, a tar or anything else in one compressed stream. The stream is decompressed with
bounded output (``max_decompressed_bytes``, ``max_compression_ratio``) into a spool and yielded
as one child blob (format hint ``decompressed``) that the scanner sniffs in turn. Corrupt or
truncated streams are reported with the byte offset, and what was recovered is still scanned.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._containers import (
    ARCHIVE_BOMB,
    DECODE_ERRORS,
    DECODERS,
    TRAILING_DATA,
    Budget,
    DecodeOutcome,
    Spool,
    decode_stream,
    first_nonzero,
    iter_range,
)
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader

#: joblib < 0.10 "ZF" files: b"ZF", the hex length padded to 19 characters, then a zlib stream.
ZF_HEADER = 21
_ZF = re.compile(rb"ZF0x[0-9a-fA-F]{1,17}L? *")
_EXTENSIONS = {
    ".gz": "",
    ".gzip": "",
    ".tgz": ".tar",
    ".bz2": "",
    ".tbz2": ".tar",
    ".xz": "",
    ".txz": ".tar",
    ".lzma": "",
    ".z": "",
    ".zlib": "",
    ".lz4": "",
}


@dataclass(frozen=True, slots=True)
class Wrapper:
    """One compression format: how to recognise it and how to decode it."""

    name: str
    decoder: str
    magic: bytes = b""
    skip: int = 0
    multi_stream: bool = False


GZIP = Wrapper("gzip", "gzip", b"\x1f\x8b\x08", multi_stream=True)
BZIP2 = Wrapper("bzip2", "bzip2", b"BZh", multi_stream=True)
XZ = Wrapper("xz", "xz", b"\xfd7zXZ\x00", multi_stream=True)
LZ4 = Wrapper("lz4", "lz4", b"\x04\x22\x4d\x18", multi_stream=True)
LZMA = Wrapper("lzma", "lzma-alone")
ZLIB = Wrapper("zlib", "zlib")
JOBLIB_ZF = Wrapper("joblib-zf", "zlib", b"ZF", skip=ZF_HEADER)


def identify(head: bytes) -> Wrapper | None:
    """The wrapper format of ``head``, or None (weak magics are confirmed by trial decoding)."""
    if head.startswith(GZIP.magic) or head.startswith(XZ.magic) or head.startswith(LZ4.magic):
        return GZIP if head[0] == 0x1F else XZ if head[0] == 0xFD else LZ4
    if head[:3] == BZIP2.magic and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return BZIP2
    if _ZF.fullmatch(head[:ZF_HEADER]) and _decodes(ZLIB, head[ZF_HEADER:]):
        return JOBLIB_ZF
    if _plausible_lzma_alone(head) and _decodes(LZMA, head):
        return LZMA
    if _plausible_zlib(head) and _decodes(ZLIB, head):
        return ZLIB
    return None


def _plausible_zlib(head: bytes) -> bool:
    return (
        len(head) >= 3
        and head[0] & 0x0F == 8
        and head[0] >> 4 <= 7
        and (head[0] << 8 | head[1]) % 31 == 0
        and not head[1] & 0x20
    )


def _plausible_lzma_alone(head: bytes) -> bool:
    if len(head) < 14 or head[0] >= 225:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    declared = int.from_bytes(head[5:13], "little")
    power = dict_size & (dict_size - 1) == 0 or (dict_size // 3) & (dict_size // 3 - 1) == 0 and dict_size % 3 == 0
    return dict_size >= 4096 and power and (declared == 2**64 - 1 or declared < 2**48)


def _decodes(wrapper: Wrapper, data: bytes) -> bool:
    try:
        DECODERS[wrapper.decoder]().decompress(data, 256)
    except DECODE_ERRORS:
        return False
    return True


def inner_name(name: str) -> str:
    """Member name of the decompressed content: the file name without its compression suffix."""
    stem, dot, ext = name.rpartition(".")
    if dot and f".{ext.lower()}" in _EXTENSIONS:
        return stem + _EXTENSIONS[f".{ext.lower()}"]
    return "decompressed"


@register_reader
class CompressedReader(Reader):
    """Single-stream compression wrappers; the decompressed content is one child blob."""

    name = "compressed"
    priority = 85

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Magic bytes of a supported compressor (weak ones confirmed by trial decoding)."""
        return identify(head) is not None

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Decompress with bounded output; yield the content, problems, and trailing data."""
        wrapper = identify(blob.head())
        if wrapper is None:
            raise FormatError("no supported compression header at byte 0")
        ctx.format = wrapper.name
        budget = Budget(ctx.limits)
        spool = Spool(budget)
        with blob.open() as stream:
            size = stream.seek(0, io.SEEK_END)
            restart = _restart(wrapper)
            chunks = iter_range(stream, wrapper.skip, None)
            outcome = decode_stream(
                chunks,
                DECODERS[wrapper.decoder],
                spool.write,
                budget,
                compressed_size=size - wrapper.skip,
                restart=restart,
                check_time=ctx.check_time,
            )
            yield from _problems(wrapper, outcome, spool, ctx)
            if spool.size or not outcome.complete:
                yield spool.blob(blob, inner_name(blob.name), "decompressed")
            if outcome.complete:
                yield from _trailing(stream, blob, wrapper.skip + outcome.consumed, size, ctx)
        if outcome.bomb and budget.decompressed > ctx.limits.max_decompressed_bytes:
            raise LimitExceeded(
                "max_decompressed_bytes", ctx.limits.max_decompressed_bytes, "decompression budget spent"
            )


def _restart(wrapper: Wrapper) -> Callable[[bytes], bool] | None:
    if not wrapper.multi_stream:
        return None
    return lambda rest: rest.startswith(wrapper.magic)


def _problems(wrapper: Wrapper, outcome: DecodeOutcome, spool: Spool, ctx: ScanContext) -> Iterator[object]:
    where = wrapper.skip + outcome.consumed
    if outcome.bomb:
        yield ctx.finding(
            ARCHIVE_BOMB.id,
            f"{wrapper.name} stream {outcome.bomb}; only the first {spool.size} bytes were analysed",
            offset=where,
        )
    elif outcome.error:
        yield ctx.finding(
            "PARSE-ERROR",
            f"corrupt {wrapper.name} data near byte {where} ({outcome.error}); "
            f"{spool.size} bytes recovered and scanned",
            offset=where,
        )
    elif not outcome.complete:
        yield ctx.finding(
            "PARSE-ERROR",
            f"{wrapper.name} stream is truncated at byte {where}; {spool.size} bytes recovered and scanned",
            offset=where,
        )
    elif wrapper is JOBLIB_ZF:
        yield from _check_zf_length(spool, ctx)


def _check_zf_length(spool: Spool, ctx: ScanContext) -> Iterator[object]:
    with ctx.blob.open() as stream:
        declared = int(stream.read(ZF_HEADER)[2:].strip().rstrip(b"L"), 16)
    if declared != spool.size:
        yield ctx.finding(
            "PARSE-ERROR", f"joblib ZF header declares {declared} bytes, the stream holds {spool.size}", offset=2
        )


def _trailing(stream: BinaryIO, blob: Blob, end: int, size: int, ctx: ScanContext) -> Iterator[object]:
    if end >= size:
        return
    start = first_nonzero(stream, end, size)
    if start is None:
        return
    yield ctx.finding(TRAILING_DATA.id, f"{size - start} bytes follow the end of the compressed stream", offset=start)
    yield blob.child_range(f"trailing@{start}", start, size - start)
