"""Parallel scanning in worker processes: a crash or hang in one file is isolated and reported.

Workers receive small batches of top-level files and answer with the whole batch's results in
one message (thousands of per-file messages cost the parent more CPU than the scan itself on
folders of small files). Each worker has up to two batches in flight, so it starts the next one
without waiting for the parent to read its last answer. Which file a worker is on, and since when,
sits in a small shared-memory slot per worker that the worker writes before each file and the
parent reads only when needed: when a worker dies (segfault, OOM kill) or its current file runs
past the per-file timeout, the parent kills it, records a ``SCAN-CRASH`` coverage finding for that
file, puts every other file of its batch back in the queue and starts a fresh worker; the other
files are unaffected.

Workers are forked children talking over two pipes with length-prefixed pickles: the
:mod:`multiprocessing` package would add ~10 ms of imports to every parallel scan, more than the
whole transport needs.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import mmap
import os
import pickle
import select
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from modelshield.errors import WorkerError
from modelshield.formats.interface import Blob, ScanContext
from modelshield.sources.local import file_blob
from modelshield.types import Artifact

if TYPE_CHECKING:
    from modelshield.scan_options import ScanObserver, ScanOptions

#: What a worker runs on each file: :func:`modelshield.scan.scan_file`, handed over by the pipeline
#: (the pool sits below the pipeline and never imports it).
ScanFile = Callable[[Blob, "ScanOptions"], list[Artifact]]

#: Files per batch at most; batches shrink near the end of the queue so both workers stay busy.
MAX_BATCH = 32
#: Batches sent to a worker before its first answer (the next one waits in the pipe).
IN_FLIGHT = 2
_IDLE = -1.0
#: Message framing: the pickle's length, then the pickle.
_HEADER = struct.Struct("<Q")
#: Seconds a worker gets to exit after being told to stop, before it is killed.
_STOP_GRACE_S = 1.0
#: Workers in a row that end before their first file: the workers are broken, not a file.
MAX_STARTUP_FAILURES = 3


class Slot:
    """What a worker is doing, in memory shared with the parent: [file index (-1: none), since when].

    Each value is one aligned 8-byte store or load (a ``memoryview`` of doubles), so the parent
    never sees half a value. (``struct.pack_into`` zeroes its target before writing it: a parent
    reading in between saw a file started at time 0, and timed it out 300 s early.) The worker
    writes the time first, then the index.
    """

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 16)  # anonymous and shared with the child after fork
        self._values = memoryview(self._map).cast("d")
        self._values[0] = _IDLE

    def set(self, index: float, since: float) -> None:
        """Record the file being scanned (or ``_IDLE``) and since when (in the worker)."""
        self._values[1] = since
        self._values[0] = index

    def get(self) -> tuple[int, float]:
        """The file index (-1: none) and since when (in the parent); 0.0: never set."""
        return int(self._values[0]), self._values[1]

    def close(self) -> None:
        """Unmap the shared memory."""
        self._values.release()
        self._map.close()


def _send(fd: int, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, unpickler: type[pickle.Unpickler] = pickle.Unpickler) -> object:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return unpickler(io.BytesIO(_read_exact(fd, size))).load()


#: Modules whose classes a worker's answer may name: the scan result records and their enums.
_ANSWER_MODULES = frozenset({"modelshield.types", "modelshield.advisories.requirements"})


class AnswerUnpickler(pickle.Unpickler):
    """Reads a worker's answer, naming nothing but the scan result classes.

    Workers parse hostile files. Should one ever be subverted, its answer must not become code in
    the parent: any other global (a function, a class elsewhere) is refused, and the parent treats
    the answer like a crash of that worker.
    """

    def find_class(self, module: str, name: str) -> type:
        if module in _ANSWER_MODULES and not name.startswith("_"):
            found = getattr(sys.modules.get(module) or importlib.import_module(module), name, None)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"a worker's answer names {module}.{name}, which is not a scan result class")


def _warm_up() -> None:
    """Import what scanning the common model files needs (zip, pickle, facts) before the first batch.

    Workers start before the parent lists the targets' files, so this runs while it does.
    """
    import modelshield.advisories.requirements
    import modelshield.formats.pickle.reader
    import modelshield.formats.zipfmt.reader  # noqa: F401
    from modelshield.analyzers import load_analyzers_for
    from modelshield.formats.interface import detection_steps
    from modelshield.formats.pickle.values import PickleStream

    detection_steps()
    load_analyzers_for(PickleStream)


def _worker_main(inbox: int, outbox: int, options: ScanOptions, slot: Slot, scan_file: ScanFile) -> None:
    import gc

    _warm_up()
    # Objects inherited from the parent are never garbage here; keeping the collector off them
    # also keeps its bookkeeping from touching (and so copying) every page shared with the parent.
    gc.freeze()
    while True:
        try:
            batch = _recv(inbox)
        except EOFError:
            return
        if batch is None:
            return
        results = []
        for index, path, size in cast("list[tuple[int, str, int]]", batch):
            slot.set(float(index), time.monotonic())
            results.append((index, scan_file(file_blob(path, size), options)))
        slot.set(_IDLE, time.monotonic())  # idle from now: a queued batch is timed from here
        _send(outbox, results)


class _Worker:
    """The parent's handle on one forked worker."""

    def __init__(self, pid: int, inbox: int, outbox: int, slot: Slot) -> None:
        self.pid = pid
        #: the parent writes batches here / reads answers there
        self.inbox = inbox
        self.outbox = outbox
        #: [current file index or -1, since when] shared with the worker process
        self.slot = slot
        #: files sent and not yet answered (every batch in flight)
        self.batch: dict[int, Blob] = {}
        #: batches sent and not yet answered
        self.in_flight = 0
        #: when the last batch was sent (a worker between files is timed from here or from its last answer)
        self.sent = 0.0
        self.exitcode: int | None = None

    def reap(self, block: bool) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal)."""
        if self.exitcode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.exitcode = -1
            else:
                if pid:
                    self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode

    def kill(self) -> None:
        if self.reap(block=False) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.reap(block=True)

    def close_fds(self) -> None:
        for fd in (self.inbox, self.outbox):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.slot.close()


def _crash_artifact(blob: Blob, options: ScanOptions, reason: str) -> list[Artifact]:
    ctx = ScanContext(blob, options.limits)
    finding = ctx.finding("SCAN-CRASH", reason, evidence=f"file of {blob.size} bytes")
    return [Artifact(blob.path, None, "unscanned", blob.size, None, (finding,))]


class Pool:
    """The parent side: start workers, dispatch batches, collect results, replace failed workers.

    Workers start right away (up to the number of CPUs), so they import the scanning code while
    the caller lists the files to scan; :meth:`run` then scans them.
    """

    def __init__(self, options: ScanOptions, observer: ScanObserver | None = None, *, scan_file: ScanFile) -> None:
        self.options = options
        self.observer = observer
        self.scan_file = scan_file
        self.timeout = options.timeout_s if options.timeout_s is not None else options.limits.time_per_file_s
        self.pending: deque[tuple[int, Blob]] = deque()
        self.results: dict[int, list[Artifact]] = {}
        self.workers: list[_Worker] = []
        #: the parent's ends of every live worker's pipes (a new worker closes its copies)
        self.parent_fds: set[int] = set()
        #: workers in a row that ended before their first file
        self.startup_failures = 0
        for _ in range(max(1, min(options.jobs, os.cpu_count() or 1))):
            self.workers.append(self._spawn())

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        from_parent, to_child = os.pipe()  # batches: the parent writes, the worker reads
        from_child, to_parent = os.pipe()  # answers: the worker writes, the parent reads
        slot = Slot()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 0
            try:
                for fd in (to_child, from_child, *self.parent_fds):
                    os.close(fd)  # only the parent may hold these ends (EOF must reach the other workers)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
                _worker_main(from_parent, to_parent, self.options, slot, self.scan_file)
            except BaseException:  # noqa: BLE001 - a worker must exit, whatever happened
                code = 1
                with contextlib.suppress(BaseException):
                    import traceback

                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(from_parent)
        os.close(to_parent)
        self.parent_fds |= {to_child, from_child}
        return _Worker(pid, to_child, from_child, slot)

    def _dispatch(self, worker: _Worker) -> None:
        size = max(1, min(MAX_BATCH, len(self.pending) // (2 * IN_FLIGHT * len(self.workers))))
        batch = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
        worker.batch.update(batch)
        worker.in_flight += 1
        worker.sent = time.monotonic()
        if self.observer:
            for _, blob in batch:
                self.observer.file_started(blob)
        with contextlib.suppress(OSError):  # a dead worker is noticed when its answers end; its files go back
            _send(worker.inbox, [(index, blob.path, blob.size) for index, blob in batch])

    def _finish(self, index: int, blob: Blob, artifacts: list[Artifact]) -> None:
        self.results[index] = artifacts
        if self.observer:
            self.observer.file_done(blob, artifacts)

    def _current(self, worker: _Worker) -> tuple[int | None, float]:
        """The file the worker is on (None between files) and since when."""
        index, since = worker.slot.get()
        if index < 0 or index not in worker.batch:
            return None, max(worker.sent, since)
        return index, since

    def _retire(self, worker: _Worker, reason: str) -> None:
        index, _ = self._current(worker)
        began = worker.slot.get()[1] > 0  # it started a file at least once
        worker.kill()
        self._close(worker)
        if index is None and not began:  # ended before its first file: no file is to blame
            self._startup_failed(worker, reason)
            return
        self.startup_failures = 0
        if index is None:  # not on a file (died between files): the first unanswered one is blamed
            index = min(worker.batch)
        blob = worker.batch.pop(index)
        self._finish(index, blob, _crash_artifact(blob, self.options, reason))
        self.pending.extendleft(sorted(worker.batch.items(), reverse=True))  # the rest is scanned again
        worker.batch = {}
        worker.in_flight = 0
        self.workers[self.workers.index(worker)] = self._spawn()

    def _startup_failed(self, worker: _Worker, reason: str) -> None:
        self.startup_failures += 1
        if self.startup_failures >= MAX_STARTUP_FAILURES:
            raise WorkerError(
                f"scanner workers end before scanning anything ({self.startup_failures} in a row; last: {reason})",
                hint="run with --jobs 1 and no --timeout to scan in one process and see the error",
            )
        self.pending.extendleft(sorted(worker.batch.items(), reverse=True))  # every file goes back
        worker.batch = {}
        worker.in_flight = 0
        self.workers[self.workers.index(worker)] = self._spawn()

    def _collect(self, worker: _Worker) -> None:
        try:
            answers = _recv(worker.outbox, AnswerUnpickler)
        except pickle.UnpicklingError as exc:
            self._retire(worker, f"scanner worker sent an answer that is not a scan result ({exc})")
            return
        except (EOFError, OSError):
            code = worker.reap(block=False)
            if code is None:
                deadline = time.monotonic() + 1.0
                while code is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                    code = worker.reap(block=False)
            self._retire(worker, f"scanner worker died while scanning this file (exit code {code})")
            return
        worker.in_flight -= 1
        for index, artifacts in cast("list[tuple[int, list[Artifact]]]", answers):
            self._finish(index, worker.batch.pop(index), artifacts)

    def scan(self, blobs: list[Blob]) -> Iterator[tuple[Blob, list[Artifact]]]:
        """Scan ``blobs`` in the workers; yield results in input order."""
        while len(self.workers) < min(self.options.jobs, len(blobs)):
            self.workers.append(self._spawn())
        self.pending.extend(enumerate(blobs))
        self.results = {}
        results = self.run()
        for index, blob in enumerate(blobs):
            yield blob, results[index]

    def run(self) -> dict[int, list[Artifact]]:
        """Scan every pending file; the results by file index."""
        while self.pending or any(w.batch for w in self.workers):
            for worker in self.workers:
                while worker.in_flight < IN_FLIGHT and self.pending:
                    self._dispatch(worker)
            busy = [w for w in self.workers if w.batch]
            next_deadline = min(self._current(w)[1] + self.timeout for w in busy)
            poller = select.poll()
            for worker in busy:
                poller.register(worker.outbox, select.POLLIN)
            wait_ms = max(0.0, next_deadline - time.monotonic()) * 1000
            ready = {fd for fd, _event in poller.poll(wait_ms)}
            for worker in busy:
                if worker.outbox in ready:
                    self._collect(worker)
                elif time.monotonic() >= self._current(worker)[1] + self.timeout:
                    self._retire(worker, f"scanning this file took longer than the timeout of {self.timeout:g} s")
        return self.results

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                _send(worker.inbox, None)
        deadline = time.monotonic() + _STOP_GRACE_S
        for worker in self.workers:
            while worker.reap(block=False) is None and time.monotonic() < deadline:
                time.sleep(0.001)
            worker.kill()
            self._close(worker)

    def _close(self, worker: _Worker) -> None:
        self.parent_fds -= {worker.inbox, worker.outbox}
        worker.close_fds()


def run_isolated(
    blobs: list[Blob], options: ScanOptions, observer: ScanObserver | None, *, scan_file: ScanFile
) -> Iterator[tuple[Blob, list[Artifact]]]:
    """Scan ``blobs`` with ``scan_file`` in ``options.jobs`` worker processes; yield results in input order."""
    if not blobs:
        return
    with Pool(options, observer, scan_file=scan_file) as pool:
        yield from pool.scan(blobs)
