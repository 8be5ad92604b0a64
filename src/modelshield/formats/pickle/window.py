"""A buffered, seekable read window over a binary stream (the VM's only way to read bytes).

The VM reads opcodes from ``buf`` at index ``pos``; ``base`` is the absolute stream offset of
``buf[0]``. :meth:`ByteWindow.fill` guarantees a number of bytes ahead (or fewer at EOF),
:meth:`ByteWindow.skip_to` seeks past a payload without reading it, so memory stays flat however
large the payloads are. Reads start small after a seek and grow while reading sequentially.
"""

from __future__ import annotations

import io
from typing import BinaryIO

CHUNK = 1 << 18
#: The first read at the start and after each seek; reads then grow 4x per refill up to the chunk.
#: A skipped payload is mostly followed by a few opcodes and the next payload (arrays of a NumPy
#: pickle), so a full chunk read there would mostly be bytes about to be skipped.
FIRST_READ = 1 << 14


class Truncated(Exception):
    """Internal: the stream ended before an opcode or its argument was complete."""

    def __init__(self, offset: int, what: str) -> None:
        super().__init__(f"pickle data truncated at byte {offset} ({what})")
        self.offset = offset


class ByteWindow:
    """A sliding window of bytes over ``stream`` starting at stream offset ``start``."""

    __slots__ = ("stream", "buf", "pos", "base", "size", "chunk", "next_read")

    def __init__(self, stream: BinaryIO, start: int = 0, chunk: int = CHUNK) -> None:
        self.stream = stream
        self.size = stream.seek(0, io.SEEK_END)
        stream.seek(start)
        self.buf = b""
        self.pos = 0
        self.base = start
        self.chunk = chunk
        self.next_read = min(FIRST_READ, chunk)

    def tell(self) -> int:
        """Absolute offset of the next unread byte."""
        return self.base + self.pos

    def remaining(self) -> int:
        """Bytes left in the stream after the current position."""
        return self.size - self.base - self.pos

    def fill(self, need: int) -> None:
        """Make ``need`` bytes available at ``buf[pos:]`` (fewer only at end of stream)."""
        have = len(self.buf) - self.pos
        if have >= need:
            return
        size = self.next_read
        if size < self.chunk:
            self.next_read = min(size * 4, self.chunk)
        more = self.stream.read(max(size, need - have))
        self.base += self.pos
        self.buf = self.buf[self.pos :] + more if have else more
        self.pos = 0

    def skip_to(self, offset: int) -> None:
        """Move to absolute ``offset`` (forward); raise Truncated when it is past the end."""
        if offset > self.size:
            raise Truncated(self.size, f"payload runs {offset - self.size} bytes past the end")
        rel = offset - self.base
        if rel <= len(self.buf):
            self.pos = rel
            return
        self.stream.seek(offset)
        self.next_read = min(FIRST_READ, self.chunk)
        self.buf = b""
        self.base = offset
        self.pos = 0

    def read(self, n: int) -> bytes:
        """Read exactly ``n`` bytes (n small); raise Truncated when the stream ends first."""
        self.fill(n)
        data = self.buf[self.pos : self.pos + n]
        if len(data) < n:
            raise Truncated(self.base + len(self.buf), f"wanted {n} bytes")
        self.pos += n
        return data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes ahead without consuming them."""
        self.fill(n)
        return self.buf[self.pos : self.pos + n]
