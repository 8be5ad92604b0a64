"""A throwaway PostgreSQL cluster for the service tests, the benchmark and ``.ci/run``.

``initdb`` into a fresh folder, start the server on a free port of 127.0.0.1 (and a Unix socket in
that folder), stop it and delete the folder. As root the server runs as the ``postgres`` user
(``initdb`` refuses root). Durability is switched off: the data is thrown away anyway.

Standard library only, so ``.ci/run`` can use it before the venv exists::

    python3 tests/service/pgcluster.py start DIR    # prints the URL of database modelshield_test
    python3 tests/service/pgcluster.py stop DIR
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=300 -c shared_buffers=64MB -c log_min_messages=warning"
)
_STATE = "cluster.json"


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped; the message says what to install or check."""


def find_bin_dir() -> Path | None:
    """Folder holding initdb and pg_ctl: $MODELSHIELD_PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH."""
    candidates: list[Path] = []
    if os.environ.get("MODELSHIELD_PG_BIN"):
        candidates.append(Path(os.environ["MODELSHIELD_PG_BIN"]))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    candidates.extend(reversed(versions))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ClusterError("running as root but there is no 'postgres' user: apt-get install postgresql") from exc
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ClusterError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running throwaway cluster: its folder, binaries and loopback port. Superuser ``postgres``, trust auth."""

    root: Path
    bin_dir: Path
    port: int

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of one database of this cluster (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, root: Path, bin_dir: Path | None = None) -> Cluster:
        """initdb into ``root/data`` and start the server; ``root`` is created (it must not hold a cluster yet)."""
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise ClusterError("no PostgreSQL binaries (initdb, pg_ctl) found: apt-get install postgresql")
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o755)  # the server user must reach its socket and data below
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        last: ClusterError | None = None
        for _ in range(5):  # another process may grab the free port between the probe and the bind
            port = free_port()
            try:
                _run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(root / "data"),
                        "-l",
                        str(root / "server.log"),
                        "-w",
                        "-t",
                        "60",
                        "-s",
                        "-o",
                        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} {SERVER_OPTIONS}",
                        "start",
                    ],
                    "pg_ctl start",
                )
            except ClusterError as exc:
                last = exc
                continue
            cluster = cls(root=root, bin_dir=bin_dir, port=port)
            (root / _STATE).write_text(json.dumps({"bin_dir": str(bin_dir), "port": port}))
            return cluster
        log = root / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ClusterError(f"{last}; server log: {tail}")

    @classmethod
    def attach(cls, root: Path) -> Cluster:
        """The cluster that :meth:`start` left running in ``root``."""
        state = json.loads((root / _STATE).read_text())
        return cls(root=root, bin_dir=Path(state["bin_dir"]), port=int(state["port"]))

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        _run(
            [str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            f"createdb {name}",
        )
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete the folder."""
        pg_ctl = str(self.bin_dir / "pg_ctl")
        for mode in ("fast", "immediate"):
            try:
                _run([pg_ctl, "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "-s", "stop"], "pg_ctl stop", 60)
                break
            except (ClusterError, subprocess.TimeoutExpired):
                continue
        else:
            self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        except (OSError, ValueError, IndexError):
            pass


def main(argv: list[str]) -> int:
    """``start DIR`` prints the URL of a new database ``modelshield_test``; ``stop DIR`` stops and deletes."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: pgcluster.py start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    try:
        if argv[0] == "start":
            cluster = Cluster.start(root)
            print(cluster.create_database("modelshield_test"))
        else:
            if (root / _STATE).exists():
                Cluster.attach(root).stop()
            else:
                shutil.rmtree(root, ignore_errors=True)
    except ClusterError as exc:
        print(f"pgcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
