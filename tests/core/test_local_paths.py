"""Local targets keep the spelling pathlib gives them (the scan path does not import pathlib)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modelshield.sources.local import as_pathlib_spells

_PARTS = st.sampled_from(["", ".", "..", "a", "b.pt", "model dir", "x..y", ".hidden"])


@given(st.lists(_PARTS, max_size=6), st.integers(min_value=0, max_value=3), st.booleans())
def test_same_spelling_as_pathlib(parts: list[str], leading: int, trailing: bool) -> None:
    target = "/" * leading + "/".join(parts) + ("/" if trailing else "")
    assert as_pathlib_spells(target) == str(Path(target))
