"""``modelshield diff``, ``modelshield weight-stats`` and ``modelshield deep-scan``: tampering and backdoors.

Only the standard library at import time; the implementations (numpy, torch) load lazily.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, float_at_least, int_at_least

if TYPE_CHECKING:
    from modelshield.cli._args import Commands

DIFF_FORMATS = ("text", "json")


def register(commands: Commands) -> None:
    """Add the ``diff``, ``weight-stats`` and ``deep-scan`` commands to the CLI."""
    parser = add_command(commands, "diff", diff)
    parser.add_argument("reference", type=Path, metavar="REFERENCE", help="The trusted base model (file or folder).")
    parser.add_argument("candidate", type=Path, metavar="CANDIDATE", help="The model to compare with it.")
    parser.add_argument("--format", "-f", dest="fmt", choices=DIFF_FORMATS, default="text", help="Output format.")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="Write the diff here.")

    parser = add_command(commands, "weight-stats", weight_stats)
    parser.add_argument("model", type=Path, metavar="MODEL", help="Model file or folder.")
    parser.add_argument(
        "--top", type=int_at_least(1), default=15, metavar="N", help="Show this many of the most unusual tensors."
    )

    parser = add_command(commands, "deep-scan", deep_scan)
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="safetensors weights of a small image classifier (plain CNN)."
    )
    parser.add_argument("--input", dest="input_shape", default="3x16x16", metavar="CxHxW", help="Input shape CxHxW.")
    parser.add_argument(
        "--samples",
        type=Path,
        metavar="FILE",
        help="Clean sample images, a .npy array N,C,H,W in [0,1] (default: noise).",
    )
    parser.add_argument("--arch", metavar="OPS", help="Op list, e.g. conv,relu,pool,flatten,linear.")
    parser.add_argument(
        "--budget", type=float_at_least(1.0), default=120.0, metavar="SECONDS", help="Time budget in seconds."
    )
    parser.add_argument("--threshold", type=float, help="Anomaly-index threshold (default: calibrated).")
    parser.add_argument("--trigger-png", type=Path, metavar="FILE", help="Save the suspect trigger here.")


def _need_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        from modelshield.errors import UsageError

        raise UsageError("this command needs numpy", hint="pip install 'modelshield[tamper]'") from None


def diff(reference: Path, candidate: Path, fmt: str, output: Path | None) -> int:
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
    if fmt == "json":
        write_output(json.dumps(diff_dict(result), indent=2) + "\n", output)
        print(text.splitlines()[-1], file=sys.stderr)
    else:
        write_output(text, output)
    return 0 if result.classification.kind in ("identical", "round-trip") else 1


def weight_stats(model: Path, top: int) -> int:
    """Per-tensor weight statistics (mean, std, kurtosis, outlier rows). Informational, never a verdict."""
    _need_numpy()
    from modelshield.tamper.stats import model_stats, render_stats

    sys.stdout.write(render_stats(model_stats(model), top=top))
    return 0


def deep_scan(
    model: Path,
    input_shape: str,
    samples: Path | None,
    arch: str | None,
    budget: float,
    threshold: float | None,
    trigger_png: Path | None,
) -> int:
    """Neural-Cleanse trigger reverse-engineering of a small image classifier (needs torch).

    Exit 0: no trigger found beyond the calibrated threshold; 1: trigger suspected; 2: error.
    """
    from modelshield.tamper.deep_cli import run_deep_scan

    flagged = run_deep_scan(model, input_shape, samples, arch, budget, threshold, trigger_png)
    return 1 if flagged else 0
