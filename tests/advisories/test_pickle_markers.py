"""Pickle markers are searched in ``head + b"\\x00" + tail`` of the file, read into one buffer.

The reference below is that definition spelled out (two bounded reads and a concatenation); the
reader must give the same facts for files of every size class (shorter than a window, between
one and two windows, longer) with markers at, across and around the head and tail boundaries.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from modelshield.advisories import requirements
from modelshield.advisories.requirements import PICKLE_MARKER_WINDOW, ModelFacts, extract_file

W = PICKLE_MARKER_WINDOW
MARKERS = [b"\x8c\x0e_sklearn_version\x94\x8c\x051.3.2", b"_sklearn_versionX\x05\x00\x00\x001.4.0", b"torch", b"numpy"]


def _reference(data: bytes) -> ModelFacts:
    stream = io.BytesIO(data)
    head = stream.read(W)
    size = len(data)
    tail = data[size - W :] if size > 2 * W else data[len(head) :]
    facts = ModelFacts("x", "pickle")
    requirements._pickle_markers(head + b"\x00" + tail, facts)
    return facts


def _ours(data: bytes) -> ModelFacts:
    facts = ModelFacts("x", "pickle")
    requirements._pickle(io.BytesIO(data), "x", facts)
    return facts


def _files() -> list[bytes]:
    out = []
    for size, marker in itertools.product([100, W - 3, W, W + 7, 2 * W, 2 * W + 1, 3 * W + 5], MARKERS):
        for at in {0, W - len(marker) // 2, W - len(marker), W, size - W - 2, size - W, size - len(marker)}:
            if 0 <= at <= size - len(marker):
                data = bytearray(b"\x07" * size)
                data[at : at + len(marker)] = marker
                out.append(bytes(data))
    return out


@pytest.mark.parametrize("data", _files(), ids=lambda d: str(len(d)))
def test_markers_match_the_head_and_tail_definition(data: bytes) -> None:
    assert _ours(data) == _reference(data)


def test_extract_file_finds_a_version_split_by_the_window_only_where_the_definition_does(tmp_path: Path) -> None:
    marker = MARKERS[0]
    data = bytearray(b"\x07" * (3 * W))
    data[W - 5 : W - 5 + len(marker)] = marker  # cut by the end of the head window: not found
    data[-len(marker) :] = marker  # at the very end of the tail: found
    data[:2] = b"\x80\x04"  # a pickle (protocol 4) to the sniffing
    (tmp_path / "m.pkl").write_bytes(bytes(data))
    facts = extract_file(tmp_path / "m.pkl", "pickle")
    assert facts is not None and facts.details == {"sklearn_version": "1.3.2"} == _reference(bytes(data)).details
