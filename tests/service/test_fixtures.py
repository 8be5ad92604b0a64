"""The service test fixtures themselves work: real databases of both kinds and a real headless chromium."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.service import models
from tests.service.conftest import Databases, plain_psycopg_url
from tests.service.live import LiveServer


def test_each_database_kind_is_a_fresh_writable_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            assert conn.execute("select count(*) from sqlite_master").fetchone() == (0,)
            conn.execute("create table probe (x integer)")
            conn.execute("insert into probe values (41)")
            assert conn.execute("select x + 1 from probe").fetchone() == (42,)
        return
    import psycopg

    assert database_url.startswith("postgresql+psycopg://")
    with psycopg.connect(plain_psycopg_url(database_url)) as conn:
        version = conn.execute("show server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 130000  # SKIP LOCKED, DROP DATABASE ... WITH (FORCE)
        tables = conn.execute("select count(*) from information_schema.tables where table_schema = 'public'")
        assert tables.fetchone() == (0,)
        conn.execute("create table probe (x integer)")
        conn.execute("insert into probe values (41)")
        assert conn.execute("select x + 1 from probe").fetchone() == (42,)


def test_new_database_gives_distinct_postgresql_databases(new_database: Databases) -> None:
    import psycopg

    first, second = new_database("postgresql"), new_database("postgresql")
    assert first != second
    with psycopg.connect(plain_psycopg_url(first), autocommit=True) as conn:
        conn.execute("create table only_in_first (x integer)")
    with psycopg.connect(plain_psycopg_url(second)) as conn:
        found = conn.execute("select count(*) from information_schema.tables where table_name = 'only_in_first'")
        assert found.fetchone() == (0,)


def test_chromium_renders_a_page(page: Any) -> None:
    page.set_content("<title>probe</title><button id=b onclick=\"this.textContent='clicked'\">click me</button>")
    page.click("#b")
    assert page.inner_text("#b") == "clicked"
    assert page.title() == "probe"
    assert page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generated_models_get_the_expected_cli_verdicts(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    benign = [models.benign_pickle(tmp_path, 1), models.benign_safetensors(tmp_path, 1)]
    torch_file = models.benign_torch(tmp_path, 1)
    benign += [torch_file] if torch_file else []
    evil = models.malicious_pickle(tmp_path, canary)
    assert models.benign_pickle(tmp_path, 2, "other.pkl").read_bytes() != benign[0].read_bytes()
    cli = [sys.executable, "-m", "modelshield.cli", "scan", "--format", "json"]
    for path in benign:
        done = subprocess.run([*cli, str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, (path.name, done.stdout[-2000:], done.stderr[-2000:])
    done = subprocess.run([*cli, str(evil)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and '"critical"' in done.stdout.lower()
    assert not canary.exists()


def _process_group(pgid: int) -> set[int]:
    """Live (not zombie) processes whose process group is ``pgid``, from /proc."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members


def test_live_server_answers_with_its_tokens_and_stops_with_its_workers(
    live_server_factory: Callable[..., LiveServer], new_database: Databases
) -> None:
    server = live_server_factory(new_database("sqlite"), workers=2)
    health = server.wait_healthy(30, workers=2)
    assert health["status"] == "ok" and health["workers"]["alive"] == 2
    with server.client() as admin, server.client(server.token("viewer")) as viewer:
        assert admin.get("/api/v1/me").json()["role"] == "admin"
        assert viewer.get("/api/v1/me").json()["role"] == "viewer"
    with server.client("") as anonymous:
        assert anonymous.get("/api/v1/me").status_code == 401
    group = _process_group(server.process.pid)
    assert len(group) >= 3, "serve and its 2 workers share the process group"
    assert server.stop() == 0, server.log_tail()  # SIGTERM: a clean exit, the workers with it
    assert not _process_group(server.process.pid)
