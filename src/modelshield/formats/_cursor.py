"""A bounded, buffered forward cursor over a seekable stream (shared by binary header parsers).

Reads go through a small window buffer; skips beyond the window only move the position (the next
read seeks), so skipping tensor bytes costs nothing. Every read is checked against the end of the
stream first: a declared length never causes an allocation larger than the bytes that exist.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from modelshield.errors import FormatError

CHUNK = 1 << 16


class Cursor:
    """Forward reader with absolute positions; raises FormatError on reads past ``size``."""

    __slots__ = ("_stream", "size", "pos", "_buf", "_start", "what")

    def __init__(self, stream: BinaryIO, size: int, what: str, start: int = 0) -> None:
        self._stream = stream
        self.size = size
        self.pos = start
        self._buf = b""
        self._start = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes left between the position and the end of the stream."""
        return self.size - self.pos

    def read(self, n: int) -> bytes:
        """Read exactly ``n`` bytes or raise FormatError (truncated)."""
        if n < 0 or n > self.size - self.pos:
            raise FormatError(f"{self.what}: truncated: need {n} bytes at offset {self.pos}, {self.remaining} left")
        offset = self.pos - self._start
        if offset >= 0 and offset + n <= len(self._buf):
            self.pos += n
            return self._buf[offset : offset + n]
        self._stream.seek(self.pos)
        if n >= CHUNK:
            data = self._stream.read(n)
        else:
            self._buf = self._stream.read(CHUNK)
            self._start = self.pos
            data = self._buf[:n]
        if len(data) < n:
            raise FormatError(f"{self.what}: stream ended early at offset {self.pos + len(data)}")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        """Move forward ``n`` bytes without reading them (bounds checked)."""
        if n < 0 or n > self.size - self.pos:
            raise FormatError(f"{self.what}: truncated: cannot skip {n} bytes at offset {self.pos}")
        self.pos += n

    def unpack(self, fmt: struct.Struct) -> tuple[object, ...]:
        """Read and unpack one fixed-size struct."""
        return fmt.unpack(self.read(fmt.size))

    def window(self, n: int) -> tuple[bytes, int]:
        """The buffered bytes from the position on (at least ``min(n, remaining)`` of them) and their index."""
        offset = self.pos - self._start
        if not (offset >= 0 and offset + min(n, self.remaining) <= len(self._buf)):
            self._stream.seek(self.pos)
            self._buf = self._stream.read(max(n, CHUNK))
            self._start = self.pos
            offset = 0
        return self._buf, offset

    def varint(self) -> int:
        """Read a protobuf base-128 varint (at most 10 bytes)."""
        buf, i = self.window(10)
        result = 0
        shift = 0
        end = min(len(buf), i + 10)
        start = i
        while i < end:
            byte = buf[i]
            i += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if i - start > self.remaining:
                    break
                self.pos += i - start
                return result
            shift += 7
        raise FormatError(f"{self.what}: bad or truncated varint at offset {self.pos}")
