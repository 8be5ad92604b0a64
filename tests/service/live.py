"""``modelshield serve`` as a real subprocess on a free loopback port, for the tests and the benchmark.

:meth:`LiveServer.start` creates an admin token with ``modelshield token create``, starts
``modelshield serve`` in its own process group, waits until ``GET /healthz`` answers 200 and
returns the running server. :meth:`LiveServer.stop` sends SIGTERM, then SIGKILL to the whole
group (the workers included) if it has not exited in time. Everything the server prints goes to
``serve.log`` in its data dir, and a failed start reports the tail of that log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.service.pgcluster import free_port

START_TIMEOUT = 90.0


class LiveServerError(RuntimeError):
    """The server did not start or a CLI step failed; the message carries the log tail."""


def modelshield_argv() -> list[str]:
    """How to run the modelshield CLI of this interpreter (the venv's script, or ``python -m``)."""
    script = Path(sys.executable).with_name("modelshield")
    if script.is_file():
        return [str(script)]
    found = shutil.which("modelshield")
    return [found] if found else [sys.executable, "-m", "modelshield.cli"]


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run ``modelshield ARGS``; returns stdout, raises with stderr when it exits non-zero."""
    done = subprocess.run(
        [*modelshield_argv(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise LiveServerError(f"modelshield {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-3000:]}")
    return done.stdout


def create_token(data_dir: Path, database_url: str, role: str, name: str) -> str:
    """A new API token of ``role`` (viewer | publisher | admin) from ``modelshield token create``."""
    out = run_cli(
        ["token", "create", "--role", role, "--name", name, "--data-dir", str(data_dir), "--database-url", database_url]
    )
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        raise LiveServerError("modelshield token create printed no token")
    return lines[-1]


@dataclass
class LiveServer:
    """A running ``modelshield serve``: where it listens, its admin token, its data dir and process."""

    base_url: str
    admin_token: str
    data_dir: Path
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _tokens: dict[str, str] = field(default_factory=dict)
    _workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        database_url: str,
        workers: int = 1,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> LiveServer:
        """Create the admin token, start the server, wait for /healthz; raises LiveServerError with the log tail."""
        data_dir.mkdir(parents=True, exist_ok=True)
        admin = create_token(data_dir, database_url, "admin", "test-admin")
        log_path = data_dir / "serve.log"
        for attempt in range(3):  # another process may take the probed free port before serve binds it
            port = free_port()
            argv = [
                *modelshield_argv(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--database-url",
                database_url,
                "--workers",
                str(workers),
                *(extra_args or []),
            ]
            logged = log_path.stat().st_size if log_path.exists() else 0
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env={**os.environ, **(env or {})},
                )
            server = cls(f"http://127.0.0.1:{port}", admin, data_dir, database_url, process, log_path)
            try:
                server.wait_healthy(START_TIMEOUT, workers=workers)
            except LiveServerError:
                server.stop()
                this_start = log_path.read_bytes()[logged:].decode(errors="replace")
                if attempt < 2 and any(m in this_start.lower() for m in ("cannot listen on", "address already in use")):
                    continue
                raise
            except BaseException:
                server.stop()
                raise
            return server
        raise AssertionError("unreachable")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of what the server printed."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_healthy(self, timeout: float, workers: int = 0) -> dict[str, Any]:
        """Poll /healthz until it answers 200 with at least ``workers`` workers alive; returns its JSON body."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LiveServerError(f"modelshield serve exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                answer = httpx.get(f"{self.base_url}/healthz", timeout=2)
                body = answer.json() if answer.status_code == 200 else None
                if isinstance(body, dict) and int((body.get("workers") or {}).get("alive", 0)) >= workers:
                    return body
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise LiveServerError(f"/healthz not ready after {timeout:.0f} s (last: {last}):\n{self.log_tail()}")

    def token(self, role: str, name: str | None = None) -> str:
        """A token of ``role`` (created once per name)."""
        key = name or f"test-{role}"
        if key not in self._tokens:
            self._tokens[key] = create_token(self.data_dir, self.database_url, role, key)
        return self._tokens[key]

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """An httpx client on the server, with ``Authorization: Bearer TOKEN`` when given (admin by default)."""
        tok = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def start_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one more ``modelshield worker`` on this server's database and data dir (its own process group)."""
        with open(self.data_dir / "workers.log", "ab") as log:
            worker = subprocess.Popen(
                [*modelshield_argv(), "worker", "--data-dir", str(self.data_dir), "--database-url", self.database_url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self._workers.append(worker)
        return worker

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the process group; returns the exit code."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(10)
        self._signal_group(signal.SIGKILL)  # workers left behind by a parent that exited
        for worker in self._workers:
            _stop_process(worker, timeout)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash, not a shutdown)."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(10)
        for worker in self._workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a process group started with start_new_session, then SIGKILL it after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
