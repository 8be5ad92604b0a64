"""WHAT is wrong: analyzers that judge the readers' intermediate representations.

Every module in this package is imported on first use and registers its analyzers itself.
"""

from __future__ import annotations

_loaded = False


def load_builtin_analyzers() -> None:
    """Import every built-in analyzer module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from modelshield._discovery import import_all

    import_all(__name__)
