"""CVE data and matching: the offline advisory database, what a model needs, the environment.

>>> from modelshield.advisories import load_db, Matcher     # doctest: +SKIP
>>> Matcher(load_db()).affected("torch", "2.5.1")          # doctest: +SKIP
"""

from __future__ import annotations

from modelshield.advisories.db import Advisory, AdvisoryDataError, AdvisoryDB, load_db
from modelshield.advisories.matcher import Match, Matcher

__all__ = ["Advisory", "AdvisoryDB", "AdvisoryDataError", "Match", "Matcher", "load_db"]
