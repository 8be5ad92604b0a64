"""Configurable parser limits. Hitting one is a coverage finding (fail closed), never silent."""

from __future__ import annotations

from modelshield._record import field_names, record, replace
from modelshield.errors import UsageError

MiB = 1024 * 1024
GiB = 1024 * MiB


@record
class Limits:
    """Bounds for every parser. All sizes in bytes, times in seconds."""

    max_opcodes: int = 50_000_000
    max_memo: int = 5_000_000
    max_stack_depth: int = 1_000_000
    max_nesting: int = 20_000
    max_pickle_streams: int = 10_000
    max_archive_depth: int = 8
    max_members: int = 100_000
    max_decompressed_bytes: int = 8 * GiB
    max_compression_ratio: float = 1000.0
    max_member_in_memory: int = 16 * MiB
    max_header_bytes: int = 100 * MiB
    time_per_file_s: float = 300.0

    def with_overrides(self, overrides: dict[str, str]) -> Limits:
        """Return a copy with ``name=value`` overrides (from ``--limit``); raise UsageError if bad."""
        fields = field_names(self)
        changes: dict[str, object] = {}
        for name, raw in overrides.items():
            if name not in fields:
                raise UsageError(f"unknown limit {name!r}", hint="known limits: " + ", ".join(fields))
            current = getattr(self, name)
            try:
                value: object = float(raw) if isinstance(current, float) else int(raw)
            except ValueError:
                raise UsageError(f"limit {name} needs a number, got {raw!r}") from None
            if value <= 0:  # type: ignore[operator]
                raise UsageError(f"limit {name} must be positive, got {raw!r}")
            changes[name] = value
        return replace(self, **changes)
