"""Fixtures of the catalog service tests: databases (SQLite and a real PostgreSQL), a live server, a browser.

- ``postgres_url``: ``MODELSHIELD_TEST_DATABASE_URL`` when set (``.ci/run`` starts a cluster and sets it);
  otherwise a throwaway cluster started here from /usr/lib/postgresql/*/bin; otherwise the PostgreSQL
  cases are skipped, with the reason.
- ``new_database(kind)``: a new empty database ("sqlite": a file in a temp dir; "postgresql": CREATE
  DATABASE in that cluster). ``database_url`` is one per test module for each of both kinds.
- ``live_server_factory`` / ``live_server``: ``modelshield serve`` as a subprocess (tests/service/live.py).
- ``browser`` / ``page``: Playwright driving Debian's /usr/bin/chromium, headless (no browser download).

With ``CI`` set (``.ci/run`` sets it) a missing PostgreSQL or chromium fails the tests instead of
skipping them, so a green CI cannot hide that they did not run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.service.live import LiveServer
from tests.service.pgcluster import Cluster, ClusterError, find_bin_dir

DATABASE_KINDS = ["sqlite", "postgresql"]
CHROMIUM = os.environ.get("MODELSHIELD_TEST_CHROMIUM", "/usr/bin/chromium")


def in_ci() -> bool:
    """True under CI (``CI`` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where every service test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the service tests must run, so this is a failure, not a skip)")
    pytest.skip(reason)


def plain_psycopg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A reachable PostgreSQL (SQLAlchemy URL of one of its databases) the tests may create databases in."""
    from_env = os.environ.get("MODELSHIELD_TEST_DATABASE_URL")
    if from_env:
        yield from_env
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL: set MODELSHIELD_TEST_DATABASE_URL or apt-get install postgresql")
    # Not under pytest's tmp dir (mode 0700): the server runs as the postgres user and must reach its folder.
    root = Path(tempfile.mkdtemp(prefix="modelshield-test-pg-"))
    try:
        cluster = Cluster.start(root, bin_dir)
    except ClusterError as exc:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"could not start a throwaway PostgreSQL cluster: {exc}")
    try:
        yield cluster.url("postgres")
    finally:
        cluster.stop()


class Databases:
    """Creates empty databases on demand and drops the PostgreSQL ones at the end of the session."""

    def __init__(self, request: pytest.FixtureRequest, sqlite_root: Path) -> None:
        self._request = request
        self._sqlite_root = sqlite_root
        self._numbers = itertools.count()
        self._created: list[str] = []
        self._admin: Any = None

    def __call__(self, kind: str) -> str:
        """URL of a new empty database of ``kind`` ("sqlite" or "postgresql")."""
        number = next(self._numbers)
        if kind == "sqlite":
            folder = self._sqlite_root / f"db{number}"
            folder.mkdir()
            return f"sqlite:///{folder / 'catalog.db'}"
        if kind != "postgresql":
            raise ValueError(f"unknown database kind {kind!r}: use one of {DATABASE_KINDS}")
        server_url: str = self._request.getfixturevalue("postgres_url")
        name = f"modelshield_t{os.getpid()}_{number}"
        self._connection(server_url).execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        base, _, _ = server_url.rpartition("/")
        return f"{base}/{name}"

    def _connection(self, server_url: str) -> Any:
        if self._admin is None:
            import psycopg

            self._admin = psycopg.connect(plain_psycopg_url(server_url), autocommit=True)
        return self._admin

    def drop_all(self) -> None:
        """Drop every PostgreSQL database this session created (servers still connected are cut off)."""
        if self._admin is None:
            return
        import psycopg

        try:
            for name in self._created:
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.OperationalError:
            pass  # the throwaway cluster of this session was stopped first: its databases went with it
        finally:
            self._admin.close()


@pytest.fixture(scope="session")
def new_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Factory: ``new_database("sqlite" | "postgresql")`` -> URL of a new empty database."""
    databases = Databases(request, tmp_path_factory.mktemp("sqlite-databases"))
    yield databases
    databases.drop_all()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest, new_database: Databases) -> str:
    """A fresh database per test module, once on SQLite and once on PostgreSQL."""
    return new_database(request.param)


@pytest.fixture
def live_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server_factory(database_url, workers=1, extra_args=None, env=None)`` -> a running server.

    Every server started through it is stopped (SIGTERM, then SIGKILL) when the test ends.
    """
    started: list[LiveServer] = []

    def start(
        database_url: str, workers: int = 1, extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> LiveServer:
        server = LiveServer.start(tmp_path_factory.mktemp("serve"), database_url, workers, extra_args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One running ``modelshield serve`` (1 worker) per test module and database kind."""
    server = LiveServer.start(tmp_path_factory.mktemp("serve"), database_url, workers=1)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Playwright's chromium: Debian's /usr/bin/chromium (``MODELSHIELD_TEST_CHROMIUM``), headless."""
    if not Path(CHROMIUM).is_file():
        unavailable(f"no chromium at {CHROMIUM}: apt-get install chromium (Playwright downloads no browser here)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[test]'")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium's own sandbox refuses to run as root
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies from other tests), 1280x800."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()
