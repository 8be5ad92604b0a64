"""Import every module of a package once, so self-registering plug-ins register themselves."""

from __future__ import annotations

import importlib
import pkgutil

_done: set[str] = set()


def import_all(package: str, skip: frozenset[str] = frozenset({"interface"})) -> None:
    """Import every submodule (recursively) of ``package`` except those named in ``skip``."""
    if package in _done:
        return
    _done.add(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if info.name.rsplit(".", 1)[-1] in skip or info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        importlib.import_module(info.name)
