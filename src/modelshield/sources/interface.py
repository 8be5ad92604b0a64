"""WHERE bytes come from: a source turns a user's target into files to scan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from modelshield.formats.interface import Blob


class Source(Protocol):
    """Turns a target string into blobs (top-level files). Raise SourceError if it cannot."""

    def accepts(self, target: str) -> bool:
        """True when this source understands ``target``."""

    def blobs(self, target: str) -> Iterator[Blob]:
        """Yield the files of ``target`` as blobs."""
