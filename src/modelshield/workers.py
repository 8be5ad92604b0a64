"""Parallel scanning in worker processes: a crash or hang in one file is isolated and reported.

Each worker scans one top-level file at a time. When a worker dies (segfault, OOM kill) or runs
past the per-file timeout, the parent kills it, records a ``SCAN-CRASH`` coverage finding for
that file and starts a fresh worker; the other files are unaffected.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from modelshield.formats.interface import Blob, ScanContext
from modelshield.sources.local import file_blob
from modelshield.types import Artifact

if TYPE_CHECKING:
    from modelshield.scan import ScanObserver, ScanOptions


def _worker_main(conn: Connection, options: ScanOptions) -> None:
    from modelshield.scan import scan_file

    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        index, path, size = task
        conn.send((index, scan_file(file_blob(path, size), options)))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    task: tuple[int, Blob] | None = None
    started: float = 0.0


def _crash_artifact(blob: Blob, options: ScanOptions, reason: str) -> list[Artifact]:
    ctx = ScanContext(blob, options.limits)
    finding = ctx.finding("SCAN-CRASH", reason, evidence=f"file of {blob.size} bytes")
    return [Artifact(blob.path, None, "unscanned", blob.size, None, (finding,))]


def run_isolated(
    blobs: list[Blob], options: ScanOptions, observer: ScanObserver | None
) -> Iterator[tuple[Blob, list[Artifact]]]:
    """Scan ``blobs`` in ``options.jobs`` worker processes; yield results in input order."""
    mp = multiprocessing.get_context("fork")
    timeout = options.timeout_s if options.timeout_s is not None else options.limits.time_per_file_s
    pending: deque[tuple[int, Blob]] = deque(enumerate(blobs))
    results: dict[int, list[Artifact]] = {}
    workers: list[_Worker] = []

    def spawn() -> _Worker:
        parent, child = mp.Pipe()
        proc = mp.Process(target=_worker_main, args=(child, options), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def finish(worker: _Worker, artifacts: list[Artifact]) -> None:
        assert worker.task is not None
        index, blob = worker.task
        results[index] = artifacts
        worker.task = None
        if observer:
            observer.file_done(blob, artifacts)

    def retire(worker: _Worker, reason: str) -> None:
        assert worker.task is not None
        finish(worker, _crash_artifact(worker.task[1], options, reason))
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        workers[workers.index(worker)] = spawn()

    try:
        workers.extend(spawn() for _ in range(max(1, min(options.jobs, len(blobs)))))
        while pending or any(w.task for w in workers):
            for worker in workers:
                if worker.task is None and pending:
                    index, blob = pending.popleft()
                    worker.task = (index, blob)
                    worker.started = time.monotonic()
                    if observer:
                        observer.file_started(blob)
                    worker.conn.send((index, blob.path, blob.size))
            busy = [w for w in workers if w.task]
            next_deadline = min(w.started + timeout for w in busy)
            ready = wait([w.conn for w in busy], timeout=max(0.0, next_deadline - time.monotonic()))
            for worker in list(busy):
                if worker.conn in ready:
                    try:
                        _, artifacts = worker.conn.recv()
                    except (EOFError, OSError):
                        code = worker.process.exitcode
                        retire(worker, f"scanner worker died while scanning this file (exit code {code})")
                        continue
                    finish(worker, artifacts)
                elif time.monotonic() >= worker.started + timeout:
                    retire(worker, f"scanning this file took longer than the timeout of {timeout:g} s")
    finally:
        for worker in workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
            worker.process.join(1)
            if worker.process.is_alive():
                worker.process.kill()
    for index, blob in enumerate(blobs):
        yield blob, results[index]
