"""WHAT is wrong: analyzers that judge the readers' intermediate representations.

Every module in this package registers its analyzers itself. A scan imports an analyzer module
the first time it sees an IR type that module handles (:data:`CATALOG`); tools that list every
rule import them all (:func:`load_builtin_analyzers`). ``tests/analyzers/test_catalog.py`` checks
that the catalog names exactly what the modules register.
"""

from __future__ import annotations

import importlib

#: (module, qualified name) of an IR type -> built-in analyzer modules that handle it.
CATALOG: dict[tuple[str, str], tuple[str, ...]] = {
    ("modelshield.formats.pickle.values", "PickleStream"): ("modelshield.analyzers.pickle_globals",),
    ("modelshield.formats.python_source", "PythonSource"): ("modelshield.analyzers.python_code",),
    ("modelshield.formats.safetensors", "SafetensorsHeader"): ("modelshield.analyzers.tamper_structure",),
    ("modelshield.formats.gguf", "GGUFHeader"): ("modelshield.analyzers.tamper_structure",),
}

_loaded = False


def load_analyzers_for(kind: type) -> None:
    """Import the built-in analyzer modules that handle IR objects of type ``kind`` (and its bases)."""
    for klass in kind.__mro__:
        for module in CATALOG.get((klass.__module__, klass.__qualname__), ()):
            importlib.import_module(module)


def load_builtin_analyzers() -> None:
    """Import every built-in analyzer module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from modelshield._discovery import import_all

    import_all(__name__)
