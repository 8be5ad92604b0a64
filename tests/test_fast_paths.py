"""Every fast path gives the findings of the general path it shortcuts, over every generated fixture.

The fast paths: the one-pass parser for plain zips (torch checkpoints), the quiet skip of torch
storage and metadata members, small zips parsed from memory instead of through the page cache,
the memo of small pickles seen byte for byte before, and the pickle VM's read window (payloads
longer than the window are sought past, never read). Each variant below turns one of them off (or
forces its other branch) and scans the whole red-team corpus, the benign real-library files and a
minimal file of every format; every artifact must get exactly the findings of the normal scan.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.corpus.model import Sample
from tests.formats.test_registry import MINIMAL

from modelshield.formats.pickle import reader as pickle_reader
from modelshield.formats.pickle.window import ByteWindow
from modelshield.formats.zipfmt import parser as zip_parser
from modelshield.formats.zipfmt import reader as zip_reader
from modelshield.scan import Scanner

Outcome = list[tuple[str | None, str, list[tuple[str, str, int | None, str]]]]


def _outcome(path: Path) -> Outcome:
    report = Scanner().scan([str(path)])
    return [
        (
            a.member,
            a.format,
            sorted((f.rule_id, f.severity.label, f.location.offset, f.message) for f in a.findings),
        )
        for a in report.artifacts
    ]


@pytest.fixture(scope="module")
def every_fixture(
    corpus: dict[str, Sample], benign_corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    folder = tmp_path_factory.mktemp("fast-path-minimal")
    minimal = []
    for index, (_, name, data) in enumerate(MINIMAL):
        (folder / str(index)).mkdir()
        (folder / str(index) / name).write_bytes(data)
        minimal.append(folder / str(index) / name)
    return sorted({s.path for s in corpus.values()} | set(benign_corpus.values()) | set(minimal))


@pytest.fixture(scope="module")
def baseline(every_fixture: list[Path]) -> dict[Path, Outcome]:
    pickle_reader._MEMO.clear()
    pickle_reader._SEEN.clear()
    return {path: _outcome(path) for path in every_fixture}


def _memo_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickle_reader, "MEMO_MAX_BYTES", -1)


def _general_zip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zip_parser, "parse_plain", lambda data, limits: None)


def _no_quiet_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zip_reader, "_quiet_skip", lambda *args: False)


def _paged_zip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zip_reader, "IN_MEMORY_BYTES", -1)


def _small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    start, _chunk = ByteWindow.__init__.__defaults__  # type: ignore[misc]
    monkeypatch.setattr(ByteWindow.__init__, "__defaults__", (start, 512))


VARIANTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "pickle-memo-off": _memo_off,
    "zip-general-parser": _general_zip,
    "zip-no-quiet-skip": _no_quiet_skip,
    "zip-paged-not-in-memory": _paged_zip,
    "pickle-512-byte-window": _small_window,
}


def _differences(baseline: dict[Path, Outcome], again: dict[Path, Outcome]) -> list[str]:
    out = []
    for path, expected in baseline.items():
        if again[path] != expected:
            out.append(f"{path.name}:\n  fast/normal: {expected}\n  variant:     {again[path]}")
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_path_equals_general_path(
    variant: str, every_fixture: list[Path], baseline: dict[Path, Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    VARIANTS[variant](monkeypatch)
    pickle_reader._MEMO.clear()
    pickle_reader._SEEN.clear()
    again = {path: _outcome(path) for path in every_fixture}
    diffs = _differences(baseline, again)
    assert not diffs, f"{variant}: {len(diffs)} of {len(every_fixture)} fixtures differ\n" + "\n".join(diffs[:5])


def test_pickle_memo_hits_equal_the_first_analysis(every_fixture: list[Path], baseline: dict[Path, Outcome]) -> None:
    # the third scan of a file is served from the memo (its bytes were seen twice before)
    for _ in range(2):
        for path in every_fixture:
            _outcome(path)
    assert pickle_reader._MEMO, "no pickle was remembered: the memo path was not exercised"
    diffs = _differences(baseline, {path: _outcome(path) for path in every_fixture})
    assert not diffs, "\n".join(diffs[:5])


def test_variants_really_change_the_path(monkeypatch: pytest.MonkeyPatch, every_fixture: list[Path]) -> None:
    # each variant must reach the code it claims to bypass, or the comparison above proves nothing
    calls: dict[str, int] = {"plain": 0, "quiet": 0}
    real_plain, real_quiet = zip_parser.parse_plain, zip_reader._quiet_skip

    def plain(*args: object) -> object:
        calls["plain"] += 1
        return real_plain(*args)  # type: ignore[arg-type]

    def quiet(*args: object) -> bool:
        calls["quiet"] += 1
        return real_quiet(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(zip_parser, "parse_plain", plain)
    monkeypatch.setattr(zip_reader, "_quiet_skip", quiet)
    for path in every_fixture:
        _outcome(path)
    assert calls["plain"] > 10 and calls["quiet"] > 10, calls


def test_the_fixture_set_is_broad(every_fixture: list[Path]) -> None:
    kinds = {p.suffix for p in every_fixture}
    assert len(every_fixture) > 150 and {".pt", ".pkl", ".zip", ".onnx", ".safetensors"} <= kinds, (
        len(every_fixture),
        kinds,
    )
