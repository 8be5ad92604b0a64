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


def _forget() -> None:
    pickle_reader._MEMO.clear()
    pickle_reader._SEEN.clear()


def test_repeat_of_a_malicious_pickle_is_flagged_in_its_own_file(tmp_path: Path) -> None:
    payload = _proto2_call("os", "system", f"touch {tmp_path / 'canary'}")
    first, second, third = tmp_path / "a.pkl", tmp_path / "b.pkl", tmp_path / "c.pkl"
    for path in (first, second, third):
        path.write_bytes(payload)
    _forget()
    one = _scan(first)
    assert not pickle_reader._MEMO, "the first sight only records a hash"
    two = _scan(second)
    assert len(pickle_reader._MEMO) == 1, "the second sight keeps the IR"
    three = _scan(third)  # answered from the memo
    for other, path in ((two, second), (three, third)):
        assert [r[1:3] for r in one] == [r[1:3] for r in other]
        assert [f[:2] for f in one[0][3]] == [f[:2] for f in other[0][3]] and one[0][3], "same findings"
        assert all(f[2] == str(path) for f in other[0][3]), "findings name their own file"
    assert not (tmp_path / "canary").exists()


def test_all_different_pickles_are_not_kept(tmp_path: Path) -> None:
    _forget()
    for i in range(5):
        target = tmp_path / f"{i}.pkl"
        target.write_bytes(pickle.dumps({"n": i}, protocol=4))
        _scan(target)
    assert not pickle_reader._MEMO and len(pickle_reader._SEEN) == 5


def test_memo_result_equals_a_fresh_analysis(tmp_path: Path) -> None:
    target = tmp_path / "data.pkl"
    target.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "names": ("a", "b")}, protocol=4))
    _forget()
    fresh = _scan(target)
    kept = _scan(target)
    remembered = _scan(target)
    assert pickle_reader._MEMO
    assert fresh == kept == remembered


def test_results_with_children_or_trailing_data_are_not_remembered(tmp_path: Path) -> None:
    target = tmp_path / "trailing.pkl"
    target.write_bytes(pickle.dumps([1, 2, 3], protocol=2) + b"MZ\x90\x00 not a pickle at all " * 4)
    _forget()
    first = _scan(target)
    assert any("TRAILING" in f[0] for f in first[0][3])
    assert _scan(target) == first
    assert not pickle_reader._MEMO
    assert _scan(target) == first
