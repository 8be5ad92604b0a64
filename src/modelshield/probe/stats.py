"""Attack success rates with Wilson score intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Rate:
    """``hits`` out of ``trials`` with its Wilson 95 % interval [``low``, ``high``]."""

    hits: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float:
        """The point estimate (0 when nothing was tried)."""
        return self.hits / self.trials if self.trials else 0.0

    def overlaps(self, other: Rate) -> bool:
        """True when the two intervals share any point."""
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form (rates rounded to 4 places)."""
        return {
            "hits": self.hits,
            "trials": self.trials,
            "rate": round(self.value, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
        }


def wilson(hits: int, trials: int, z: float = Z95) -> Rate:
    """The Wilson score interval; with no trials the interval is the whole [0, 1]."""
    if trials <= 0:
        return Rate(0, 0, 0.0, 1.0)
    p = hits / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Rate(hits, trials, max(0.0, centre - half), min(1.0, centre + half))
