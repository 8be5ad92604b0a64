"""Compression wrappers: gzip, bzip2, xz, lzma (alone), raw zlib, lz4 frame, joblib's ``ZF``.

``joblib.dump(..., compress=...)`` and hand-compressed checkpoints (``model.pkl.gz``) wrap a
pickle, a tar or anything else in one compressed stream. The stream is decompressed with
bounded output (``max_decompressed_bytes``, ``max_compression_ratio``) into a spool and yielded
as one child blob (format hint ``decompressed``) that the scanner sniffs in turn. Corrupt or
truncated streams are reported with the byte offset, and what was recovered is still scanned.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._containers import (
    ARCHIVE_BOMB,
    DECODERS,
    TRAILING_DATA,
    Budget,
    DecodeOutcome,
    Spool,
    decode_stream,
    first_nonzero,
    iter_range,
)
from modelshield.formats._sniff import (
    BZIP2_MAGIC,
    GZIP_MAGIC,
    JOBLIB_ZF_MAGIC,
    LZ4_MAGIC,
    XZ_MAGIC,
    ZF_HEADER,
    compression_kind,
    sniff_compressed,
)
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader

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


GZIP = Wrapper("gzip", "gzip", GZIP_MAGIC, multi_stream=True)
BZIP2 = Wrapper("bzip2", "bzip2", BZIP2_MAGIC, multi_stream=True)
XZ = Wrapper("xz", "xz", XZ_MAGIC, multi_stream=True)
LZ4 = Wrapper("lz4", "lz4", LZ4_MAGIC, multi_stream=True)
LZMA = Wrapper("lzma", "lzma-alone")
ZLIB = Wrapper("zlib", "zlib")
JOBLIB_ZF = Wrapper("joblib-zf", "zlib", JOBLIB_ZF_MAGIC, skip=ZF_HEADER)
#: By the names :func:`~modelshield.formats._sniff.compression_kind` returns.
_BY_NAME = {w.name: w for w in (GZIP, BZIP2, XZ, LZ4, LZMA, ZLIB, JOBLIB_ZF)}


def identify(head: bytes) -> Wrapper | None:
    """The wrapper format of ``head``, or None (weak magics are confirmed by trial decoding)."""
    kind = compression_kind(head)
    return None if kind is None else _BY_NAME[kind]


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
        return sniff_compressed(head, blob)

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
