"""What a case is: a builder that writes a fixture, the rules its fresh-process scan must report, and how to scan it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Scan:
    """How to scan a built fixture: ``modelshield scan TARGET --format json *args`` with ``env`` added.

    ``env`` is added to the clean environment of that one subprocess only (a plug-in on
    ``PYTHONPATH``, ``MODELSHIELD_PLUGINS=1`` ...).
    """

    target: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 120.0


@dataclass(frozen=True)
class Case:
    """One generated positive fixture and the rule ids its scan must report.

    ``sandbox``: the scan uses ``--dynamic`` (skipped, with the probe's reason, where no sandbox works).
    ``slow``: started first, so its wall time overlaps the others (the sandbox's 60 s wall-clock limit).
    """

    name: str
    proves: tuple[str, ...]
    build: Callable[[Where], Scan]
    sandbox: bool = False
    slow: bool = False
    note: str = ""


class NotReady(Exception):
    """A resource is still being built (raised only to builders asked not to wait)."""


class Resources:
    """Fixtures that take a child interpreter to build (TensorFlow, Core ML), started at once, awaited on use."""

    def __init__(self, builders: Mapping[str, Callable[[], Path]]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(builders)), thread_name_prefix="e2e-build")
        self._futures: dict[str, Future[Path]] = {name: self._pool.submit(fn) for name, fn in builders.items()}
        self._lock = threading.Lock()

    def get(self, name: str, wait: bool = True) -> Path:
        """The folder built by ``name``; raises what the build raised, or NotReady when not ``wait`` and not done."""
        with self._lock:
            future = self._futures[name]
        if not wait and not future.done():
            raise NotReady(name)
        return future.result()

    def close(self) -> None:
        """Wait for every build to end."""
        self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class Where:
    """What a builder gets: its own empty folder and the shared heavy resources."""

    dir: Path
    resources: Resources
    wait: bool = True

    def resource(self, name: str) -> Path:
        """A shared folder built in a child interpreter (see :class:`Resources`)."""
        return self.resources.get(name, self.wait)

    @property
    def canary(self) -> Path:
        """The only file a payload of this case may touch, if it were ever run."""
        return self.dir / "canary"

    def path(self, *parts: str) -> Path:
        """A path inside the case folder (parent folders created)."""
        path = self.dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
