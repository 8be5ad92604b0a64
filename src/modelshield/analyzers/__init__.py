"""WHAT is wrong: analyzers that judge the readers' intermediate representations."""

from __future__ import annotations

import importlib

BUILTIN_ANALYZER_MODULES: tuple[str, ...] = (
    # one line per analyzer module
)

_loaded = False


def load_builtin_analyzers() -> None:
    """Import every built-in analyzer module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_ANALYZER_MODULES:
        importlib.import_module(module)
