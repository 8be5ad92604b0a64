"""``modelshield detonate PATH``: load a model for real in the sandbox and show what it tried to do."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class DetonateFormat(StrEnum):
    """Output formats of ``detonate``."""

    text = "text"
    json = "json"


class BackendChoice(StrEnum):
    """Isolation backends."""

    auto = "auto"
    bwrap = "bwrap"
    unshare = "unshare"


def register(app: typer.Typer) -> None:
    """Add the ``detonate`` command to the CLI."""
    app.command()(detonate)


def detonate(
    path: Annotated[Path, typer.Argument(help="Model file or folder (every loadable file in it is detonated).")],
    fmt: Annotated[DetonateFormat, typer.Option("--format", "-f", help="Output format.")] = DetonateFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the event log here.")] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="Wall-clock limit per load, in seconds.")] = 60.0,
    memory_mb: Annotated[int, typer.Option(min=64, help="Memory budget per load, in MiB.")] = 2048,
    backend: Annotated[BackendChoice, typer.Option(help="Isolation backend.")] = BackendChoice.auto,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Run N detonations at a time.")] = 1,
) -> None:
    """Load the model inside an isolated sandbox (dynamic analysis only) and report every attempt.

    Exit 0: nothing observed; 1: findings (attempts, or incomplete coverage); 2: error or no
    sandbox available (the model is never loaded unsandboxed); 3: nothing loadable found.
    """
    from modelshield.cli.main import write_output
    from modelshield.sandbox.detonate_cli import render_detonations, run_detonations

    results, text, blocking = run_detonations(str(path), timeout, memory_mb, backend.value, jobs)
    if not results:
        typer.echo(f"nothing in {path} has a loader modelshield can detonate", err=True)
        raise typer.Exit(3)
    write_output(render_detonations(results, fmt.value), output)
    if fmt is not DetonateFormat.text or output is not None:
        typer.echo(text, err=True)
    raise typer.Exit(1 if blocking else 0)
