"""Samples the scanner is known to miss today, with why. Each entry turns a test into a strict xfail, so fixing
the scanner makes the test pass loudly (XPASS fails): then delete the entry. Never add an entry to hide a miss:
every entry is reported to the lead as a finding to fix."""

from __future__ import annotations

#: name -> reason: the scanner does not block the sample (CLI would exit 0).
NOT_BLOCKED: dict[str, str] = {}

#: name -> reason: blocked, but only through a coverage/parse finding, not a finding that names the threat.
NOT_NAMED: dict[str, str] = {}

#: benign file name -> reason: a real, benign model gets a finding at or above medium.
FALSE_POSITIVES: dict[str, str] = {}
