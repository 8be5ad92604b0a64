"""The installed ``modelshield`` CLI in subprocesses: fleet scan and scan --engine ray end to end."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.fleet.conftest import Cluster, make_models, safetensors

VOLATILE = ("started_at", "duration_s", "targets")


def _cli() -> list[str]:
    found = shutil.which("modelshield", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "modelshield"]


def _run(args: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELSHIELD_CACHE_DIR": str(tmp_path / "cache"), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [*_cli(), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path, check=False
    )


def _comparable(text: str) -> dict[str, Any]:
    data = json.loads(text)
    for key in VOLATILE:
        data.pop(key)
    return data


def test_fleet_scan_streams_one_line_per_listed_file_and_fills_the_database(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    folder = make_models(tmp_path / "models")
    hub = tmp_path / "hub" / "models--org--tiny"
    (hub / "snapshots" / "c0ffee").mkdir(parents=True)
    (hub / "snapshots" / "c0ffee" / "model.safetensors").write_bytes(safetensors())
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("c0ffee")
    os.environ["HF_HUB_CACHE"] = str(tmp_path / "hub")
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# a sweep\n"
        f"{folder}\n"
        "hf://org/tiny\n"
        f"file://{folder / 'benign.pkl'}\n"
        f"{tmp_path / 'missing.pkl'}\n"
        "nosuchscheme://bucket/model.pkl\n"
    )
    database = tmp_path / "catalog.db"
    args = ["fleet", "scan", "--from", str(listing), "--address", ray_cluster.address, "-o", "out.jsonl"]
    try:
        done = _run([*args, "--database-url", f"sqlite:///{database}"], tmp_path)
    finally:
        del os.environ["HF_HUB_CACHE"]
    assert done.returncode == 1, done.stderr  # evil.pkl fails the sweep
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(9)), "one line per listed file, none twice"
    status = {Path(line["path"]).name: line["status"] for line in lines}
    assert status["missing.pkl"] == status["model.pkl"] == "failed"
    assert status["evil.pkl"] == "scanned"
    assert "fleet: 9 file(s) listed" in done.stderr
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT idx, verdict FROM fleet_results ORDER BY idx").fetchall()
        cached = conn.execute("SELECT COUNT(*) FROM fleet_verdicts").fetchone()[0]
    assert [r[0] for r in rows] == list(range(9))
    assert cached >= 5
    again = _run([*args, "--database-url", f"sqlite:///{database}", "-f", "json"], tmp_path)
    assert again.returncode == 1
    report = json.loads((tmp_path / "out.jsonl").read_text())
    assert report["summary"]["files_scanned"] == 9
    assert "cached" in again.stderr


def test_scan_engine_ray_writes_the_report_a_local_scan_writes(ray_cluster: Cluster, tmp_path: Path) -> None:
    folder = make_models(tmp_path / "models")
    for fmt in ("json", "sarif"):
        ray_run = _run(["scan", str(folder), "--engine", "ray", "--address", ray_cluster.address, "-f", fmt], tmp_path)
        local = _run(["scan", str(folder), "--hash", "-f", fmt], tmp_path)
        assert ray_run.returncode == local.returncode == 1, ray_run.stderr
        if fmt == "json":
            assert _comparable(ray_run.stdout) == _comparable(local.stdout)
        else:
            ray_sarif, local_sarif = json.loads(ray_run.stdout), json.loads(local.stdout)
            for doc in (ray_sarif, local_sarif):
                for run in doc["runs"]:
                    run.pop("invocations", None)
            assert ray_sarif == local_sarif
    missing = _run(["scan", str(tmp_path / "nope"), "--engine", "ray", "--address", ray_cluster.address], tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_an_unreachable_cluster_is_a_clear_error_within_the_wait(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    done = _run(["fleet", "scan", str(tmp_path), "--address", f"ray://127.0.0.1:{port}"], tmp_path, timeout=60)
    assert done.returncode == 2
    assert f"cannot reach the Ray cluster at ray://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
    bad = _run(["fleet", "scan", "--from", str(tmp_path / "no-list.txt")], tmp_path, timeout=60)
    assert bad.returncode == 2 and "cannot read the list" in bad.stderr


def test_without_an_address_a_local_ray_is_started_with_the_given_cpus(tmp_path: Path) -> None:
    folder = make_models(tmp_path / "models")
    done = _run(["scan", str(folder), "--engine", "ray", "--ray-cpus", "1", "-f", "json", "-o", "r.json"], tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["files_scanned"] == 5
    assert "fleet: 5 file(s) listed: 5 scanned" in done.stderr
