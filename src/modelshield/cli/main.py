"""The ``modelshield`` command. Thin: parse -> call the library -> render -> exit code.

Exit codes (one place, here): 0 pass, 1 findings at/above the threshold or policy denied,
2 error (bad arguments, unreadable target), 3 nothing scannable.

Other command groups live in ``modelshield/cli/cmd_*.py`` modules, each with a
``register(app)`` function; they are discovered here and must import their heavy parts lazily.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from modelshield import __version__
from modelshield.errors import ModelShieldError, UsageError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_NOTHING = 3

app = typer.Typer(
    name="modelshield",
    help="Zero-trust security gate for AI models: scan model files without ever executing them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    """Machine output formats of ``scan``."""

    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(StrEnum):
    """Severities accepted by --fail-on."""

    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelshield {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Zero-trust security gate for AI models."""


def _parse_limits(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--limit expects NAME=VALUE, got {item!r}", hint="e.g. --limit max_opcodes=100000000")
        out[name.strip()] = value.strip()
    return out


def write_output(text: str, output: Path | None) -> None:
    """Write machine output to ``output`` or stdout; a clear error if the file cannot be written."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write output file {output}: {exc.strerror}", hint="check the folder exists") from None


@app.command()
def scan(
    targets: Annotated[list[str], typer.Argument(help="Model files, folders (recursive) or archives.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Machine output format.")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here, not to stdout.")] = None,
    fail_on: Annotated[FailOn, typer.Option(help="Lowest severity that makes the scan fail (exit 1).")] = FailOn.medium,
    exit_zero: Annotated[bool, typer.Option("--exit-zero", help="Exit 0 even when findings fail the scan.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Scan files in N isolated worker processes.")] = 1,
    timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Per-file time limit in seconds (kills the worker that exceeds it).")
    ] = None,
    compute_hashes: Annotated[bool, typer.Option("--hash", help="Compute the SHA-256 of every file.")] = False,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", help="Override a parser limit, NAME=VALUE (repeatable).")
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Never show a progress bar.")] = False,
    attest: Annotated[bool, typer.Option("--attest", help="Sign the result into an attestation sidecar.")] = False,
    key: Annotated[str | None, typer.Option("--key", help="Private key for --attest (modelshield keygen).")] = None,
    card: Annotated[bool, typer.Option("--card/--no-card", help="With --attest: update the README.md card.")] = True,
    valid_days: Annotated[float, typer.Option("--valid-days", help="With --attest: days until it expires.")] = 90.0,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Gate the result with this policy file (exit 1 when denied).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Risk profile to apply (default: chosen by the policy).")
    ] = None,
    env: Annotated[bool, typer.Option("--env", help="Match CVEs against the loaders installed here.")] = False,
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="With --policy: trust store for the signature/attestation rules."),
    ] = None,
    dynamic: Annotated[
        bool, typer.Option("--dynamic", help="Also load each model in an isolated sandbox and report what it tries.")
    ] = False,
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="Also apply the YARA rules (.yar) in this folder (repeatable).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Diff the weights against this trusted base model.")
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Trigger reverse-engineering of small image classifiers (torch).")
    ] = False,
) -> None:
    """Scan model files statically. Nothing in them is ever executed."""
    from modelshield.cli.progress import make_observer
    from modelshield.limits import Limits
    from modelshield.render import render
    from modelshield.render.text import summary_line
    from modelshield.scan import ScanOptions, Stages, run_pipeline
    from modelshield.types import Severity

    limits = Limits().with_overrides(_parse_limits(limit or []))
    if rules:
        from modelshield.analyzers.yara_rules import use_user_rules

        use_user_rules([str(r) for r in rules])
    options = ScanOptions(limits, Severity.parse(fail_on.value), compute_hashes, jobs, timeout)
    stages = Stages(
        dynamic=dynamic,
        reference=str(reference) if reference is not None else None,
        deep=deep,
        policy_file=str(policy) if policy is not None else None,
        profile=profile,
        use_env=env,
        trust=str(trust) if trust is not None else None,
        attest=attest,
        attest_key=key,
        attest_valid_days=valid_days,
        attest_card=card,
    )
    with make_observer(enabled=not no_progress) as observer:
        outcome = run_pipeline(targets, options, stages, observer)
    report = outcome.report
    if outcome.decision is not None:
        from modelshield.policy.engine import render_decision

        typer.echo(render_decision(outcome.decision), err=True)
    if outcome.attestation is not None:
        attestation = outcome.attestation
        typer.echo(f"attestation: {attestation.path} (verdict {attestation.verdict})", err=True)
    write_output(render(report, fmt.value), output)
    if fmt is not OutputFormat.text or output is not None:
        typer.echo(summary_line(report), err=True)
    if outcome.blocking and not exit_zero:
        raise typer.Exit(EXIT_FINDINGS)
    recognised = [a for a in report.artifacts if a.format not in {"unknown", "empty", "unscanned"}]
    if report.files_scanned == 0 or not recognised:
        typer.echo("nothing scannable was found in the given targets", err=True)
        raise typer.Exit(EXIT_NOTHING)
    raise typer.Exit(EXIT_OK)


@app.command()
def demo(
    keep: Annotated[
        Path | None, typer.Option(help="Write the samples here and keep them (default: a temp folder).")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.text,
) -> None:
    """Build harmless sample models (benign and malicious), scan them and show the report."""
    from modelshield.demo import run_demo

    raise typer.Exit(run_demo(keep, fmt.value))


@app.command()
def rules() -> None:
    """List every rule id with its default severity, category and title."""
    from modelshield._discovery import import_all
    from modelshield.rules import all_rules

    import_all("modelshield.formats")
    import_all("modelshield.analyzers")
    import_all("modelshield", skip=frozenset({"interface", "cli", "sandbox", "guard", "service", "__main__"}))
    for rule in sorted(all_rules().values(), key=lambda r: r.id):
        typer.echo(f"{rule.id:32} {rule.severity.label:8} {rule.category.value:15} {rule.title}")


def _register_command_modules() -> None:
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"modelshield.cli.{info.name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the app and map errors to exit codes.

    Usage errors (unknown option, bad value) exit 2 through typer; commands end with
    ``typer.Exit(code)``; library errors are caught here, printed with their hint, and exit 2.
    """
    _register_command_modules()
    try:
        app(args=argv, prog_name="modelshield")
    except ModelShieldError as exc:
        typer.echo(f"error: {exc.diagnostics()}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_ERROR)
