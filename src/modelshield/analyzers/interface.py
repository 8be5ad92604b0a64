"""The analyzer surface: turn a reader's intermediate representation into findings.

An analyzer declares the IR types it handles; the scanner hands it every IR object of those
types a reader yields. Analyzers never execute what they analyse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from modelshield.formats.interface import ScanContext
from modelshield.types import Finding


class Analyzer(ABC):
    """Judges one kind of IR. Subclasses register themselves with :func:`register_analyzer`."""

    #: Short name for reports and logs.
    name: ClassVar[str]
    #: IR types this analyzer handles.
    handles: ClassVar[tuple[type, ...]]

    @abstractmethod
    def analyze(self, ir: object, ctx: ScanContext) -> Iterator[Finding]:
        """Yield findings about ``ir`` (an instance of one of ``handles``)."""


_ANALYZERS: list[Analyzer] = []


def register_analyzer(cls: type[Analyzer]) -> type[Analyzer]:
    """Class decorator: add an analyzer to the registry."""
    _ANALYZERS.append(cls())
    _BY_TYPE.clear()
    return cls


#: IR type -> the analyzers that handle it (filled on first sight of each type).
_BY_TYPE: dict[type, list[Analyzer]] = {}


def analyzers_for(ir: object) -> list[Analyzer]:
    """Registered analyzers that handle the type of ``ir``.

    The built-in analyzer modules for an IR type are imported the first time an object of that
    type is seen (``modelshield.analyzers.CATALOG``), so a scan of safetensors files never loads
    the pickle analyzer.
    """
    kind = type(ir)
    found = _BY_TYPE.get(kind)
    if found is None:
        from modelshield.analyzers import load_analyzers_for

        load_analyzers_for(kind)
        found = [a for a in _ANALYZERS if isinstance(ir, a.handles)]
        _BY_TYPE[kind] = found
    return found


def forget_types() -> None:
    """Drop the per-type cache (after an analyzer is registered at run time, e.g. in tests)."""
    _BY_TYPE.clear()
