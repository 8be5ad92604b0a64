"""``modelshield diff``, ``modelshield weight-stats`` and ``modelshield deep-scan``: tampering and backdoors.

Only typer and the standard library at import time; the implementations (numpy, torch) load lazily.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class DiffFormat(StrEnum):
    """Output formats of ``diff``."""

    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the ``diff``, ``weight-stats`` and ``deep-scan`` commands to the CLI."""
    app.command()(diff)
    app.command("weight-stats")(weight_stats)
    app.command("deep-scan")(deep_scan)


def _need_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        from modelshield.errors import UsageError

        raise UsageError("this command needs numpy", hint="pip install 'modelshield[tamper]'") from None


def diff(
    reference: Annotated[Path, typer.Argument(help="The trusted base model (file or folder).")],
    candidate: Annotated[Path, typer.Argument(help="The model to compare with it.")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f", help="Output format.")] = DiffFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the diff here.")] = None,
) -> None:
    """Compare two models tensor by tensor and say what kind of change it is.

    Exit 0: identical or only rounding (dtype round-trip, re-quantisation); 1: any other change
    (edit, merged adapter, fine-tune, architecture or header change); 2: error.
    """
    _need_numpy()
    import json

    from modelshield.cli.main import write_output
    from modelshield.tamper.diff import diff_models
    from modelshield.tamper.report import diff_dict, render_text

    result = diff_models(reference, candidate)
    text = render_text(result)
    if fmt is DiffFormat.json:
        write_output(json.dumps(diff_dict(result), indent=2) + "\n", output)
        typer.echo(text.splitlines()[-1], err=True)
    else:
        write_output(text, output)
    raise typer.Exit(0 if result.classification.kind in ("identical", "round-trip") else 1)


def weight_stats(
    model: Annotated[Path, typer.Argument(help="Model file or folder.")],
    top: Annotated[int, typer.Option(min=1, help="Show this many of the most unusual tensors.")] = 15,
) -> None:
    """Per-tensor weight statistics (mean, std, kurtosis, outlier rows). Informational, never a verdict."""
    _need_numpy()
    from modelshield.tamper.stats import model_stats, render_stats

    typer.echo(render_stats(model_stats(model), top=top), nl=False)
    raise typer.Exit(0)


def deep_scan(
    model: Annotated[Path, typer.Argument(help="safetensors weights of a small image classifier (plain CNN).")],
    input_shape: Annotated[str, typer.Option("--input", help="Input shape CxHxW.")] = "3x16x16",
    samples: Annotated[
        Path | None, typer.Option(help="Clean sample images, a .npy array N,C,H,W in [0,1] (default: noise).")
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Op list, e.g. conv,relu,pool,flatten,linear.")] = None,
    budget: Annotated[float, typer.Option(min=1.0, help="Time budget in seconds.")] = 120.0,
    threshold: Annotated[float | None, typer.Option(help="Anomaly-index threshold (default: calibrated).")] = None,
    trigger_png: Annotated[Path | None, typer.Option("--trigger-png", help="Save the suspect trigger here.")] = None,
) -> None:
    """Neural-Cleanse trigger reverse-engineering of a small image classifier (needs torch).

    Exit 0: no trigger found beyond the calibrated threshold; 1: trigger suspected; 2: error.
    """
    from modelshield.tamper.deep_cli import run_deep_scan

    flagged = run_deep_scan(model, input_shape, samples, arch, budget, threshold, trigger_png)
    raise typer.Exit(1 if flagged else 0)
