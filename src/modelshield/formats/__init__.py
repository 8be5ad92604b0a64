"""WHAT the bytes are: format readers, detected by content (the extension is a hint only).

Every module in this package is imported on first use; each registers its reader classes with
:func:`modelshield.formats.interface.register_reader` at import time (so a new format is a new
module, nothing else to edit). Readers import heavy optional dependencies lazily, inside ``read``.
Third-party readers can register through the ``modelshield.readers`` entry-point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points

_loaded = False


def load_builtin_readers() -> None:
    """Import every built-in reader module (and plug-ins) once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from modelshield._discovery import import_all

    import_all(__name__)
    for entry in entry_points(group="modelshield.readers"):
        entry.load()
