"""The byte source every stage scans: :class:`Blob`, and the seekable views it opens.

A blob is a file on disk or an archive member; its ``opener`` returns a fresh seekable binary
stream. This module sits below everything else in :mod:`modelshield.formats` (the reader surface
in :mod:`~modelshield.formats.interface`, the content tests, the container machinery and the
parsers all use it) and imports nothing from modelshield but the ``@record`` decorator.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import BinaryIO

from modelshield._record import record

SNIFF_BYTES = 4096


@record
class Blob:
    """A byte source to scan.

    ``path`` is the file on disk the bytes come from (top level), ``members`` the chain of
    archive members leading to these bytes (empty for the file itself). ``opener`` returns a
    fresh seekable binary stream positioned at 0.
    """

    path: str
    members: tuple[str, ...]
    size: int
    opener: Callable[[], BinaryIO]
    format_hint: str = ""

    @property
    def member(self) -> str | None:
        """The member chain joined with ``!/`` or None for a file on disk."""
        return "!/".join(self.members) if self.members else None

    @property
    def name(self) -> str:
        """Last path component (file name or innermost member name): an extension hint only."""
        last = self.members[-1] if self.members else self.path
        return last.replace("\\", "/").rsplit("/", 1)[-1]

    @property
    def depth(self) -> int:
        """How many archive levels deep this blob is."""
        return len(self.members)

    def open(self) -> BinaryIO:
        """Open a fresh stream over the bytes."""
        return self.opener()

    def head(self, size: int = SNIFF_BYTES) -> bytes:
        """The first ``size`` bytes (for sniffing)."""
        if type(self.opener) is FileOpener:
            return self.opener.head(size)
        with self.open() as stream:
            return stream.read(size)

    def child(self, member: str, data: bytes, format_hint: str = "") -> Blob:
        """A child blob over in-memory bytes (small members, embedded streams)."""
        return Blob(self.path, (*self.members, member), len(data), lambda: io.BytesIO(data), format_hint)

    def child_range(self, member: str, start: int, length: int, format_hint: str = "") -> Blob:
        """A child blob over a byte range of this blob (no copy)."""

        def opener() -> BinaryIO:
            return io.BufferedReader(_range_stream(self.open(), start, length), buffer_size=1 << 16)

        return Blob(self.path, (*self.members, member), length, opener, format_hint)


class FileOpener:
    """The opener of a file on disk; its :meth:`head` reads without a buffered file object.

    Every scanned file is sniffed first; plain ``os`` calls do that in half the time of ``open``.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> BinaryIO:
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes the stream

    def head(self, size: int) -> bytes:
        """Up to ``size`` bytes from the start of the file."""
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            data = os.read(fd, size)
            while data and len(data) < size:  # a short read before the end (not on regular files)
                more = os.read(fd, size - len(data))
                if not more:
                    break
                data += more
            return data
        finally:
            os.close(fd)


class WindowStream(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes served by ``read_at(position, count)``.

    Used for byte ranges of a parent stream and for spooled temporary files: each view keeps
    its own position, so several views of one source never disturb each other.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], size: int, on_close: Callable[[], None] | None = None):
        super().__init__()
        self._read_at = read_at
        self._size = size
        self._on_close = on_close
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._read_at(self._pos, want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


def _range_stream(inner: BinaryIO, start: int, length: int) -> WindowStream:
    """A window ``[start, start+length)`` over another seekable stream (closed with the window)."""

    def read_at(position: int, count: int) -> bytes:
        inner.seek(start + position)
        return inner.read(count)

    return WindowStream(read_at, length, inner.close)
