"""Lenient zip reading: :mod:`.parser` (structure) and :mod:`.reader` (the registered reader)."""

from __future__ import annotations
