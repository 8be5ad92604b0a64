"""The verdict cache: one file's scan result, keyed by its content.

Key: SHA-256 of the bytes, the file's *context* (its name and what readers may look at beside it,
:func:`modelshield.fleet.fetch.context_of`), the rule-set version, the engine version (tool
version, result layout, limits, user rules) and the advisory-data version *of the packages the
file needs*. A file needing nothing (most weights) is unaffected by advisory updates; a file
whose facts name ``keras`` misses once the ``keras`` advisories change: a rules or advisory change
invalidates exactly the entries it affects. Stale rows stay until :meth:`SqlStore.prune`.

Storage is SQL, the same statements on two connections: the standard library's :mod:`sqlite3`
for a SQLite file (the default ``~/.cache/modelshield/verdicts.sqlite``, ``$MODELSHIELD_CACHE_DIR``,
or a ``sqlite:///`` ``--database-url``), and SQLAlchemy for other URLs (the catalog's PostgreSQL).
Writes are ``INSERT ... ON CONFLICT DO NOTHING`` (first writer wins; every writer writes the same
result for the same key), SQLite runs in WAL mode with a busy timeout, so concurrent sweeps and
Ray drivers share one cache safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from modelshield._record import record
from modelshield.errors import UsageError

#: Rows per statement (SQLite's default host-parameter limit is 32766; PostgreSQL's 65535).
BATCH = 400
_BUSY_TIMEOUT_S = 30.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS fleet_verdicts (
        sha256 VARCHAR(64) NOT NULL,
        context VARCHAR(400) NOT NULL,
        rules_version VARCHAR(32) NOT NULL,
        engine_version VARCHAR(200) NOT NULL,
        advisory_key VARCHAR(64) NOT NULL,
        packages TEXT NOT NULL,
        result TEXT NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (sha256, context, rules_version, engine_version, advisory_key)
    )""",
    """CREATE TABLE IF NOT EXISTS fleet_results (
        run_id VARCHAR(40) NOT NULL,
        idx INTEGER NOT NULL,
        target TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 VARCHAR(64),
        size BIGINT NOT NULL,
        verdict VARCHAR(8) NOT NULL,
        cached INTEGER NOT NULL,
        findings TEXT NOT NULL,
        finished_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (run_id, idx)
    )""",
)


@record
class CacheKey:
    """What a verdict depends on besides the versions: the bytes and the file's context."""

    sha256: str
    context: str


def default_cache_path() -> str:
    """``$MODELSHIELD_CACHE_DIR/verdicts.sqlite``, else ``~/.cache/modelshield/verdicts.sqlite``."""
    folder = os.environ.get("MODELSHIELD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "modelshield"
    )
    return os.path.join(folder, "verdicts.sqlite")


def engine_version(limits: object, extra: Sequence[str] = ()) -> str:
    """Tool version, result layout, limits and user rules: anything else that changes a result."""
    from modelshield._version import __version__
    from modelshield.fleet.codec import CODEC_VERSION

    digest = hashlib.sha256(repr(limits).encode())
    for item in extra:
        digest.update(item.encode("utf-8", "surrogateescape"))
    return f"{__version__}+c{CODEC_VERSION}+{digest.hexdigest()[:16]}"


class AdvisoryVersions:
    """The advisory-data version of a set of packages: a digest of their current records."""

    def __init__(self, db: Any = None) -> None:
        self._db = db
        self._digests: dict[str, str] = {}

    def _package(self, name: str) -> str:
        found = self._digests.get(name)
        if found is None:
            if self._db is None:
                from modelshield.advisories.db import load_db

                self._db = load_db()
            records = [a.to_compact() for a in self._db.for_package(name)]
            found = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
            self._digests[name] = found
        return found

    def key(self, packages: Iterable[str]) -> str:
        """``none`` when no package is needed, else a digest of their records' digests."""
        names = sorted(set(packages))
        if not names:
            return "none"
        digest = hashlib.sha256()
        for name in names:
            digest.update(f"{name}={self._package(name)};".encode())
        return digest.hexdigest()[:32]


