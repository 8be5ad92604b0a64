"""Resource limits of a detonation (the values are chosen in the parent, applied in the child)."""

from __future__ import annotations

import resource
import signal
from dataclasses import asdict, dataclass
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds of one detonation. Memory is added to what the prepared child already maps."""

    wall_s: float = 60.0
    cpu_s: int = 30
    memory_mb: int = 2048
    file_size_mb: int = 16
    open_files: int = 256
    processes: int = 4096

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the job sent to the child."""
        return asdict(self)


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            pages = int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _lower(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    hard_value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (hard_value, hard_value))


def apply(limits: dict[str, Any]) -> None:
    """Apply the limits to this process (child side). Only ever lowers them."""
    _lower(resource.RLIMIT_AS, _mapped_bytes() + int(limits["memory_mb"]) * MiB)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime) + 1 + int(limits["cpu_s"])
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2 if hard == resource.RLIM_INFINITY else min(cpu + 2, hard)))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with EFBIG instead of killing
    _lower(resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * MiB)
    _lower(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    _lower(resource.RLIMIT_NPROC, int(limits["processes"]))
    _lower(resource.RLIMIT_CORE, 0)
