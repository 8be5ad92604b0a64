"""WHAT the bytes are: format readers, detected by content (the extension is a hint only).

Built-in readers live in the modules listed in ``BUILTIN_READER_MODULES``; each registers its
reader classes with :func:`modelshield.formats.interface.register_reader` at import time.
Third-party readers can register through the ``modelshield.readers`` entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

BUILTIN_READER_MODULES: tuple[str, ...] = (
    # one line per reader module; order does not matter (readers carry a priority)
)

_loaded = False


def load_builtin_readers() -> None:
    """Import every built-in reader module (and plug-ins) once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_READER_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group="modelshield.readers"):
        entry.load()