def packages_of(result: Sequence[Any]) -> list[str]:
    """The packages a result's facts need (what its CVE findings depend on)."""
    names: set[str] = set()
    for artifact in result:
        for facts in artifact.facts or ():
            names.update(n.package for n in facts.needs)
    return sorted(names)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class _Connection:
    """The few calls the store makes, on sqlite3 or on SQLAlchemy (named ``:param`` placeholders)."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def write(self, sql: str, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SQLite(_Connection):
    def __init__(self, path: str) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
            self.conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"cannot open the verdict cache {path}: {exc}",
                hint="set MODELSHIELD_CACHE_DIR to a writable folder, or pass --no-cache",
            ) from None

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params or {}).fetchall()

    def write(self, sql: str, rows: list[dict[str, Any]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(sql, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class _SQLAlchemy(_Connection):
    def __init__(self, url: str) -> None:
        try:
            from sqlalchemy import create_engine, exc
        except ImportError:
            raise UsageError("--database-url needs SQLAlchemy", hint="pip install 'modelshield[service,ray]'") from None
        from modelshield.service.db import is_unavailable

        self._unavailable = is_unavailable
        try:
            self.engine = create_engine(url, pool_pre_ping=True)
            with self.engine.connect():
                pass
        except (exc.SQLAlchemyError, ImportError, ValueError) as error:
            raise UsageError(
                f"cannot connect to the database {safe_url(url)}: {str(error).splitlines()[0][:200]}",
                hint="check --database-url and that the database server is running",
            ) from None

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            result = conn.execute(text(sql), params or {})
            return [tuple(row) for row in result] if result.returns_rows else []

    def write(self, sql: str, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(text(sql), rows)

    def close(self) -> None:
        self.engine.dispose()


def safe_url(url: str) -> str:
    """A database URL as it may be shown: without its password."""
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without its credentials part
        return url.split("@")[-1]


def connect(database_url: str | None, cache_path: str | None = None) -> _Connection:
    """The SQLite file of ``sqlite:///`` URLs or of the default cache; SQLAlchemy for other URLs."""
    if database_url is None:
        return _SQLite(cache_path or default_cache_path())
    if database_url.startswith("sqlite:///"):
        path = database_url[len("sqlite:///") :]
        if not path or path == ":memory:":
            raise UsageError("the fleet store needs a SQLite file", hint="give sqlite:///PATH/catalog.db")
        return _SQLite(path)
    return _SQLAlchemy(database_url)


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlStore:
    """The verdict cache and the fleet results table in one database.

    ``rules_version`` and ``engine`` are fixed for the store's life (one sweep); ``advisories``
    gives the advisory-data version of a set of packages.
    """

    def __init__(
        self,
        conn: _Connection,
        rules_version: str,
        engine: str,
        advisories: AdvisoryVersions | None = None,
    ) -> None:
        self.conn = conn
        self.rules_version = rules_version
        self.engine = engine
        self.advisories = advisories or AdvisoryVersions()
        for statement in SCHEMA:
            self._create(statement)

    def _create(self, statement: str) -> None:
        for attempt in range(3):  # two sweeps creating the tables at once: one loses the race, then sees them
            try:
                self.conn.execute(statement)
                return
            except Exception:  # noqa: BLE001 - sqlite3 and SQLAlchemy raise different classes for this race
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, str]:
        """The stored result (JSON text) of every key that has a current entry."""
        found: dict[CacheKey, str] = {}
        wanted = set(keys)
        for chunk in _chunks(sorted({k.sha256 for k in wanted})):
            names = {f"s{i}": sha for i, sha in enumerate(chunk)}
            sql = (
                "SELECT sha256, context, advisory_key, packages, result FROM fleet_verdicts "
                "WHERE rules_version = :rules AND engine_version = :engine AND sha256 IN ("
                + ", ".join(f":{n}" for n in names)
                + ")"
            )
            for sha, context, advisory_key, packages, result in self.conn.execute(
                sql, {"rules": self.rules_version, "engine": self.engine, **names}
            ):
                key = CacheKey(sha, context)
                if key in wanted and key not in found:
                    current = self.advisories.key(packages.split(",") if packages else ())
                    if current == advisory_key:
                        found[key] = result
        return found

    def put_many(self, items: Sequence[tuple[CacheKey, list[Any]]]) -> None:
        """Store results (artifact lists); an entry already there is kept (same key, same result)."""
        from modelshield.fleet.codec import dumps

        rows = []
        for key, artifacts in items:
            packages = packages_of(artifacts)
            rows.append(
                {
                    "sha256": key.sha256,
                    "context": key.context,
                    "rules": self.rules_version,
                    "engine": self.engine,
                    "advisory": self.advisories.key(packages),
                    "packages": ",".join(packages),
                    "result": dumps(artifacts),
                    "created": _now(),
                }
            )
        sql = (
            "INSERT INTO fleet_verdicts (sha256, context, rules_version, engine_version, advisory_key, packages, "
            "result, created_at) VALUES (:sha256, :context, :rules, :engine, :advisory, :packages, :result, :created) "
            "ON CONFLICT DO NOTHING"
        )
        for chunk in _chunks(rows):
            self.conn.write(sql, list(chunk))

    def count(self) -> int:
        """Entries stored (every version)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM fleet_verdicts")[0][0])

    def prune(self) -> int:
        """Delete entries of other rules or engine versions; how many went."""
        before = self.count()
        self.conn.write(
            "DELETE FROM fleet_verdicts WHERE rules_version <> :rules OR engine_version <> :engine",
            [{"rules": self.rules_version, "engine": self.engine}],
        )
        return before - self.count()

    def record_results(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store per-file results of a sweep (``fleet_results``), e.g. into the catalog database."""
        sql = (
            "INSERT INTO fleet_results (run_id, idx, target, path, sha256, size, verdict, cached, findings, "
            "finished_at) VALUES (:run_id, :idx, :target, :path, :sha256, :size, :verdict, :cached, :findings, "
            ":finished_at) ON CONFLICT DO NOTHING"
        )
        for chunk in _chunks(list(rows)):
            self.conn.write(sql, list(chunk))

    def results(self, run_id: str) -> list[tuple[Any, ...]]:
        """(idx, path, sha256, verdict, cached) of a sweep's stored results, in listing order."""
        return self.conn.execute(
            "SELECT idx, path, sha256, verdict, cached FROM fleet_results WHERE run_id = :run ORDER BY idx",
            {"run": run_id},
        )

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def open_store(
    database_url: str | None,
    rules_version: str,
    engine: str,
    *,
    cache_path: str | None = None,
    advisories: AdvisoryVersions | None = None,
) -> SqlStore:
    """The store of ``--database-url`` (the catalog database) or the local SQLite cache."""
    return SqlStore(connect(database_url, cache_path), rules_version, engine, advisories)


#: What the engine needs of a store (tests pass fakes).
StoreFactory = Callable[[], SqlStore]
