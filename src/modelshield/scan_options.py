"""How a scan runs (:class:`ScanOptions`) and who watches it (:class:`ScanObserver`).

Shared by the pipeline (:mod:`modelshield.scan`, which re-exports both) and the worker pool
(:mod:`modelshield.workers`), which the pipeline starts; kept apart so the pool need not import
the pipeline back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from modelshield._record import field, record
from modelshield.formats.blob import Blob
from modelshield.limits import Limits
from modelshield.types import Artifact, Severity


class ScanObserver(Protocol):
    """Receives progress events (the CLI attaches a rich progress bar)."""

    def files_found(self, blobs: Sequence[Blob]) -> None:
        """The top-level files are known (before scanning starts)."""

    def file_started(self, blob: Blob) -> None:
        """A top-level file is about to be scanned."""

    def file_done(self, blob: Blob, artifacts: Sequence[Artifact]) -> None:
        """A top-level file is finished, with its artifacts (the file and its members)."""


@record
class ScanOptions:
    """How to scan: limits, fail threshold, hashing, parallelism, where files may come from."""

    limits: Limits = field(default_factory=Limits)
    fail_on: Severity = Severity.MEDIUM
    compute_hashes: bool = False
    jobs: int = 1
    timeout_s: float | None = None
    #: Sources may download what is not on this machine (``scan --online``: a Hub repo not cached).
    online: bool = False
    #: Leave out top-level files that are not models (text, code, scripts, configs; see sources.select).
    only_models: bool = False
