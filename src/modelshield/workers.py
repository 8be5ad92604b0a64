"""Parallel scanning in worker processes: a crash or hang in one file is isolated and reported.

Workers receive small batches of top-level files and answer with the whole batch's results in
one message (thousands of per-file messages cost the parent more CPU than the scan itself on
folders of small files). Each worker has up to two batches in flight, so it starts the next one
without waiting for the parent to read its last answer. Which file a worker is on, and since when,
sits in a small shared-memory slot per worker that the worker writes before each file and the
parent reads only when needed:
when a worker dies (segfault, OOM kill) or its current file runs past the per-file timeout, the
parent kills it, records a ``SCAN-CRASH`` coverage finding for that file, puts every other file
of its batch back in the queue and starts a fresh worker; the other files are unaffected.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from modelshield.formats.interface import Blob, ScanContext
from modelshield.sources.local import file_blob
from modelshield.types import Artifact

if TYPE_CHECKING:
    from modelshield.scan import ScanObserver, ScanOptions

#: Files per batch at most; batches shrink near the end of the queue so both workers stay busy.
MAX_BATCH = 32
#: Batches sent to a worker before its first answer (the next one waits in the pipe).
IN_FLIGHT = 2
#: Shared slot of a worker: [index of the file being scanned (-1: none), time.monotonic() it started].
_IDLE = -1.0


def _worker_main(conn: Connection, options: ScanOptions, slot: Any) -> None:
    import gc

    from modelshield.scan import scan_file

    # Objects inherited from the parent are never garbage here; keeping the collector off them
    # also keeps its bookkeeping from touching (and so copying) every page shared with the parent.
    gc.freeze()
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        results = []
        for index, path, size in batch:
            slot[1] = time.monotonic()
            slot[0] = float(index)
            results.append((index, scan_file(file_blob(path, size), options)))
        slot[1] = time.monotonic()  # idle from now: a queued batch is timed from here
        slot[0] = _IDLE
        conn.send(results)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    #: [current file index or -1, when it started] shared with the worker process
    slot: Any
    #: files sent and not yet answered (every batch in flight)
    batch: dict[int, Blob] = field(default_factory=dict)
    #: batches sent and not yet answered
    in_flight: int = 0
    #: when the last batch was sent (a worker between files is timed from here or from its last answer)
    sent: float = 0.0


def _crash_artifact(blob: Blob, options: ScanOptions, reason: str) -> list[Artifact]:
    ctx = ScanContext(blob, options.limits)
    finding = ctx.finding("SCAN-CRASH", reason, evidence=f"file of {blob.size} bytes")
    return [Artifact(blob.path, None, "unscanned", blob.size, None, (finding,))]


class _Pool:
    """The parent side: dispatch batches, collect results, replace failed workers."""

    def __init__(self, blobs: list[Blob], options: ScanOptions, observer: ScanObserver | None) -> None:
        self.mp = multiprocessing.get_context("fork")
        self.options = options
        self.observer = observer
        self.timeout = options.timeout_s if options.timeout_s is not None else options.limits.time_per_file_s
        self.pending: deque[tuple[int, Blob]] = deque(enumerate(blobs))
        self.results: dict[int, list[Artifact]] = {}
        self.workers = [self._spawn() for _ in range(max(1, min(options.jobs, len(blobs))))]

    def _spawn(self) -> _Worker:
        parent, child = self.mp.Pipe()
        slot = self.mp.Array("d", [_IDLE, 0.0], lock=False)
        proc = self.mp.Process(target=_worker_main, args=(child, self.options, slot), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent, slot)

    def _dispatch(self, worker: _Worker) -> None:
        size = max(1, min(MAX_BATCH, len(self.pending) // (2 * IN_FLIGHT * len(self.workers))))
        batch = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
        worker.batch.update(batch)
        worker.in_flight += 1
        worker.sent = time.monotonic()
        if self.observer:
            for _, blob in batch:
                self.observer.file_started(blob)
        worker.conn.send([(index, blob.path, blob.size) for index, blob in batch])

    def _finish(self, index: int, blob: Blob, artifacts: list[Artifact]) -> None:
        self.results[index] = artifacts
        if self.observer:
            self.observer.file_done(blob, artifacts)

    def _current(self, worker: _Worker) -> tuple[int | None, float]:
        """The file the worker is on (None before the first one) and since when."""
        index = int(worker.slot[0])
        if index < 0 or index not in worker.batch:
            return None, max(worker.sent, worker.slot[1])
        return index, worker.slot[1]

    def _retire(self, worker: _Worker, reason: str) -> None:
        index, _ = self._current(worker)
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        if index is None:  # not on a file (died between files): the first unanswered one is blamed
            index = min(worker.batch)
        blob = worker.batch.pop(index)
        self._finish(index, blob, _crash_artifact(blob, self.options, reason))
        self.pending.extendleft(sorted(worker.batch.items(), reverse=True))  # the rest is scanned again
        worker.batch = {}
        worker.in_flight = 0
        self.workers[self.workers.index(worker)] = self._spawn()

    def _collect(self, worker: _Worker) -> None:
        try:
            answers = worker.conn.recv()
        except (EOFError, OSError):
            code = worker.process.exitcode
            if code is None:
                worker.process.join(1)
                code = worker.process.exitcode
            self._retire(worker, f"scanner worker died while scanning this file (exit code {code})")
            return
        worker.in_flight -= 1
        for index, artifacts in answers:
            self._finish(index, worker.batch.pop(index), artifacts)

    def run(self) -> dict[int, list[Artifact]]:
        while self.pending or any(w.batch for w in self.workers):
            for worker in self.workers:
                while worker.in_flight < IN_FLIGHT and self.pending:
                    self._dispatch(worker)
            busy = [w for w in self.workers if w.batch]
            next_deadline = min(self._current(w)[1] + self.timeout for w in busy)
            ready = wait([w.conn for w in busy], timeout=max(0.0, next_deadline - time.monotonic()))
            for worker in busy:
                if worker.conn in ready:
                    self._collect(worker)
                elif time.monotonic() >= self._current(worker)[1] + self.timeout:
                    self._retire(worker, f"scanning this file took longer than the timeout of {self.timeout:g} s")
        return self.results

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
            worker.process.join(1)
            if worker.process.is_alive():
                worker.process.kill()


def run_isolated(
    blobs: list[Blob], options: ScanOptions, observer: ScanObserver | None
) -> Iterator[tuple[Blob, list[Artifact]]]:
    """Scan ``blobs`` in ``options.jobs`` worker processes; yield results in input order."""
    if not blobs:
        return
    pool = _Pool(blobs, options, observer)
    try:
        results = pool.run()
    finally:
        pool.close()
    for index, blob in enumerate(blobs):
        yield blob, results[index]
