"""The analyzer catalog names exactly what the analyzer modules register, and loading is lazy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelshield.analyzers import CATALOG, load_builtin_analyzers
from modelshield.analyzers.interface import _ANALYZERS


def test_catalog_matches_registered_analyzers() -> None:
    load_builtin_analyzers()
    registered: dict[tuple[str, str], set[str]] = {}
    for analyzer in _ANALYZERS:
        module = type(analyzer).__module__
        if not module.startswith("modelshield.analyzers."):
            continue  # registered by a test or a plug-in
        for kind in analyzer.handles:
            registered.setdefault((kind.__module__, kind.__qualname__), set()).add(module)
    assert {key: set(modules) for key, modules in CATALOG.items()} == registered


def test_safetensors_scan_loads_no_pickle_analyzer(tmp_path: Path) -> None:
    import struct

    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    target = tmp_path / "m.safetensors"
    target.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 8)
    code = (
        "import sys; from modelshield.scan import scan; r = scan([sys.argv[1]]); "
        "print(r.verdict.value, sorted(m for m in sys.modules if m.startswith('modelshield.analyzers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    verdict, _, modules = out.stdout.partition(" ")
    assert verdict == "pass"
    assert "pickle_globals" not in modules and "python_code" not in modules
    assert "tamper_structure" in modules  # the analyzer for safetensors headers did run
