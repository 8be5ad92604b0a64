"""``modelshield worker``: claim jobs from the database queue and run them, one at a time, until stopped.

A worker holds a job under a lease and keeps it alive from a heartbeat thread. Killed (SIGKILL, a
crash, a lost machine), it simply stops heartbeating: the lease lapses and another worker retries
the job. Stopped with SIGTERM/SIGINT, it abandons the job it holds (back to the queue, the attempt not
counted) and exits. A scan that runs past the job timeout ends the process (the lease lapses, the
job is retried, and after its attempts the model is ``scan_failed``). Between jobs it sends its own
heartbeat (for /healthz), runs the scheduler when it holds the scheduler lock, and delivers webhooks.
A database that goes away is waited for, with backoff; the worker never exits because of it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
import types

from sqlalchemy import delete, select

from modelshield.service import fleet_entries, queue, scheduler, webhooks
from modelshield.service.db import Database, is_unavailable
from modelshield.service.models import Job, Worker, utcnow
from modelshield.service.queue import Claimed
from modelshield.service.scanning import PermanentFailure, mark_scan_failed, run_scan
from modelshield.service.settings import ENV_DATA_DIR, ENV_PARENT_PID, Settings
from modelshield.service.verification import run_verify

log = logging.getLogger("modelshield.service.worker")
POLL_S = 0.5
BEAT_S = 2.0
EXIT_TIMEOUT = 70


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT while a job runs (not an Exception: nothing swallows it)."""


class _JobHeartbeat(threading.Thread):
    """Extends the lease of the running job; ends the process when the job overruns its timeout."""

    def __init__(self, db: Database, settings: Settings, job: Claimed, worker_id: str) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.db, self.settings, self.job, self.worker_id = db, settings, job, worker_id
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        started = time.monotonic()
        interval = max(0.2, self.settings.lease_seconds / 3)
        while not self.stopped.wait(interval):
            if time.monotonic() - started > self.settings.job_timeout_s:
                log.error(
                    "job %s ran past %.0f s: exiting so it is retried elsewhere",
                    self.job.id,
                    self.settings.job_timeout_s,
                )
                os._exit(EXIT_TIMEOUT)
            try:
                if not queue.heartbeat(self.db, self.job.id, self.worker_id, self.settings.lease_seconds):
                    self.lost = True
            except Exception as exc:  # noqa: BLE001 - a heartbeat thread must survive database outages
                log.warning("heartbeat of job %s failed: %s", self.job.id, type(exc).__name__)


class WorkerLoop:
    """One worker process."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url, pool_size=2)
        self.id = f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.stopping = False
        self.in_job = False
        self._parent = int(os.environ.get(ENV_PARENT_PID, "0") or 0)
        self._last_beat = 0.0
        self._last_tick = 0.0
        self._registered = False

    def _on_signal(self, signum: int, _frame: types.FrameType | None) -> None:
        self.stopping = True
        if self.in_job:
            raise Shutdown(signal.Signals(signum).name)

    def run(self) -> int:
        """Work until stopped; returns the exit code."""
        os.environ[ENV_DATA_DIR] = str(self.settings.data_dir)  # advisory updates live in the data dir
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("worker %s started", self.id)
        backoff = 1.0
        while not self.stopping and not self._orphaned():
            try:
                worked = self._step()
                backoff = 1.0
                if not worked:
                    self._sleep(POLL_S)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("database unavailable (%s); retrying in %.0f s", type(exc).__name__, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self._unregister()
        log.info("worker %s stopped", self.id)
        return 0

    def _orphaned(self) -> bool:
        return bool(self._parent) and os.getppid() != self._parent

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))

    def _step(self) -> bool:
        now = time.monotonic()
        if now - self._last_beat >= BEAT_S or not self._registered:
            self._beat()
            self._last_beat = now
        if now - self._last_tick >= self.settings.scheduler_tick_s:
            self._last_tick = now
            scheduler.tick(self.db, self.settings, self.id)
        webhooks.deliver_due(self.db)
        job = queue.claim(self.db, self.id, self.settings.lease_seconds)
        if job is None:
            return False
        self._run(job)
        return True

    def _beat(self, current: int | None = None) -> None:
        with self.db.write() as session:
            row = session.get(Worker, self.id)
            if row is None:
                session.add(
                    Worker(
                        id=self.id,
                        hostname=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=utcnow(),
                        last_seen=utcnow(),
                        current_job_id=current,
                    )
                )
            else:
                row.last_seen = utcnow()
                row.current_job_id = current
        self._registered = True

    def _unregister(self) -> None:
        try:
            scheduler.release(self.db, "scheduler", self.id)
            with self.db.write() as session:
                session.execute(delete(Worker).where(Worker.id == self.id))
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.debug("could not unregister worker %s: %s", self.id, exc)

    def _run(self, job: Claimed) -> None:
        log.info(
            "job %s: %s of model %s (attempt %s/%s)", job.id, job.kind, job.model_id, job.attempts, job.max_attempts
        )
        beat = _JobHeartbeat(self.db, self.settings, job, self.id)
        beat.start()
        self.in_job = True
        raise_stop = False
        try:
            if self.stopping:
                raise Shutdown("stopping")
            if job.kind in ("scan", "verify") and fleet_entries.run_job(self.db, job, self.id):
                return  # a swept model: re-evaluated from what the sweep stored (no bytes to scan or hash)
            if job.kind == "scan":
                run_scan(self.db, self.settings, job, self.id)
            elif job.kind == "verify":
                run_verify(self.db, self.settings, job, self.id)
            else:
                raise PermanentFailure(f"unknown job kind {job.kind!r}")
        except Shutdown:
            self.in_job = False
            self._abandon(job)
            raise_stop = True
        except PermanentFailure as exc:
            self.in_job = False
            self._failed(job, exc.message, permanent=True)
        except Exception as exc:  # noqa: BLE001 - the job boundary: record the failure, retry, never die of it
            self.in_job = False
            if is_unavailable(exc):
                raise
            log.exception("job %s failed", job.id)
            self._failed(job, f"{type(exc).__name__}: {exc}"[:1000], permanent=False)
        finally:
            self.in_job = False
            beat.stopped.set()
        if raise_stop:
            self.stopping = True

    def _abandon(self, job: Claimed) -> None:
        """Give the job back (shutdown): queued again, this attempt not counted."""
        try:
            with self.db.write() as session:
                held = queue.held(session, job.id, self.id)
                if held is not None:
                    held.state = queue.QUEUED
                    held.attempts = max(0, held.attempts - 1)
                    held.worker_id = None
                    held.lease_expires_at = None
                    held.updated_at = utcnow()
            log.info("job %s given back to the queue (shutdown)", job.id)
        except Exception as exc:  # noqa: BLE001 - the lease lapses anyway
            log.warning("could not give job %s back (%s); its lease will lapse", job.id, type(exc).__name__)

    def _failed(self, job: Claimed, error: str, *, permanent: bool) -> None:
        with self.db.write() as session:
            held = queue.held(session, job.id, self.id)
            if held is None:
                return
            if permanent:
                held.attempts = held.max_attempts
            if not queue.retry_later(held, error) and job.kind == "scan":
                mark_scan_failed(session, job.model_id, held.attempts, error, f"worker:{self.id}")


def pending_jobs(db: Database) -> int:
    """How many jobs wait (for tests and the CLI)."""
    with db.read() as session:
        return len(session.scalars(select(Job.id).where(Job.state.in_(queue.ACTIVE))).all())


def run_worker(settings: Settings) -> int:
    """Entry point of ``modelshield worker``."""
    return WorkerLoop(settings).run()
