"""A sweep into the catalog: each target becomes (or updates) a catalog model once all its files are done.

``modelshield fleet scan --database-url URL`` migrates the catalog database first (a new database
becomes a catalog ``modelshield serve --database-url URL`` opens), then writes every target as soon
as its last file has a result: one transaction per target, so a sweep that stops half way leaves
whole models, never half of one. What an entry holds is :mod:`modelshield.service.fleet_entries`.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from modelshield.errors import UsageError

if TYPE_CHECKING:
    from modelshield.fleet.fetch import Entry
    from modelshield.service.fleet_entries import Written
    from modelshield.types import Artifact, Severity


class FileResult(Protocol):
    """What the sink reads of a file's result (:class:`modelshield.fleet.engine.FileResult`)."""

    entry: Entry
    sha256: str | None
    artifacts: list[Artifact]


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"fleet:{user}@{socket.gethostname()}"[:200]


class CatalogSink:
    """Writes swept targets into the catalog database as they complete."""

    def __init__(self, url: str, *, profile: str | None, fail_on: Severity, run_id: str) -> None:
        from modelshield.service import policy_store
        from modelshield.service.db import Database, migrate
        from modelshield.service.errors import ServiceError

        migrate(url)
        self.db = Database(url, pool_size=1)
        self.profile = profile
        self.fail_on = fail_on
        self.run_id = run_id
        self.actor = _actor()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.t0 = time.perf_counter()
        self.remaining: Counter[str] = Counter()
        self.pending: dict[str, list[FileResult]] = {}
        self.written: list[Written] = []
        try:
            with self.db.read() as session:
                policy_store.check_profile(session, profile)
        except ServiceError as exc:
            self.close()
            raise UsageError(f"--profile: {exc.message} (the catalog's policy)", hint="use a catalog profile") from None

    def expect(self, listed: Sequence[Entry]) -> None:
        """The sweep's listing: how many results each target waits for."""
        self.remaining = Counter(entry.target for entry in listed)

    def add(self, result: FileResult) -> None:
        """Take one file's result; write its target when it was the target's last file."""
        target = result.entry.target
        self.pending.setdefault(target, []).append(result)
        self.remaining[target] -= 1
        if self.remaining[target] == 0:
            self._write(target, self.pending.pop(target))

    def _write(self, target: str, results: list[FileResult]) -> None:
        from modelshield.service import fleet_entries

        results.sort(key=lambda r: r.entry.index)
        files = [
            fleet_entries.SweptFile(
                r.entry.url, r.sha256, r.artifacts[0].size if r.artifacts else r.entry.size, tuple(r.artifacts)
            )
            for r in results
        ]
        with self.db.write() as session:
            written = fleet_entries.record_target(
                session,
                target,
                files,
                profile=self.profile,
                fail_on=self.fail_on,
                started=self.started,
                seconds=time.perf_counter() - self.t0,
                actor=self.actor,
                run_id=self.run_id,
            )
        self.written.append(written)

    def check_complete(self) -> None:
        """Every listed target was written (a target left over means a result was lost)."""
        left = sorted(t for t, n in self.remaining.items() if n)
        if left or self.pending:
            raise AssertionError(f"targets not written to the catalog: {left or sorted(self.pending)}")

    def summary(self) -> str:
        """One line for stderr: how many models were written, new, changed, by status."""
        new = sum(w.new for w in self.written)
        changed = sum(w.changed for w in self.written)
        statuses = Counter(w.status for w in self.written)
        parts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        return (
            f"catalog: {len(self.written)} model(s) written ({new} new, {changed} with changed content): "
            f"{parts or 'none'}"
        )

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()


def open_sink(url: str, *, profile: str | None, fail_on: Any, run_id: str) -> CatalogSink:
    """The catalog sink of a sweep, or UsageError naming the database when it cannot be opened."""
    from modelshield.fleet.cache import safe_url
    from modelshield.service.db import is_unavailable

    try:
        return CatalogSink(url, profile=profile, fail_on=fail_on, run_id=run_id)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database that cannot be reached or migrated: say which
        if is_unavailable(exc) or type(exc).__module__.startswith(("sqlalchemy", "alembic", "psycopg")):
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise UsageError(
                f"cannot open the catalog database {safe_url(url)}: {first}", hint="check --database-url"
            ) from None
        raise
