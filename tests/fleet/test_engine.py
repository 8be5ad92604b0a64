"""Fleet sweeps on a real local Ray: the same report as a local scan, de-duplication, the cache, faults."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.conftest import HOLD, Cluster, benign_pickle, make_models, safetensors

import modelshield
from modelshield.fleet.engine import FileResult, FleetConfig, FleetStats, run_fleet
from modelshield.fleet.listing import list_entries
from modelshield.render.json import report_dict
from modelshield.scan import ScanOptions

VOLATILE = ("started_at", "duration_s", "targets")


def _comparable(report: Any) -> dict[str, Any]:
    data = report_dict(report)
    for key in VOLATILE:
        data.pop(key)
    return data


def _sweep(targets: list[str], cache_path: Path | None, **config: Any) -> tuple[Any, list[FileResult]]:
    seen: list[FileResult] = []
    cfg = FleetConfig(cache=cache_path is not None, cache_path=str(cache_path) if cache_path else None, **config)
    outcome, _stats = run_fleet(targets, ScanOptions(), cfg, on_result=seen.append)
    return outcome.report, seen


def test_the_report_equals_a_local_scan(ray_cluster: Cluster, tmp_path: Path) -> None:
    folder = make_models(tmp_path / "models")
    fleet, seen = _sweep([str(folder)], tmp_path / "v.sqlite")
    local = modelshield.scan([str(folder)], compute_hashes=True)
    assert _comparable(fleet) == _comparable(local)
    assert fleet.verdict.value == "fail"
    assert sorted(r.entry.index for r in seen) == list(range(5))
    assert {f.rule_id for f in fleet.findings} >= {"PICKLE-UNSAFE-GLOBAL", "UNKNOWN-CONTENT", "EMPTY-FILE"} or any(
        f.severity.label == "critical" for f in fleet.findings
    )
    again, seen_again = _sweep([str(folder)], tmp_path / "v.sqlite")
    assert {r.status for r in seen_again} == {"cached"}, "a second sweep must come from the cache"
    assert _comparable(again) == _comparable(local)


def test_byte_identical_files_are_analysed_once(ray_cluster: Cluster, tmp_path: Path) -> None:
    shard = safetensors(("a", "b", "c"))
    for n in range(4):  # the same shard (and config) in four fine-tunes
        repo = tmp_path / f"finetune-{n}"
        repo.mkdir()
        (repo / "model-00001-of-00002.safetensors").write_bytes(shard)
        (repo / "config.json").write_text('{"model_type": "bert"}')
    targets = [str(tmp_path / f"finetune-{n}") for n in range(4)]
    report, seen = _sweep(targets, tmp_path / "v.sqlite")
    shards = [r for r in seen if r.entry.url.endswith(".safetensors")]
    assert sorted(r.status for r in shards) == ["duplicate", "duplicate", "duplicate", "scanned"]
    assert len({r.sha256 for r in shards}) == 1
    paths = [a.path for a in report.artifacts if a.member is None]
    assert len(paths) == len(set(paths)) == 8
    # each copy is reported at its own path
    assert all(r.artifacts[0].path == r.entry.url for r in shards)


def test_nothing_is_dropped_when_files_are_missing_or_urls_fail(ray_cluster: Cluster, tmp_path: Path) -> None:
    folder = make_models(tmp_path / "m")
    targets = [str(folder), str(tmp_path / "missing.pkl"), "memory://nothing/here.pkl", "nosuchscheme://x/y.pkl"]
    report, seen = _sweep(targets, None)
    assert report.files_scanned == len(seen) == 5 + 3
    failed = [r for r in seen if r.status == "failed"]
    assert len(failed) == 3
    rules = {f.rule_id for r in failed for f in r.artifacts[0].findings}
    assert rules == {"FLEET-FETCH-FAILED"}
    messages = " ".join(f.message for r in failed for f in r.artifacts[0].findings)
    assert "missing.pkl" in messages and "memory://nothing/here.pkl" in messages and "nosuchscheme" in messages
    assert report.verdict.value == "fail"  # evil.pkl; the coverage gaps alone would make it warn


def _kill_when_held(hold_dir: Path, name: str, killed: list[int], stop: threading.Event, times: int = 1) -> None:
    """Kill the worker holding ``name`` (SIGKILL, mid-task), ``times`` attempts in a row."""
    while not stop.is_set() and len(killed) < times:
        for marker in hold_dir.glob(f"{name}.*.pid"):
            pid = int(marker.read_text())
            if pid not in killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _change_when_held(hold_dir: Path, name: str, path: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        if list(hold_dir.glob(f"{name}.*.pid")):
            path.write_bytes(benign_pickle({"changed": list(range(100))}))
            return
        time.sleep(0.05)


def test_a_killed_worker_is_retried_and_the_file_scanned_once(ray_cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "kill"
    folder.mkdir()
    killed_name = f"{HOLD}-killed.pkl"
    changed_name = f"{HOLD}-changed.pkl"
    (folder / killed_name).write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    (folder / changed_name).write_bytes(benign_pickle({"v": 1}))
    for n in range(6):
        (folder / f"other-{n}.pkl").write_bytes(benign_pickle({"n": n}))
    killed: list[int] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_kill_when_held, args=(ray_cluster.hold_dir, killed_name, killed, stop)),
        threading.Thread(
            target=_change_when_held, args=(ray_cluster.hold_dir, changed_name, folder / changed_name, stop)
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        report, seen = _sweep([str(folder)], None, max_retries=2, batch_files=1)  # a task per file
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(killed) == 1, "the test must have killed the worker mid-task"
    attempts = list(ray_cluster.hold_dir.glob(f"{killed_name}.*.pid"))
    assert len(attempts) == 2, "Ray must have retried the task in a new worker"
    by_name = {Path(r.entry.url).name: r for r in seen}
    assert len(seen) == 8 and len(by_name) == 8
    retried = by_name[killed_name]
    assert retried.status == "scanned"
    tops = [a for a in report.artifacts if a.path.endswith(killed_name) and a.member is None]
    assert len(tops) == 1, "the retried file must appear exactly once in the report"
    assert "PICKLE-UNSAFE-GLOBAL" in {f.rule_id for f in tops[0].findings} or any(
        f.severity.label == "critical" for f in tops[0].findings
    )
    changed = by_name[changed_name]
    assert changed.status == "changed"
    assert [f.rule_id for f in changed.artifacts[0].findings] == ["FLEET-FILE-CHANGED"]


def test_a_worker_dying_with_no_retries_left_is_a_coverage_finding(ray_cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "noretry"
    folder.mkdir()
    name = f"{HOLD}-noretry.pkl"
    (folder / name).write_bytes(benign_pickle({"v": 2}))
    (folder / "fine.pkl").write_bytes(benign_pickle({"v": 3}))
    killed: list[int] = []
    stop = threading.Event()
    # killed in its batch (the batch is split: fine.pkl is scanned alone), then killed again alone
    thread = threading.Thread(target=_kill_when_held, args=(ray_cluster.hold_dir, name, killed, stop, 2))
    thread.start()
    try:
        report, seen = _sweep([str(folder)], None, max_retries=0)
    finally:
        stop.set()
        thread.join()
    assert len(killed) == 2
    crashed = [r for r in seen if r.status == "crashed"]
    assert [Path(r.entry.url).name for r in crashed] == [name]
    assert [f.rule_id for f in crashed[0].artifacts[0].findings] == ["SCAN-CRASH"]
    assert report.files_scanned == 2 and report.verdict.value == "warn"


def test_listing_reads_lists_and_every_kind_of_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_models(tmp_path / "m")
    hub = tmp_path / "hub"
    snap = hub / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(safetensors())
    (hub / "models--org--tiny" / "refs").mkdir()
    (hub / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    targets = [str(folder), "hf://org/tiny", f"file://{folder / 'evil.pkl'}", str(tmp_path / "gone")]
    entries = list(list_entries(targets))
    assert [e.index for e in entries] == list(range(len(entries)))
    assert [e.kind for e in entries] == ["local"] * 7 + ["failed"]
    assert entries[5].url.endswith("model.safetensors") and entries[5].target == "hf://org/tiny"
    assert json.dumps([e.target for e in entries])


def test_the_summary_shows_a_slow_sweep_rate_with_decimals_and_a_fast_one_whole() -> None:
    slow = FleetStats(counts={"scanned": 3}, listed=3, seconds=4.0).summary()
    assert slow == "fleet: 3 file(s) listed: 3 scanned; 4.00 s (0.75 files/s)"
    fast = FleetStats(counts={"cached": 2000, "scanned": 5}, listed=2005, seconds=0.1, catalog="catalog: x").summary()
    assert fast == "fleet: 2005 file(s) listed: 2000 cached, 5 scanned; 0.10 s (20,050 files/s)\ncatalog: x"
    assert "(0.00 files/s)" in FleetStats().summary()
