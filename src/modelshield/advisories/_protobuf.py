"""A bounded protobuf wire-format walker over a seekable stream (metadata only, payloads skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from modelshield.errors import FormatError

MAX_FIELD_READ = 1 << 20


def read_varint(stream: BinaryIO) -> int:
    """Read one base-128 varint; FormatError on truncation or overlong encoding."""
    result = 0
    for shift in range(0, 70, 7):
        byte = stream.read(1)
        if not byte:
            raise FormatError(f"truncated varint at byte {stream.tell()}")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
    raise FormatError(f"overlong varint at byte {stream.tell()}")


def walk(stream: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yield ``(field, wire_type, value)`` for the message in ``[start, end)``.

    Varints and fixed fields give an int; length-delimited fields give ``(offset, length)`` and
    are skipped (read them with :func:`read_span`).
    """
    stream.seek(start)
    while stream.tell() < end:
        key = read_varint(stream)
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, read_varint(stream)
        elif wire == 2:
            length = read_varint(stream)
            offset = stream.tell()
            if offset + length > end:
                raise FormatError(f"field {field} at byte {offset} runs past its message end")
            yield field, wire, (offset, length)
            stream.seek(offset + length)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            data = stream.read(size)
            if len(data) != size:
                raise FormatError(f"truncated fixed field {field}")
            yield field, wire, int.from_bytes(data, "little")
        else:
            raise FormatError(f"unsupported wire type {wire} for field {field} at byte {stream.tell()}")


def read_span(stream: BinaryIO, span: tuple[int, int]) -> bytes:
    """The bytes of a length-delimited field (refuses fields over 1 MiB)."""
    offset, length = span
    if length > MAX_FIELD_READ:
        raise FormatError(f"metadata field at byte {offset} is too large ({length} bytes)")
    stream.seek(offset)
    return stream.read(length)


def read_text(stream: BinaryIO, span: tuple[int, int]) -> str:
    """A length-delimited field decoded as UTF-8 (undecodable bytes replaced)."""
    return read_span(stream, span).decode("utf-8", "replace")
