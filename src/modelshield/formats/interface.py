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

import importlib
import io
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from modelshield._record import record
from modelshield.errors import LimitExceeded
from modelshield.limits import Limits
from modelshield.rules import get_rule
from modelshield.types import Finding, Location, Severity

if TYPE_CHECKING:
    from modelshield.formats._sniff import Entry, Test

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


@dataclass(slots=True)
class ScanContext:
    """Per-blob context handed to readers and analyzers: limits, deadline, location helpers."""

    blob: Blob
    limits: Limits
    deadline: float = field(default_factory=lambda: float("inf"))
    format: str = ""
    #: What a reader learned about the frameworks the file needs (``advisories.requirements.ModelFacts``),
    #: so the vulnerability stage need not read the file again; None when the reader had nothing.
    facts: object = None

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
    """A format reader. Subclasses register themselves with :func:`register_reader`.

    Built-in readers are also listed in :data:`modelshield.formats._sniff.CATALOG`, and their
    ``sniff`` calls the content test kept there, so detection imports a reader module only when
    the bytes are for it. Readers registered outside the catalog (plug-ins) are asked directly.
    """

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
_BY_CLASS: dict[tuple[str, str], Reader] = {}
#: Detection steps, rebuilt when readers register: (registered count, steps). A step is a catalog
#: entry (its module imported on demand) or a reader registered outside the catalog (plug-ins).
_plan: tuple[int, tuple[Entry | Reader, ...]] | None = None
#: The steps of ``_plan`` paired with their content tests (see :func:`detection_steps`).
_tested: tuple[tuple[Entry | Reader, ...], tuple[tuple[Entry | Reader, Test | None], ...]] | None = None


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add a reader to the registry."""
    reader = cls()
    _READERS.append(reader)
    _BY_CLASS[(cls.__module__, cls.__qualname__)] = reader
    return cls


def _steps() -> tuple[Entry | Reader, ...]:
    """Catalog entries and uncatalogued registered readers by priority; ties: catalog order, then registration."""
    global _plan
    if _plan is None:  # first detection: plug-ins register now (when enabled)
        from modelshield.formats import load_plugins

        load_plugins()
    if _plan is None or _plan[0] != len(_READERS):
        from modelshield.formats._sniff import CATALOG

        catalogued = {(entry.module, entry.reader) for entry in CATALOG}
        steps: list[Entry | Reader] = [*CATALOG, *(r for r in _READERS if _key(r) not in catalogued)]
        steps.sort(key=lambda step: -step.priority)  # stable
        _plan = (len(_READERS), tuple(steps))
    return _plan[1]


def detection_steps() -> tuple[tuple[Entry | Reader, Test | None], ...]:
    """:func:`_steps` with each step's content test (None: ask the reader's ``sniff``), cached.

    Detection runs on every blob; telling catalog entries from readers once here keeps an
    ``isinstance`` check against the Reader ABC (slow) out of that loop.
    """
    global _tested
    steps = _steps()
    if _tested is None or _tested[0] is not steps:
        _tested = (steps, tuple((step, None if isinstance(step, Reader) else step.test) for step in steps))
    return _tested[1]


def _key(reader: Reader) -> tuple[str, str]:
    return type(reader).__module__, type(reader).__qualname__


def _catalogued(entry: Entry) -> Reader:
    """The registered instance of a catalog entry's reader (its module is imported on first use)."""
    reader = _BY_CLASS.get((entry.module, entry.reader))
    if reader is None:
        importlib.import_module(entry.module)
        reader = _BY_CLASS.get((entry.module, entry.reader))
    if reader is None:
        raise RuntimeError(
            f"importing {entry.module} registered no reader {entry.reader}; "
            "fix CATALOG in modelshield/formats/_sniff.py to match the module"
        )
    return reader


def readers() -> list[Reader]:
    """Every registered reader in detection order (imports all built-in reader modules and plug-ins)."""
    from modelshield.formats import load_builtin_readers

    load_builtin_readers()
    return [step if isinstance(step, Reader) else _catalogued(step) for step in _steps()]


def detect(blob: Blob, head: bytes | None = None, *, below: int | None = None) -> Reader | None:
    """The first reader, by priority, that accepts the blob's content, or None.

    Only the modules of readers whose catalogued content test passes are imported (see
    :mod:`modelshield.formats._sniff`). ``below`` skips readers of that priority or higher (a
    reader that handles a blob partly asks who reads the rest).
    """
    if head is None:
        head = blob.head()
    for step, test in detection_steps():
        if below is not None and step.priority >= below:
            continue
        if test is not None:
            if test(head, blob):
                return _catalogued(step)  # type: ignore[arg-type]
        else:
            reader = step if isinstance(step, Reader) else _catalogued(step)
            if reader.sniff(head, blob):
                return reader
    return None
