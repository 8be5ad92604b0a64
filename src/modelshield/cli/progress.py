"""Progress on stderr: a rich progress bar when stderr is a terminal and the scan is long."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelshield.formats.interface import Blob
from modelshield.types import Artifact

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SHOW_AFTER_S = 0.5


class RichProgress:
    """Shows a bar once the scan has run for SHOW_AFTER_S seconds (short scans stay quiet)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total = 0
        self._done = 0
        self._bytes = 0
        self._t0 = time.monotonic()

    def files_found(self, blobs: Sequence[Blob]) -> None:
        """Remember the totals."""
        self._total = len(blobs)
        self._bytes = sum(max(0, b.size) for b in blobs)
        self._t0 = time.monotonic()

    def file_started(self, blob: Blob) -> None:
        """Start the bar lazily and show the current file."""
        if self._progress is None and time.monotonic() - self._t0 > SHOW_AFTER_S:
            self._start()
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=blob.name[:40])

    def file_done(self, blob: Blob, artifacts: Sequence[Artifact]) -> None:
        """Advance the bar."""
        self._done += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._done)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]scanning[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("", total=self._total, completed=self._done)

    def close(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def make_observer(enabled: bool) -> Iterator[RichProgress | None]:
    """A progress observer when enabled and stderr is a terminal, else None."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    observer = RichProgress()
    try:
        yield observer
    finally:
        observer.close()
