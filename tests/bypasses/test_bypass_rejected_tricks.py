"""Name-mangling tricks that the real unpickler rejects, proven in a subprocess, so the scanner need not chase them.

Whitespace-padded, CR-terminated or Unicode look-alike module/attribute names in GLOBAL/STACK_GLOBAL are passed
verbatim to ``__import__``/``getattr`` (no stripping, no NFKC normalisation), so the load fails before any call.
If one of these ever starts firing (a Python change), this test fails and the trick joins the corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.corpus.asm import Asm, G, call, program

TRICKS: dict[str, tuple[str, str]] = {
    "trailing-space-module": ("os ", "system"),
    "leading-space-module": (" os", "system"),
    "cr-terminated-module": ("os\r", "system"),
    "trailing-space-name": ("os", "system "),
    "fullwidth-module": ("\uff4f\uff53", "system"),
    "fullwidth-name": ("os", "\uff53\uff59\uff53\uff54\uff45\uff4d"),
    "tab-module": ("os\t", "system"),
}


def _samples(tmp: Path) -> dict[str, tuple[Path, Path]]:
    out = {}
    for label, (module, name) in TRICKS.items():
        for opcode in ("global", "stack-global"):
            canary = tmp / f"canary-{label}-{opcode}"
            if opcode == "global":
                data = Asm(2).header().global_(module, name).str(f"touch {canary}").op(b"\x85R.").build()
            else:
                data = program(call(G(module, name), f"touch {canary}"), 4)
            path = tmp / f"{label}-{opcode}.pkl"
            path.write_bytes(data)
            out[f"{label}-{opcode}"] = (path, canary)
    return out


def test_real_loader_rejects_mangled_names(tmp_path: Path) -> None:
    """Every mangled-name pickle fails to load and creates no canary."""
    samples = _samples(tmp_path)
    code = (
        "import json, pickle, sys\nres = {}\nfor name, path in json.loads(sys.argv[1]).items():\n"
        "    try:\n        pickle.load(open(path, 'rb'))\n        res[name] = 'loaded'\n"
        "    except Exception as e:\n        res[name] = type(e).__name__\nprint(json.dumps(res))"
    )
    arg = json.dumps({k: str(p) for k, (p, _) in samples.items()})
    result = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    outcomes = json.loads(result.stdout)
    assert all(v != "loaded" for v in outcomes.values()), outcomes
    assert not [k for k, (_, canary) in samples.items() if canary.exists()]
