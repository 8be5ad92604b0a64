"""WHAT the bytes are: format readers, detected by content (the extension is a hint only).

Each module in this package registers its reader classes with
:func:`modelshield.formats.interface.register_reader` at import time, and
:data:`modelshield.formats._sniff.CATALOG` lists them with the content test that decides whether
the module is needed: :func:`~modelshield.formats.interface.detect` imports a reader module only
when its test accepts the bytes (identifying a safetensors file imports the safetensors reader,
not all of them). A new format is a new module plus its catalog entry and test; a module missing
from the catalog fails ``tests/formats/test_registry.py``. :func:`load_builtin_readers` imports
every module (tools and tests that want all readers). Readers import heavy optional dependencies
lazily, inside ``read``.

Third-party readers can register through the ``modelshield.readers`` entry-point group; they are
loaded only when ``MODELSHIELD_PLUGINS=1`` is set (a security gate does not run code from every
installed package by default, and looking the entry points up costs ~20 ms of start-up). They are
not in the catalog: detection asks them at their priority, after built-in readers of equal priority.
"""

from __future__ import annotations

import os

PLUGINS_ENV = "MODELSHIELD_PLUGINS"

_loaded = False
_plugins_loaded = False


def load_builtin_readers() -> None:
    """Import every built-in reader module (and plug-ins) once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from modelshield._discovery import import_all

    import_all(__name__)
    load_plugins()


def load_plugins() -> None:
    """Load the ``modelshield.readers`` entry points once, when ``MODELSHIELD_PLUGINS`` enables them."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    if os.environ.get(PLUGINS_ENV, "") in {"1", "true", "yes"}:
        from importlib.metadata import entry_points

        for entry in entry_points(group="modelshield.readers"):
            entry.load()
