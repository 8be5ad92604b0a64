"""The reader surface: what a format reader gets and what it yields.

A :class:`Blob` is a byte source (a file on disk or an archive member). A :class:`Reader`
recognises blobs by content (``sniff``) and parses them (``read``) into a stream of items:

* :class:`~modelshield.types.Finding` — something wrong, reported as is;
* :class:`Blob` — a child to scan in turn (archive members, embedded streams, trailing bytes);
* any other object — an intermediate representation handed to the analyzers registered
  for its type (see :mod:`modelshield.analyzers.interface`).

Readers never execute what they read.
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from modelshield.errors import LimitExceeded
from modelshield.limits import Limits
from modelshield.rules import get_rule
from modelshield.types import Finding, Location, Severity

SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True)
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


@dataclass(slots=True)
class ScanContext:
    """Per-blob context handed to readers and analyzers: limits, deadline, location helpers."""

    blob: Blob
    limits: Limits
    deadline: float = field(default_factory=lambda: float("inf"))
    format: str = ""

    def location(
        self, offset: int | None = None, detail: str | None = None, opcode_index: int | None = None
    ) -> Location:
        """A location inside the current blob."""
        return Location(self.blob.path, self.blob.member, offset, opcode_index, detail)

    def finding(
        self,
        rule_id: str,
        message: str,
        *,
        severity: Severity | None = None,
        evidence: str = "",
        offset: int | None = None,
        detail: str | None = None,
        opcode_index: int | None = None,
        references: tuple[str, ...] = (),
        remediation: str | None = None,
    ) -> Finding:
        """Build a finding of a declared rule at a location in the current blob."""
        rule = get_rule(rule_id)
        return Finding(
            rule_id=rule_id,
            severity=rule.severity if severity is None else severity,
            category=rule.category,
            message=message,
            location=self.location(offset, detail, opcode_index),
            evidence=evidence[:4000],
            references=tuple(dict.fromkeys((*rule.references, *references))),
            remediation=rule.remediation if remediation is None else remediation,
        )

    def check_time(self) -> None:
        """Raise LimitExceeded when the per-file time budget is spent."""
        if time.monotonic() > self.deadline:
            raise LimitExceeded("time_per_file_s", self.limits.time_per_file_s, "time budget for this file spent")


class Reader(ABC):
    """A format reader. Subclasses register themselves with :func:`register_reader`."""

    #: Format name shown in reports (e.g. ``pickle``, ``pytorch-zip``).
    name: ClassVar[str]
    #: Readers with higher priority sniff first (specific formats before generic ones).
    priority: ClassVar[int] = 50

    @abstractmethod
    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Return True when ``head`` (the first bytes of ``blob``) is this format."""

    @abstractmethod
    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse ``blob``; yield findings, child blobs, and IR objects for the analyzers.

        Raise :class:`~modelshield.errors.FormatError` (or LimitExceeded) for malformed input;
        the scanner turns it into a coverage finding. Findings yielded before stay reported.
        """


_READERS: list[Reader] = []


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add a reader to the registry (kept sorted by priority)."""
    _READERS.append(cls())
    _READERS.sort(key=lambda r: -r.priority)
    return cls


def readers() -> list[Reader]:
    """Registered readers, highest priority first (built-ins loaded on first call)."""
    from modelshield.formats import load_builtin_readers

    load_builtin_readers()
    return list(_READERS)


def detect(blob: Blob, head: bytes | None = None) -> Reader | None:
    """The first reader whose ``sniff`` accepts the blob's content, or None."""
    if head is None:
        head = blob.head()
    for reader in readers():
        if reader.sniff(head, blob):
            return reader
    return None
