"""``modelshield serve``: one command for a working catalog.

Start-up: data dir, migrations, the signing key, bootstrap tokens; then N ``modelshield worker``
subprocesses (restarted when they die: a SIGKILLed worker loses nothing, its job's lease lapses and a
worker retries it) and uvicorn in this process. SIGTERM/SIGINT stop uvicorn; then the workers get
SIGTERM (they hand their jobs back) and, after 10 s, SIGKILL. Workers also exit by themselves when
this process disappears. The database URL reaches the workers through the environment, never argv.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from modelshield.errors import UsageError
from modelshield.service.settings import ENV_ADMIN_TOKEN, ENV_DATABASE_URL, ENV_PARENT_PID, Settings

log = logging.getLogger("modelshield.service.server")
STOP_GRACE_S = 10.0


def prepare(settings: Settings) -> None:
    """Data dir, schema and key: everything a process of the service needs before it starts."""
    from modelshield.service.db import migrate
    from modelshield.service.keys import ensure_key

    settings.ensure_dirs()
    with database_errors(settings):
        migrate(settings.database_url)
    ensure_key(settings)


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Database errors at start-up as a clear message (no traceback, no password)."""
    from sqlalchemy.exc import SQLAlchemyError

    from modelshield.errors import UsageError

    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        where = "the SQLite file" if settings.is_sqlite else "the PostgreSQL server"
        raise UsageError(
            f"cannot use the database ({type(cause).__name__}: {first[:300]})",
            hint=f"check that {where} of --database-url is reachable and writable",
        ) from None


def bootstrap_tokens(settings: Settings, create_role: str | None) -> str | None:
    """The admin token from ``MODELSHIELD_ADMIN_TOKEN`` (if set) and a new token of ``create_role`` (returned)."""
    from modelshield.service import auth
    from modelshield.service.db import Database

    db = Database(settings.database_url, pool_size=1)
    try:
        with database_errors(settings), db.write() as session:
            given = os.environ.get(ENV_ADMIN_TOKEN, "").strip()
            if given:
                auth.ensure_token(session, given, "admin", "bootstrap-admin", "system:serve")
            if create_role is None:
                return None
            _row, value = auth.create_token(session, create_role, f"serve-{create_role}", "system:serve")
            return value
    finally:
        db.dispose()


class Supervisor:
    """Keeps N worker subprocesses running."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def _argv(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "modelshield",
            "worker",
            "--data-dir",
            str(s.data_dir),
            "--lease-seconds",
            str(s.lease_seconds),
            "--max-attempts",
            str(s.max_attempts),
        ]

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, ENV_DATABASE_URL: self.settings.database_url, ENV_PARENT_PID: str(os.getpid())}
        env.pop(ENV_ADMIN_TOKEN, None)
        return subprocess.Popen(self._argv(), env=env, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        """Start the workers and the thread that restarts them."""
        self.procs = [self._spawn() for _ in range(self.count)]
        self.started = [time.monotonic()] * self.count
        if self.count:
            self._thread.start()

    def _watch(self) -> None:
        quick_exits = 0  # workers that died within seconds of starting, in a row: they cannot start
        while not self._stop.wait(1.0):
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None or self._stop.is_set():
                    continue
                lived = time.monotonic() - self.started[index]
                quick_exits = quick_exits + 1 if lived < 5.0 else 0
                log.warning("worker pid %s exited with %s after %.0f s; starting a new one", proc.pid, code, lived)
                if quick_exits > 3:
                    self._stop.wait(min(30.0, 2.0 ** (quick_exits - 3)))  # do not spin on a broken setup
                self.procs[index] = self._spawn()
                self.started[index] = time.monotonic()

    def stop(self) -> None:
        """SIGTERM every worker, wait, then SIGKILL what is left."""
        self._stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a UsageError saying the address cannot be used."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then turns Nagle off
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="another modelshield serve may be running there; choose another address with --host/--port",
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, host: str, port: int, workers: int, create_token: str | None, log_level: str) -> int:
    """Run the catalog until stopped; returns the exit code."""
    import uvicorn

    from modelshield.service.app import create_app

    listener = _listen(host, port)  # before anything starts: a taken port is a clear error, no workers left behind
    prepare(settings)
    token = bootstrap_tokens(settings, create_token)
    if token is not None:
        print(token, flush=True)
        article = "an" if create_token and create_token[0] in "aeiou" else "a"
        print(f"created {article} {create_token} token (shown once, above)", file=sys.stderr)
    supervisor = Supervisor(settings, workers)
    app = create_app(settings, expected_workers=workers)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    stop_requested: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn re-raises the stop signal once it is done serving:
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))  # land here, stop the workers
    supervisor.start()
    print(
        f"modelshield catalog on http://{host}:{port}/ (data in {settings.data_dir}, {workers} worker(s))",
        file=sys.stderr,
    )
    try:
        server.run(sockets=[listener])
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        return int(exc.code or 0) and 2
    finally:
        supervisor.stop()
        app.state.services.db.dispose()
    if stop_requested:
        print(f"stopped by {signal.Signals(stop_requested[0]).name}", file=sys.stderr)
    return 0 if server.started else 2
