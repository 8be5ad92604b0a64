"""``modelshield detonate PATH``: load a model for real in the sandbox and show what it tried to do."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, float_at_least, int_at_least

if TYPE_CHECKING:
    from modelshield.cli._args import Commands

DETONATE_FORMATS = ("text", "json")
BACKENDS = ("auto", "bwrap", "unshare")


def register(commands: Commands) -> None:
    """Add the ``detonate`` command to the CLI."""
    parser = add_command(commands, "detonate", detonate)
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="Model file or folder (every loadable file in it is detonated)."
    )
    parser.add_argument("--format", "-f", dest="fmt", choices=DETONATE_FORMATS, default="text", help="Output format.")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="Write the event log here.")
    parser.add_argument(
        "--timeout",
        type=float_at_least(1.0),
        default=60.0,
        metavar="SECONDS",
        help="Wall-clock limit per load, in seconds.",
    )
    parser.add_argument(
        "--memory-mb", type=int_at_least(64), default=2048, metavar="MIB", help="Memory budget per load, in MiB."
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="Isolation backend.")
    parser.add_argument(
        "--jobs", "-j", type=int_at_least(1), default=1, metavar="N", help="Run N detonations at a time."
    )


def detonate(path: Path, fmt: str, output: Path | None, timeout: float, memory_mb: int, backend: str, jobs: int) -> int:
    """Load the model inside an isolated sandbox (dynamic analysis only) and report every attempt.

    Exit 0: nothing observed; 1: findings (attempts, or incomplete coverage); 2: error or no
    sandbox available (the model is never loaded unsandboxed); 3: nothing loadable found.
    """
    from modelshield.cli.main import write_output
    from modelshield.sandbox.detonate_cli import render_detonations, run_detonations

    results, text, blocking = run_detonations(str(path), timeout, memory_mb, backend, jobs)
    if not results:
        print(f"nothing in {path} has a loader modelshield can detonate", file=sys.stderr)
        return 3
    write_output(render_detonations(results, fmt), output)
    if fmt != "text" or output is not None:
        print(text, file=sys.stderr)
    return 1 if blocking else 0
