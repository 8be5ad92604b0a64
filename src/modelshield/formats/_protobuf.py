"""A minimal protobuf wire-format decoder over a :class:`Cursor` (no generated code, no copies).

Messages are walked field by field inside ``[start, end)`` bounds. Length-delimited fields the
caller does not want are skipped by moving the position, so large payloads (tensor raw_data) are
never read into memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.errors import FormatError
from modelshield.formats._cursor import Cursor

VARINT, FIXED64, LEN, SGROUP, EGROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def fields(cur: Cursor, end: int) -> Iterator[tuple[int, int]]:
    """Yield ``(field_number, wire_type)`` for each field until ``end``; the caller consumes the value."""
    while cur.pos < end:
        key = cur.varint()
        number, wire = key >> 3, key & 7
        if number == 0 or wire in (SGROUP, EGROUP) or wire > FIXED32:
            raise FormatError(f"{cur.what}: invalid protobuf field key {key} at offset {cur.pos}")
        yield number, wire
        if cur.pos > end:
            raise FormatError(f"{cur.what}: field {number} runs past its message end {end} (offset {cur.pos})")


def length(cur: Cursor, end: int) -> int:
    """Read a length prefix and check it fits inside the enclosing message."""
    at = cur.pos
    n = cur.varint()
    if n > end - cur.pos:
        raise FormatError(f"{cur.what}: length {n} at offset {at} exceeds its message ({end - cur.pos} bytes left)")
    return n


def enter(cur: Cursor, end: int) -> int:
    """Read the length prefix of a sub-message at the position; return the sub-message's end offset."""
    n = length(cur, end)
    return cur.pos + n


def skip(cur: Cursor, wire: int, end: int) -> None:
    """Skip one field value of wire type ``wire``."""
    if wire == VARINT:
        cur.varint()
    elif wire == FIXED64:
        cur.skip(8)
    elif wire == FIXED32:
        cur.skip(4)
    else:
        cur.skip(length(cur, end))


def text(cur: Cursor, end: int, keep: int = 1 << 16) -> str:
    """Read a string field; values longer than ``keep`` are skipped and summarised."""
    n = length(cur, end)
    if n > keep:
        cur.skip(n)
        return f"<{n} bytes not kept>"
    return cur.read(n).decode("utf-8", errors="replace")


def varints(cur: Cursor, wire: int, end: int, limit: int = 1 << 16) -> list[int]:
    """Read a repeated int64 field (one value, or a packed run when ``wire`` is LEN)."""
    if wire == VARINT:
        return [signed64(cur.varint())]
    if wire != LEN:
        raise FormatError(f"{cur.what}: integer field with wire type {wire} at offset {cur.pos}")
    count = length(cur, end)  # read first: the run starts after its length prefix
    stop = cur.pos + count
    values: list[int] = []
    while cur.pos < stop:
        if len(values) >= limit:
            cur.skip(stop - cur.pos)
            break
        values.append(signed64(cur.varint()))
    if cur.pos != stop:
        raise FormatError(f"{cur.what}: packed integers overrun their field (offset {cur.pos})")
    return values


def signed64(value: int) -> int:
    """Reinterpret a varint as a two's-complement int64."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def expect(cur: Cursor, wire: int, want: int, what: str) -> None:
    """Raise FormatError when a known field has the wrong wire type."""
    if wire != want:
        raise FormatError(f"{cur.what}: {what} has wire type {wire}, expected {want} (offset {cur.pos})")
