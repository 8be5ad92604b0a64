"""The reader surface: what a format reader gets and what it yields.

A :class:`Blob` is a byte source (a file on disk or an archive member; it lives in
:mod:`modelshield.formats.blob`, below every reader, and is re-exported here). A :class:`Reader`
recognises blobs by content (``sniff``) and parses them (``read``) into a stream of items:

* :class:`~modelshield.types.Finding` — something wrong, reported as is;
* :class:`Blob` — a child to scan in turn (archive members, embedded streams, trailing bytes);
* any other object — an intermediate representation handed to the analyzers registered
  for its type (see :mod:`modelshield.analyzers.interface`).

Readers never execute what they read.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from modelshield._record import field, record
from modelshield.errors import LimitExceeded
from modelshield.formats.blob import SNIFF_BYTES, Blob, FileOpener, WindowStream
from modelshield.limits import Limits
from modelshield.rules import get_rule
from modelshield.types import Finding, Location, Severity

if TYPE_CHECKING:
    from modelshield.formats._sniff import Entry, Test

__all__ = [
    "SNIFF_BYTES",
    "Blob",
    "FileOpener",
    "Reader",
    "ScanContext",
    "WindowStream",
    "detect",
    "detection_steps",
    "readers",
    "register_reader",
]


@record(frozen=False)
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
