"""What a Ray worker runs for one listed file: fingerprint it, or scan it exactly as ``--jobs`` does.

Both functions are plain Python (the engine wraps them with ``ray.remote``), take and return plain
data, and never raise for a bad file: a fetch error, a file that changed since it was listed, a
timeout or running out of memory come back as a status the driver turns into a coverage finding.
The scan is :func:`modelshield.scan.scan_file`, the function the local worker pool runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from modelshield.fleet.fetch import INLINE_HASH_MAX, Entry, FetchError, Fingerprint, blob_of, fingerprint, stat_entry
from modelshield.fleet.fetch import sha256_of as _sha256_of

#: Test hook, set only by the fleet tests: ``SUBSTRING:SECONDS:DIR`` makes the task for a file
#: whose name contains SUBSTRING write ``DIR/<name>.<pid>.pid`` and sleep SECONDS before scanning, so a
#: test can kill the worker mid-task.
HOLD_ENV = "MODELSHIELD_FLEET_TEST_HOLD"
#: Seconds past the per-file timeout before the task's own alarm stops the scan.
ALARM_GRACE_S = 5.0


class _TaskTimeout(Exception):  # noqa: N818 - internal signal, never escapes the task
    pass


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Interrupt the scan after ``seconds`` (main thread only: where Ray runs a task)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _fire(_signum: int, _frame: object) -> None:
        raise _TaskTimeout

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hold(entry: Entry) -> None:
    spec = os.environ.get(HOLD_ENV, "")
    if not spec:
        return
    substring, seconds, folder = spec.split(":", 2)
    name = entry.url.rsplit("/", 1)[-1]
    if substring and substring in name:
        with open(os.path.join(folder, f"{name}.{os.getpid()}.pid"), "w", encoding="ascii") as marker:
            marker.write(str(os.getpid()))
        time.sleep(float(seconds))


def _fp(fp: Fingerprint) -> dict[str, Any]:
    return {"size": fp.size, "stamp": fp.stamp, "sha256": fp.sha256}


def fingerprint_file(entry: Entry) -> dict[str, Any]:
    """``{"status": "ok", "fingerprint": ...}`` or ``{"status": "failed", "message", "hint"}``."""
    try:
        return {"status": "ok", "fingerprint": _fp(fingerprint(entry))}
    except FetchError as exc:
        return {"status": "failed", "message": exc.message, "hint": exc.hint}


def _changed(entry: Entry, expected: Fingerprint, when: str) -> dict[str, Any] | None:
    try:
        size, stamp = stat_entry(entry)
    except FetchError as exc:
        return {"status": "failed", "message": exc.message, "hint": exc.hint}
    if (size, stamp) != (expected.size, expected.stamp):
        return {
            "status": "changed",
            "message": f"{entry.url}: changed {when} (listed: {expected.size} bytes, {expected.stamp}; "
            f"now: {size} bytes, {stamp})",
        }
    return None


def scan_listed_file(entry: Entry, expected: Fingerprint, options: Any) -> dict[str, Any]:
    """Scan one file whose bytes must still be ``expected``; the artifacts as JSON text.

    ``{"status": "ok", "result": JSON}``, ``changed`` (size, stamp or SHA-256 differ from the
    listing, before or after the scan), ``failed`` (fetch error) or ``crashed`` (timeout, memory).
    """
    from modelshield.fleet.codec import dumps
    from modelshield.scan import scan_file

    _hold(entry)
    problem = _changed(entry, expected, "between listing and scanning")
    if problem is not None:
        return problem
    budget = options.timeout_s if options.timeout_s is not None else options.limits.time_per_file_s
    started = time.monotonic()
    try:
        with _alarm(budget + ALARM_GRACE_S):
            artifacts = scan_file(blob_of(entry, expected.size), options)
    except _TaskTimeout:
        return {"status": "crashed", "message": f"scanning this file took longer than the timeout of {budget:g} s"}
    except MemoryError:
        return {"status": "crashed", "message": "the scanner ran out of memory on this file (a bomb?)"}
    problem = _changed(entry, expected, "while it was being scanned")
    if problem is None and expected.size <= INLINE_HASH_MAX:
        try:  # cheap for small files: the bytes scanned are the bytes listed (larger: size and stamp)
            now = _sha256_of(entry)
        except FetchError as exc:
            return {"status": "failed", "message": exc.message, "hint": exc.hint}
        if now != expected.sha256:
            problem = {
                "status": "changed",
                "message": f"{entry.url}: content changed between listing and scanning "
                f"(listed sha256 {expected.sha256[:16]}..., now {now[:16]}...)",
            }
    if problem is not None:
        return problem
    return {"status": "ok", "result": dumps(artifacts), "seconds": time.monotonic() - started, "pid": os.getpid()}


def scan_listed_files(files: list[tuple[Entry, Fingerprint]], options: Any) -> list[dict[str, Any]]:
    """:func:`scan_listed_file` for a batch of small files, in order (one task, one answer)."""
    return [scan_listed_file(entry, expected, options) for entry, expected in files]
