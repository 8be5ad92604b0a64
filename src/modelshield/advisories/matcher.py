"""PEP 440 version matching against the advisory database.

Lookups go through the per-package index (only that package's advisories are compared) and the
parsed ranges are compiled once per package and cached, as are (package, version) results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelshield._record import record
from modelshield.advisories.db import Advisory, AdvisoryDB, Interval, normalise

if TYPE_CHECKING:  # packaging is imported when a version is first compared
    from packaging.version import Version


@record
class Match:
    """An advisory that affects a given version, and the lowest version that fixes it (if any)."""

    advisory: Advisory
    package: str
    version: str
    fixed_in: str | None


@record
class _Bound:
    lo: Version | None
    hi: Version | None
    hi_inclusive: bool
    fixed: str | None

    def contains(self, v: Version) -> bool:
        if self.lo is not None and v < self.lo:
            return False
        if self.hi is None:
            return True
        return v <= self.hi if self.hi_inclusive else v < self.hi


def parse_version(text: str) -> Version | None:
    """A PEP 440 version, or None when ``text`` is not one."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text.strip())
    except InvalidVersion:
        return None


def _compile(interval: Interval) -> _Bound | None:
    lo = None if interval.introduced in ("0", "") else parse_version(interval.introduced)
    if interval.introduced not in ("0", "") and lo is None:
        return None
    if interval.fixed is not None:
        hi = parse_version(interval.fixed)
        return None if hi is None else _Bound(lo, hi, False, interval.fixed)
    if interval.last_affected is not None:
        hi = parse_version(interval.last_affected)
        return None if hi is None else _Bound(lo, hi, True, None)
    return _Bound(lo, None, False, None)


class Matcher:
    """Finds the advisories affecting ``package==version`` (withdrawn records excluded)."""

    def __init__(self, db: AdvisoryDB) -> None:
        self.db = db
        self._compiled: dict[str, list[tuple[Advisory, tuple[_Bound, ...]]]] = {}
        self._results: dict[tuple[str, str], tuple[Match, ...]] = {}

    def _for(self, package: str) -> list[tuple[Advisory, tuple[_Bound, ...]]]:
        compiled = self._compiled.get(package)
        if compiled is None:
            compiled = []
            for adv in self.db.for_package(package):
                if adv.withdrawn:
                    continue
                bounds = tuple(b for b in (_compile(i) for i in adv.intervals) if b is not None)
                if bounds:
                    compiled.append((adv, bounds))
            self._compiled[package] = compiled
        return compiled

    def affected(self, package: str, version: str) -> tuple[Match, ...]:
        """Advisories whose ranges contain ``version`` (empty for an unparsable version)."""
        name = normalise(package)
        key = (name, version)
        cached = self._results.get(key)
        if cached is not None:
            return cached
        parsed = parse_version(version)
        found: list[Match] = []
        if parsed is not None:
            for adv, bounds in self._for(name):
                hit = next((b for b in bounds if b.contains(parsed)), None)
                if hit is not None:
                    found.append(Match(adv, name, version, hit.fixed or _next_fix(bounds, parsed)))
        result = tuple(found)
        self._results[key] = result
        return result

    def advisories(self, package: str) -> tuple[Advisory, ...]:
        """Every advisory of ``package`` (withdrawn included), for ``advisories`` listings."""
        return self.db.for_package(package)


def _next_fix(bounds: tuple[_Bound, ...], version: Version) -> str | None:
    """The lowest fixed version above ``version`` among the bounds (for last_affected ranges)."""
    fixes = sorted((b.hi, b.fixed) for b in bounds if b.fixed and b.hi is not None and b.hi > version)
    return fixes[0][1] if fixes else None
