"""``modelshield fleet scan``: scan a list of models on Ray, with the content-addressed verdict cache.

Also the Ray side of ``modelshield scan --engine ray`` (:func:`scan_on_ray`). Only argparse and the
standard library at import time; Ray is imported when a sweep starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING, Any

from modelshield.cli._args import add_command, add_group, float_at_least, int_at_least

if TYPE_CHECKING:
    from pathlib import Path

    from modelshield.cli._args import Commands
    from modelshield.fleet.engine import FileResult, FleetConfig
    from modelshield.scan import Outcome

FLEET_FORMATS = ("jsonl", "json", "sarif", "text")
FAIL_ON = ("info", "low", "medium", "high", "critical")


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _limit_override(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r} (e.g. --limit max_opcodes=100000000)")
    return name.strip(), value.strip()


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--address`` and ``--ray-cpus``, shared with ``modelshield scan --engine ray``."""
    parser.add_argument(
        "--address",
        metavar="ADDRESS",
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start a local Ray with this machine's cores).",
    )
    parser.add_argument(
        "--ray-cpus", type=int_at_least(1), metavar="N", help="CPUs of the local Ray started without --address."
    )


def register(commands: Commands) -> None:
    """Add the ``fleet`` command group (``fleet scan``)."""
    group = add_group(commands, "fleet", "Scan fleets of models on a Ray cluster with a content-addressed cache.")
    parser = add_command(group, "scan", fleet_scan)
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="Targets besides those of --from.")
    parser.add_argument(
        "--from",
        dest="lists",
        action="append",
        type=str,
        metavar="LIST",
        help="File with one target per line: paths, hf://org/name, file://, s3:// or other fsspec URLs ('-': stdin).",
    )
    parser.add_argument(
        "--format",
        "-f",
        dest="fmt",
        choices=FLEET_FORMATS,
        default="jsonl",
        help="Output: a line per file as it "
        "is done (jsonl), or the whole report at the end, as a local scan writes it.",
    )
    parser.add_argument("--output", "-o", type=_path, metavar="FILE", help="Write the output here, not to stdout.")
    parser.add_argument(
        "--stream", type=_path, metavar="FILE", help="With json/sarif/text: also stream JSON Lines here."
    )
    add_ray_options(parser)
    parser.add_argument(
        "--max-in-flight", type=int_at_least(1), metavar="N", help="Tasks in flight at most (default: 2 per CPU)."
    )
    parser.add_argument(
        "--max-retries", type=int_at_least(0), default=3, metavar="N", help="Retries of a task whose worker died."
    )
    parser.add_argument(
        "--batch-files",
        type=int_at_least(1),
        default=32,
        metavar="N",
        help="Small files (up to 1 MiB) scanned per Ray task (1: a task per file).",
    )
    parser.add_argument(
        "--timeout", type=float_at_least(0.1), metavar="SECONDS", help="Per-file time limit (default: the limits')."
    )
    parser.add_argument(
        "--connect-timeout",
        type=float_at_least(0.1),
        default=10.0,
        metavar="SECONDS",
        help="Wait this long for a cluster address to answer.",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="Write every target into the catalog in this database (models, files, statuses), with the "
        "cache and the per-file log: sqlite:///PATH or postgresql+psycopg://... (migrated first).",
    )
    parser.add_argument("--no-cache", action="store_true", help="Analyse every file, even when a verdict is cached.")
    parser.add_argument(
        "--fail-on", choices=FAIL_ON, default="medium", help="Lowest severity that makes the sweep fail (exit 1)."
    )
    parser.add_argument("--exit-zero", action="store_true", help="Exit 0 even when findings fail the sweep.")
    parser.add_argument(
        "--limit", action="append", type=_limit_override, metavar="NAME=VALUE", help="Override a parser limit."
    )
    parser.add_argument("--policy", type=_path, metavar="FILE", help="Gate the result with this policy file.")
    parser.add_argument("--profile", metavar="NAME", help="Risk profile to apply.")
    parser.add_argument("--env", action="store_true", help="Match CVEs against the loaders installed here.")


class _Stream:
    """Writes one JSON line per file result as it arrives (stdout or a file), flushed each time."""

    def __init__(self, out: IO[str], fail_on: Any) -> None:
        self.out = out
        self.fail_on = fail_on

    def __call__(self, result: FileResult) -> None:
        import json

        self.out.write(json.dumps(result.line(self.fail_on), separators=(",", ":")) + "\n")
        self.out.flush()


