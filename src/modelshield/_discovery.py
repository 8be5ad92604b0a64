"""Import every module of a package once, so self-registering plug-ins register themselves."""

from __future__ import annotations

import importlib
import os
import pkgutil

_done: set[str] = set()


def _submodules(package: str, paths: list[str]) -> list[str]:
    """Dotted names of the modules under ``paths`` (recursively), sorted, without importing them.

    Reads the folders directly (a few directory listings, no imports); falls back to pkgutil for
    packages that do not live in plain folders (zip imports).
    """
    names: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            return [info.name for info in pkgutil.walk_packages(paths, prefix=package + ".")]
        with os.scandir(path) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_file() and entry.name.endswith(".py") and entry.name != "__init__.py":
                    names.append(f"{package}.{entry.name[:-3]}")
                elif entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")):
                    names.append(f"{package}.{entry.name}")
                    names.extend(_submodules(f"{package}.{entry.name}", [entry.path]))
    return names


def import_all(
    package: str, skip: frozenset[str] = frozenset({"interface"}), skip_packages: frozenset[str] = frozenset()
) -> None:
    """Import every submodule (recursively) of ``package`` except those named in ``skip``.

    Modules whose name starts with ``_`` are helpers, imported by the modules that need them.
    ``skip`` names single modules (a package named there still has its submodules imported);
    ``skip_packages`` names packages skipped with everything they hold (optional extras).
    """
    if package in _done:
        return
    _done.add(package)
    pkg = importlib.import_module(package)
    for name in _submodules(package, list(pkg.__path__)):
        leaf = name.rsplit(".", 1)[-1]
        parts = name.split(".")[1:]
        if leaf in skip or any(part.startswith("_") or part in skip_packages for part in parts):
            continue
        importlib.import_module(name)
