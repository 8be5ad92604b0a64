"""Small pickles are analysed once per content: a repeat gives the same findings, located in its own file."""

from __future__ import annotations

import pickle
from pathlib import Path

from modelshield.demo import _proto2_call
from modelshield.formats.pickle import reader as pickle_reader
from modelshield.scan import ScanOptions, collect_blobs, scan_file


def _scan(path: Path) -> list[tuple[str, str | None, str, tuple[tuple[str, str, str | None], ...]]]:
    [blob] = collect_blobs([str(path)])
    return [
        (a.path, a.member, a.format, tuple((f.rule_id, f.message, f.location.path) for f in a.findings))
        for a in scan_file(blob, ScanOptions())
    ]


def test_repeat_of_a_malicious_pickle_is_flagged_in_its_own_file(tmp_path: Path) -> None:
    payload = _proto2_call("os", "system", f"touch {tmp_path / 'canary'}")
    first, second = tmp_path / "a.pkl", tmp_path / "b.pkl"
    first.write_bytes(payload)
    second.write_bytes(payload)
    pickle_reader._MEMO.clear()
    one = _scan(first)
    assert len(pickle_reader._MEMO) == 1
    two = _scan(second)
    assert [r[1:3] for r in one] == [r[1:3] for r in two]
    assert [f[:2] for f in one[0][3]] == [f[:2] for f in two[0][3]] and one[0][3], "same findings"
    assert all(f[2] == str(second) for f in two[0][3]), "findings name the second file"
    assert not (tmp_path / "canary").exists()


def test_memo_result_equals_a_fresh_analysis(tmp_path: Path) -> None:
    target = tmp_path / "data.pkl"
    target.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "names": ("a", "b")}, protocol=4))
    pickle_reader._MEMO.clear()
    fresh = _scan(target)
    remembered = _scan(target)
    assert fresh == remembered


def test_results_with_children_or_trailing_data_are_not_remembered(tmp_path: Path) -> None:
    target = tmp_path / "trailing.pkl"
    target.write_bytes(pickle.dumps([1, 2, 3], protocol=2) + b"MZ\x90\x00 not a pickle at all " * 4)
    pickle_reader._MEMO.clear()
    first = _scan(target)
    assert any("TRAILING" in f[0] for f in first[0][3])
    assert not pickle_reader._MEMO
    assert _scan(target) == first