def _open(path: Path | None) -> IO[str]:
    from modelshield.errors import UsageError

    if path is None:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot write output file {path}: {exc.strerror}", hint="check the folder exists") from None


def _exit_code(outcome: Outcome, exit_zero: bool) -> int:
    report = outcome.report
    if outcome.blocking and not exit_zero:
        return 1
    recognised = [a for a in report.artifacts if a.format not in {"unknown", "empty", "unscanned"}]
    if report.files_scanned == 0 or not recognised:
        print("nothing scannable was found in the given targets", file=sys.stderr)
        return 3
    return 0


def _options(fail_on: str, timeout: float | None, limit: list[tuple[str, str]] | None) -> Any:
    from modelshield.limits import Limits
    from modelshield.scan import ScanOptions
    from modelshield.types import Severity

    return ScanOptions(Limits().with_overrides(dict(limit or [])), Severity.parse(fail_on), False, 1, timeout)


def _finish(outcome: Outcome, fmt: str, output: Path | None, summary: str, exit_zero: bool) -> int:
    from modelshield.render import render
    from modelshield.render.text import summary_line

    if outcome.decision is not None:
        from modelshield.policy.engine import render_decision

        print(render_decision(outcome.decision), file=sys.stderr)
    if fmt != "jsonl":
        out = _open(output)  # not cli.main's write_output: main imports this module (no cycle)
        try:
            out.write(render(outcome.report, fmt))
            out.flush()
        finally:
            if out is not sys.stdout:
                out.close()
    print(summary, file=sys.stderr)
    print(summary_line(outcome.report), file=sys.stderr)
    return _exit_code(outcome, exit_zero)


def fleet_scan(
    targets: list[str],
    lists: list[str] | None,
    fmt: str,
    output: Path | None,
    stream: Path | None,
    address: str | None,
    ray_cpus: int | None,
    max_in_flight: int | None,
    max_retries: int,
    batch_files: int,
    timeout: float | None,
    connect_timeout: float,
    database_url: str | None,
    no_cache: bool,
    fail_on: str,
    exit_zero: bool,
    limit: list[tuple[str, str]] | None,
    policy: Path | None,
    profile: str | None,
    env: bool,
) -> int:
    """Scan every file of a list of models on Ray; a JSON line per file as it is done.

    Each file is one Ray task running the same per-file scan as ``scan --jobs``. A verdict cache
    keyed by content (SHA-256, rules, advisory data, engine version) means byte-identical files are
    analysed once, across sweeps too. Files that cannot be fetched, change while listed, or crash
    their worker are coverage findings: the report has exactly one result per listed file.
    """
    from modelshield.fleet.engine import FleetConfig
    from modelshield.fleet.listing import read_list
    from modelshield.scan import Stages

    every = list(targets)
    for item in lists or ():
        every.extend(read_list(item))
    config = FleetConfig(
        address=address,
        num_cpus=ray_cpus,
        max_in_flight=max_in_flight,
        max_retries=max_retries,
        batch_files=batch_files,
        connect_timeout_s=connect_timeout,
        database_url=database_url,
        cache=not no_cache,
    )
    stages = Stages(policy_file=str(policy) if policy is not None else None, profile=profile, use_env=env)
    return _sweep(every, _options(fail_on, timeout, limit), config, stages, fmt, output, stream, exit_zero, False)


def _sweep(
    targets: list[str],
    options: Any,
    config: FleetConfig,
    stages: Any,
    fmt: str,
    output: Path | None,
    stream: Path | None,
    exit_zero: bool,
    strict: bool,
) -> int:
    from modelshield.fleet.engine import run_fleet

    sink = _open(output if fmt == "jsonl" else stream) if fmt == "jsonl" or stream is not None else None
    try:
        on_result = _Stream(sink, options.fail_on) if sink is not None else None
        outcome, stats = run_fleet(targets, options, config, stages, strict=strict, on_result=on_result)
    finally:
        if sink is not None and sink is not sys.stdout:
            sink.close()
    return _finish(outcome, fmt, output, stats.summary(), exit_zero)


def scan_on_ray(
    targets: list[str],
    options: Any,
    stages: Any,
    fmt: str,
    output: Path | None,
    exit_zero: bool,
    address: str | None,
    ray_cpus: int | None,
) -> int:
    """``modelshield scan --engine ray``: the same report as a local scan, computed on Ray."""
    from modelshield.fleet.engine import FleetConfig

    config = FleetConfig(address=address, num_cpus=ray_cpus)
    return _sweep(targets, options, config, stages, fmt, output, None, exit_zero, True)
