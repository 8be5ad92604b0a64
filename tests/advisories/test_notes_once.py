"""Informational CVE notes that read the same for many files are reported once, with a count."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.scan import scan


def test_pattern_note_is_reported_once_per_folder(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    for i in range(3):
        torch.save({"w": torch.zeros(2)}, tmp_path / f"m{i}.pt")
    report = scan(str(tmp_path))
    notes = [f for f in report.findings if f.rule_id == "VULN-PATTERN"]
    assert notes, "a torch pickle with an unknown loader version gets the CVE-2025-32434 note"
    messages = [f.message for f in notes]
    assert len(messages) == len(set(messages))  # one per advisory, not one per file
    assert all("the same applies to 2 other scanned file(s)" in f.evidence for f in notes)
