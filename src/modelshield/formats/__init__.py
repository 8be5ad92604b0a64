"""WHAT the bytes are: format readers, detected by content (the extension is a hint only).

Every module in this package is imported on first use; each registers its reader classes with
:func:`modelshield.formats.interface.register_reader` at import time (so a new format is a new
module, nothing else to edit). Readers import heavy optional dependencies lazily, inside ``read``.
Third-party readers can register through the ``modelshield.readers`` entry-point group; they are
loaded only when ``MODELSHIELD_PLUGINS=1`` is set (a security gate does not run code from every
installed package by default, and looking the entry points up costs ~20 ms of start-up).
"""

from __future__ import annotations

import os

PLUGINS_ENV = "MODELSHIELD_PLUGINS"

_loaded = False


def load_builtin_readers() -> None:
    """Import every built-in reader module (and plug-ins) once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from modelshield._discovery import import_all

    import_all(__name__)
    if os.environ.get(PLUGINS_ENV, "") in {"1", "true", "yes"}:
        from importlib.metadata import entry_points

        for entry in entry_points(group="modelshield.readers"):
            entry.load()
