"""What a Ray task answers for faults, run in-process (no Ray): memory, timeout, changes, fetch errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.conftest import benign_pickle

from modelshield.fleet import task
from modelshield.fleet.fetch import Entry, fingerprint
from modelshield.limits import Limits
from modelshield.scan import ScanOptions


def _entry(path: Path) -> Entry:
    return Entry(0, str(path), str(path), "local", path.stat().st_size)


def test_running_out_of_memory_is_a_crash_answer_not_a_dead_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(benign_pickle({"x": 1}))
    entry = _entry(path)

    def exhausted(*_args: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr("modelshield.scan.scan_file", exhausted)
    answer = task.scan_listed_file(entry, fingerprint(entry), ScanOptions())
    assert answer["status"] == "crashed" and "out of memory" in answer["message"]


def test_a_scan_past_its_budget_is_stopped_by_the_task_alarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "slow.pkl"
    path.write_bytes(benign_pickle({"x": 2}))
    entry = _entry(path)

    def hang(*_args: Any) -> Any:
        time.sleep(30)

    monkeypatch.setattr("modelshield.scan.scan_file", hang)
    monkeypatch.setattr(task, "ALARM_GRACE_S", 0.0)
    started = time.monotonic()
    answer = task.scan_listed_file(entry, fingerprint(entry), ScanOptions(Limits(), timeout_s=0.3))
    assert answer["status"] == "crashed" and "timeout of 0.3 s" in answer["message"]
    assert time.monotonic() - started < 10


def test_content_changed_with_the_same_size_and_stamp_is_caught_by_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(benign_pickle({"a": 1}))
    entry = _entry(path)
    listed = fingerprint(entry)
    forged = type(listed)(listed.size, listed.stamp, "0" * 64)  # as if the bytes had been others when listed
    answer = task.scan_listed_file(entry, forged, ScanOptions())
    assert answer["status"] == "changed" and "content changed" in answer["message"]


def test_a_file_gone_before_its_scan_is_a_fetch_failure(tmp_path: Path) -> None:
    path = tmp_path / "gone.pkl"
    path.write_bytes(benign_pickle({"a": 1}))
    entry = _entry(path)
    listed = fingerprint(entry)
    path.unlink()
    answer = task.scan_listed_file(entry, listed, ScanOptions())
    assert answer["status"] == "failed" and "gone.pkl" in answer["message"]
    assert task.fingerprint_file(entry)["status"] == "failed"
