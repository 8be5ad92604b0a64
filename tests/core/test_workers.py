"""Worker isolation: a crash or hang while scanning one file is reported; the others are scanned."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.scan import Scanner, ScanOptions


@register_reader
class _MisbehavingReader(Reader):
    """Test-only reader: hangs or kills its process on files with a magic prefix."""

    name = "test-misbehaving"
    priority = 1000

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return head.startswith((b"MSTEST-HANG", b"MSTEST-CRASH"))

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        if blob.head().startswith(b"MSTEST-CRASH"):
            os._exit(139)
        while True:
            time.sleep(0.05)
        yield  # pragma: no cover


def test_crash_and_hang_are_isolated_and_reported(tmp_path: Path) -> None:
    (tmp_path / "a-good.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "b-crash.bin").write_bytes(b"MSTEST-CRASH")
    (tmp_path / "c-hang.bin").write_bytes(b"MSTEST-HANG")
    (tmp_path / "d-good.pkl").write_bytes(pickle.dumps([1, 2]))
    started = time.monotonic()
    report = Scanner(ScanOptions(jobs=2, timeout_s=2.0)).scan([str(tmp_path)])
    assert time.monotonic() - started < 60
    by_name = {Path(a.path).name: a for a in report.artifacts}
    assert [f.rule_id for f in by_name["b-crash.bin"].findings] == ["SCAN-CRASH"]
    assert "died" in by_name["b-crash.bin"].findings[0].message
    assert [f.rule_id for f in by_name["c-hang.bin"].findings] == ["SCAN-CRASH"]
    assert "timeout" in by_name["c-hang.bin"].findings[0].message
    assert by_name["a-good.pkl"].format == "pickle" and not by_name["a-good.pkl"].findings
    assert by_name["d-good.pkl"].format == "pickle" and not by_name["d-good.pkl"].findings
    # Results keep the input order whatever order the workers finished in.
    assert [Path(a.path).name for a in report.artifacts] == ["a-good.pkl", "b-crash.bin", "c-hang.bin", "d-good.pkl"]
    assert report.blocking


def test_a_hang_inside_a_batch_loses_no_other_file(tmp_path: Path) -> None:
    for i in range(60):
        (tmp_path / f"f{i:02d}.pkl").write_bytes(pickle.dumps({"i": i}))
    (tmp_path / "f05b.bin").write_bytes(b"MSTEST-HANG")  # sorts early: inside the first batch
    (tmp_path / "f40b.bin").write_bytes(b"MSTEST-CRASH")
    report = Scanner(ScanOptions(jobs=2, timeout_s=2.0)).scan([str(tmp_path)])
    by_name = {Path(a.path).name: a for a in report.artifacts}
    assert len(by_name) == 62
    assert [f.rule_id for f in by_name["f05b.bin"].findings] == ["SCAN-CRASH"]
    assert [f.rule_id for f in by_name["f40b.bin"].findings] == ["SCAN-CRASH"]
    good = [a for name, a in by_name.items() if name.endswith(".pkl")]
    assert len(good) == 60 and all(a.format == "pickle" and not a.findings for a in good)


def test_workers_that_cannot_start_are_an_error_not_crashed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelshield.workers as workers
    from modelshield.errors import WorkerError

    def broken() -> None:
        raise ImportError("simulated broken installation")

    monkeypatch.setattr(workers, "_warm_up", broken)  # forked workers inherit it
    for i in range(5):
        (tmp_path / f"f{i}.pkl").write_bytes(pickle.dumps({"i": i}))
    started = time.monotonic()
    with pytest.raises(WorkerError, match="before scanning anything"):
        Scanner(ScanOptions(jobs=2)).scan([str(tmp_path)])
    assert time.monotonic() - started < 30


def test_slot_reads_never_see_a_half_written_value() -> None:
    # The parent reads a worker's slot while the worker writes it. A read that saw a zeroed
    # time next to a valid file index timed that file out (at 0 + timeout) in ~1 of 300 scans.
    from modelshield.workers import Slot

    slot = Slot()
    slot.set(-1.0, 2000.0)  # a value the writer also stores (not the clock: it can be below 999 after boot)
    pid = os.fork()
    if pid == 0:  # the writer: files 0..9 over and over, each with its start time
        try:
            for i in range(300_000):
                slot.set(float(i % 10), 1000.0 + (i % 7))
                slot.set(-1.0, 2000.0)
        finally:
            os._exit(0)
    bad = []
    try:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            for _ in range(1000):
                index, since = slot.get()
                if since not in (1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0, 1006.0, 2000.0) and since < 999:
                    bad.append((index, since))
                if not -1 <= index < 10:
                    bad.append((index, since))
    finally:
        slot.close()
    assert not bad, bad[:5]


class _Forged:
    """What a subverted worker could send: an answer whose unpickling runs a command."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.canary}",))


def test_the_parent_never_runs_what_a_worker_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import modelshield.scan

    canary = tmp_path / "canary"
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"a": 1}))
    monkeypatch.setattr(modelshield.scan, "scan_file", lambda blob, options: [_Forged(canary)])  # in the workers
    report = Scanner(ScanOptions(jobs=2, timeout_s=10.0)).scan([str(tmp_path / "a.pkl")])
    [artifact] = report.artifacts
    assert [f.rule_id for f in artifact.findings] == ["SCAN-CRASH"]
    assert "not a scan result" in artifact.findings[0].message
    assert not canary.exists()


def test_real_answers_pass_the_answer_unpickler(tmp_path: Path) -> None:
    import io

    from modelshield.scan import collect_blobs, scan_file
    from modelshield.workers import AnswerUnpickler

    (tmp_path / "m.pkl").write_bytes(pickle.dumps(_Forged(tmp_path / "canary")))  # scanned, never loaded
    answers = [(i, scan_file(blob, ScanOptions())) for i, blob in enumerate(collect_blobs([str(tmp_path)]))]
    data = pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
    assert AnswerUnpickler(io.BytesIO(data)).load() == answers
    assert any(f.rule_id.startswith("PICKLE") for _, arts in answers for a in arts for f in a.findings)
