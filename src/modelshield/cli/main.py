"""The ``modelshield`` command. Thin: parse -> call the library -> render -> exit code.

Exit codes (one place, :func:`run`): 0 pass, 1 findings at/above the threshold or policy denied,
2 error (bad arguments, unreadable target), 3 nothing scannable.

Other commands live in ``modelshield/cli/cmd_*.py`` modules, each with a ``register(commands)``
function; they are discovered here by file name. At module level they import only argparse and
the standard library, so ``modelshield --help`` stays fast; the library is imported inside each
command.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING

from modelshield import __version__
from modelshield.cli._args import Handler, add_command, add_commands, float_at_least, int_at_least, new_parser
from modelshield.errors import ModelShieldError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from modelshield.cli._args import Commands

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_NOTHING = 3

DESCRIPTION = "Zero-trust security gate for AI models: scan model files without ever executing them."
OUTPUT_FORMATS = ("text", "json", "sarif", "html", "cyclonedx")
FAIL_ON = ("info", "low", "medium", "high", "critical")


def _path(text: str) -> Path:
    """argparse type for paths (pathlib is imported only when a path option is given: ~2 ms)."""
    from pathlib import Path

    return Path(text)


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


def _limit_override(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r} (e.g. --limit max_opcodes=100000000)")
    return name.strip(), value.strip()


def scan(
    targets: list[str],
    fmt: str,
    output: Path | None,
    fail_on: str,
    exit_zero: bool,
    jobs: int,
    timeout: float | None,
    compute_hashes: bool,
    limit: list[tuple[str, str]] | None,
    no_progress: bool,
    attest: bool,
    key: str | None,
    card: bool,
    valid_days: float,
    policy: Path | None,
    profile: str | None,
    env: bool,
    trust: Path | None,
    dynamic: bool,
    rules: list[Path] | None,
    reference: Path | None,
    deep: bool,
    online: bool = False,
    only_models: bool = False,
    engine: str = "local",
    address: str | None = None,
    ray_cpus: int | None = None,
) -> int:
    """Scan model files statically. Nothing in them is ever executed."""
    from modelshield.cli.progress import make_observer
    from modelshield.limits import Limits
    from modelshield.render import render
    from modelshield.render.text import summary_line
    from modelshield.scan import ScanOptions, Stages, run_pipeline
    from modelshield.types import Severity

    limits = Limits().with_overrides(dict(limit or []))
    if rules:
        from modelshield.analyzers.yara_rules import use_user_rules

        use_user_rules([str(r) for r in rules])
    if fmt == "text" and output is not None and output.suffix.lower() in (".html", ".htm"):
        fmt = "html"  # -o report.html alone means the HTML report
    # the BOM carries every file's SHA-256
    options = ScanOptions(limits, Severity.parse(fail_on), compute_hashes or fmt == "cyclonedx", jobs, timeout)
    if online or only_models:
        from modelshield._record import replace

        options = replace(options, online=online, only_models=only_models)
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
    if engine == "ray":  # each file a Ray task (modelshield.fleet), the same report
        from modelshield.cli.cmd_fleet import scan_on_ray

        return scan_on_ray(targets, options, stages, fmt, output, exit_zero, address, ray_cpus)
    with make_observer(enabled=not no_progress) as observer:
        outcome = run_pipeline(targets, options, stages, observer)
    report = outcome.report
    if outcome.decision is not None:
        from modelshield.policy.engine import render_decision

        print(render_decision(outcome.decision), file=sys.stderr)
    if outcome.attestation is not None:
        attestation = outcome.attestation
        print(f"attestation: {attestation.path} (verdict {attestation.verdict})", file=sys.stderr)
    write_output(render(report, fmt), output)
    if fmt != "text" or output is not None:
        print(summary_line(report), file=sys.stderr)
    if outcome.blocking and not exit_zero:
        return EXIT_FINDINGS
    if only_models and report.files_scanned == 0:  # a hook handed no model file: nothing to gate
        print(f"no model files among the {report.files_skipped} given (--only-models)", file=sys.stderr)
        return EXIT_OK
    recognised = [a for a in report.artifacts if a.format not in {"unknown", "empty", "unscanned"}]
    if report.files_scanned == 0 or not recognised:
        print("nothing scannable was found in the given targets", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def demo(keep: Path | None, fmt: str) -> int:
    """Build harmless sample models (benign and malicious), scan them and show the report."""
    from modelshield.demo import run_demo

    return run_demo(keep, fmt)


def rules(fmt: str) -> int:
    """List every rule id with its default severity, category and title (json: with the full text)."""
    from modelshield.rules import RULES_VERSION, all_rules, load_all_rules

    load_all_rules()
    catalogue = sorted(all_rules().values(), key=lambda r: r.id)
    if fmt == "json":
        import json

        entries = [
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity.label,
                "category": r.category.value,
                "description": r.description,
                "remediation": r.remediation,
                "references": list(r.references),
            }
            for r in catalogue
        ]
        write_output(json.dumps({"rules_version": RULES_VERSION, "rules": entries}, indent=2) + "\n", None)
        return EXIT_OK
    for rule in catalogue:
        print(f"{rule.id:32} {rule.severity.label:8} {rule.category.value:15} {rule.title}")
    return EXIT_OK


def sign_bom(bom: Path, key: Path, output: Path | None) -> int:
    """Sign a CycloneDX BOM (scan -f cyclonedx) into a DSSE envelope: an in-toto statement over its files."""
    from modelshield.attest.signers import load_signer
    from modelshield.render.cyclonedx import ENVELOPE_SUFFIX, BomError, sign_bom

    try:
        data = bom.read_bytes()
    except OSError as exc:
        raise BomError(f"cannot read the BOM {bom}: {exc.strerror}", hint="check the path") from None
    target = output if output is not None else bom.with_name(bom.name + ENVELOPE_SUFFIX)
    write_output(sign_bom(data, load_signer(key), str(bom)), target)
    print(f"signed BOM envelope: {target}", file=sys.stderr)
    return EXIT_OK


def verify_bom(envelope: Path, trust: Path, bom: Path | None, check_files: bool) -> int:
    """Verify a signed BOM envelope: trusted signer, the BOM it signed, and (--check-files) the files' digests."""
    from modelshield.attest.truststore import TrustStore
    from modelshield.render.cyclonedx import BomError, verify_bom

    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BomError(f"cannot read the {what} {path}: {exc.strerror}", hint="check the path") from None

    data = read(envelope, "BOM envelope")
    bom_data = read(bom, "BOM") if bom is not None else None
    store = TrustStore.load(trust)
    result = verify_bom(data, store, bom_json=bom_data, check_files=check_files, origin=str(envelope))
    print(result.message())
    return result.exit_code


def _register_bom(commands: Commands) -> None:
    parser = add_command(commands, "sign-bom", sign_bom)
    parser.add_argument("bom", type=_path, metavar="BOM", help="CycloneDX JSON BOM written by scan -f cyclonedx.")
    parser.add_argument("--key", type=_path, required=True, metavar="FILE", help="Private key (modelshield keygen).")
    parser.add_argument(
        "--output", "-o", type=_path, metavar="FILE", help="Where to write the envelope (default: BOM.dsse.json)."
    )
    parser = add_command(commands, "verify-bom", verify_bom)
    parser.add_argument("envelope", type=_path, metavar="ENVELOPE", help="The DSSE envelope written by sign-bom.")
    parser.add_argument(
        "--trust", type=_path, required=True, metavar="PATH", help="Trust store: a folder of *.pub keys or a key file."
    )
    parser.add_argument("--bom", type=_path, metavar="FILE", help="Also check this BOM file is the one signed.")
    parser.add_argument(
        "--check-files", action="store_true", help="Also re-hash the BOM's files (paths as scanned) against it."
    )


def _register_scan(commands: Commands) -> None:
    parser = add_command(commands, "scan", scan)
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="Model files, folders (recursive), archives, hf://org/name[@rev], "
        "mlflow://models/NAME/VERSION, runs:/ID/PATH.",
    )
    parser.add_argument(
        "--format", "-f", dest="fmt", choices=OUTPUT_FORMATS, default="text", help="Machine output format."
    )
    parser.add_argument("--output", "-o", type=_path, metavar="FILE", help="Write the report here, not to stdout.")
    parser.add_argument(
        "--fail-on", choices=FAIL_ON, default="medium", help="Lowest severity that makes the scan fail (exit 1)."
    )
    parser.add_argument("--exit-zero", action="store_true", help="Exit 0 even when findings fail the scan.")
    parser.add_argument(
        "--jobs", "-j", type=int_at_least(1), default=1, metavar="N", help="Scan files in N isolated worker processes."
    )
    parser.add_argument(
        "--timeout",
        type=float_at_least(0.1),
        metavar="SECONDS",
        help="Per-file time limit in seconds (kills a worker that exceeds it; bounds --dynamic loads too).",
    )
    parser.add_argument("--hash", dest="compute_hashes", action="store_true", help="Compute the SHA-256 of every file.")
    parser.add_argument(
        "--limit",
        action="append",
        type=_limit_override,
        metavar="NAME=VALUE",
        help="Override a parser limit, NAME=VALUE (repeatable).",
    )
    parser.add_argument("--no-progress", action="store_true", help="Never show a progress bar.")
    parser.add_argument("--attest", action="store_true", help="Sign the result into an attestation sidecar.")
    parser.add_argument("--key", metavar="FILE", help="Private key for --attest (modelshield keygen).")
    parser.add_argument(
        "--card",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="With --attest: update the README.md card.",
    )
    parser.add_argument(
        "--valid-days", type=float, default=90.0, metavar="DAYS", help="With --attest: days until it expires."
    )
    parser.add_argument(
        "--policy", type=_path, metavar="FILE", help="Gate the result with this policy file (exit 1 when denied)."
    )
    parser.add_argument("--profile", metavar="NAME", help="Risk profile to apply (default: chosen by the policy).")
    parser.add_argument("--env", action="store_true", help="Match CVEs against the loaders installed here.")
    parser.add_argument(
        "--trust", type=_path, metavar="PATH", help="With --policy: trust store for the signature/attestation rules."
    )
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="Also load each model in an isolated sandbox and report what it tries.",
    )
    parser.add_argument(
        "--rules",
        action="append",
        type=_path,
        metavar="DIR",
        help="Also apply the YARA rules (.yar) in this folder (repeatable).",
    )
    parser.add_argument(
        "--reference", type=_path, metavar="MODEL", help="Diff the weights against this trusted base model."
    )
    parser.add_argument(
        "--deep", action="store_true", help="Trigger reverse-engineering of small image classifiers (torch)."
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help="Allow downloads: fetch hf://org/name[@rev] from the Hub into the HF cache first (hub extra).",
    )
    parser.add_argument(
        "--only-models",
        action="store_true",
        help="Leave out files that are not models (text, code, scripts, JSON/YAML); none left is exit 0 (hooks).",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="Where files are scanned: here, or one Ray task per file (pip install 'modelshield[ray]').",
    )
    parser.add_argument("--address", metavar="ADDRESS", help="With --engine ray: auto, HOST:PORT or ray://HOST:PORT.")
    parser.add_argument(
        "--ray-cpus", type=int_at_least(1), metavar="N", help="With --engine ray and no --address: local Ray CPUs."
    )


def _register_core(commands: Commands) -> None:
    _register_scan(commands)
    parser = add_command(commands, "demo", demo)
    parser.add_argument(
        "--keep", type=_path, metavar="DIR", help="Write the samples here and keep them (default: a temp folder)."
    )
    parser.add_argument("--format", "-f", dest="fmt", choices=OUTPUT_FORMATS, default="text", help="Report format.")
    parser = add_command(commands, "rules", rules)
    parser.add_argument("--format", "-f", dest="fmt", choices=("text", "json"), default="text", help="Output format.")
    _register_bom(commands)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree: the core commands here, then every ``cmd_*`` module's.

    ``command`` is the first argument. When it names a core command (``scan``, ...), the rest of
    the line goes to that command's parser alone, so the ``cmd_*`` modules are not even imported.
    """
    parser = new_parser("modelshield", DESCRIPTION)
    parser.add_argument(
        "--version", action="version", version=f"modelshield {__version__}", help="Show the version and exit."
    )
    commands = add_commands(parser)
    _register_core(commands)
    if command in commands.choices:
        return parser
    for name in _command_modules():
        importlib.import_module(f"modelshield.cli.{name}").register(commands)
    return parser


def _command_modules() -> list[str]:
    # A folder listing, not pkgutil.iter_modules: that imports inspect (~5 ms) on every run.
    folder = os.path.dirname(os.path.abspath(__file__))
    return sorted(name[:-3] for name in os.listdir(folder) if name.startswith("cmd_") and name.endswith(".py"))


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command and return its exit code; the one place errors become codes.

    Bad arguments exit 2 through argparse (usage and message on stderr); a bare command group
    prints its help and returns 2; library errors are printed with their hint and return 2.
    """
    try:
        return _dispatch(argv)
    except ModelShieldError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head`); the final flush must not fail again
        return EXIT_ERROR


def _dispatch(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _apply_settings(build_parser(argv[0] if argv else None), argv)
    args, unknown = parser.parse_known_args(argv)
    command_parser: argparse.ArgumentParser = args._parser
    if unknown:
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler | None = args._handler
    if handler is None:  # a bare group (or bare `modelshield`): show what it offers
        command_parser.print_help()
        return EXIT_ERROR
    return handler(**{name: value for name, value in vars(args).items() if not name.startswith("_")})


def _apply_settings(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """Give the chosen command's options their ``MODELSHIELD_*`` / config-file values (flags still win).

    Returns the parser to parse ``argv`` with: with a config file, the whole command tree (every key
    of the file is checked against it), else ``parser`` itself.
    """
    from modelshield import config

    path, command_parser = config.command_path(parser, argv)
    if not path:
        return parser
    found = config.find_config_file()
    if found is not None:
        parser = build_parser()
        path, command_parser = config.command_path(parser, argv)
    applied = config.apply(command_parser, path, config=found, root=parser if found is not None else None)
    given = {word.split("=", 1)[0] if word.startswith("--") else word[:2] for word in argv if word.startswith("-")}
    flags = {a.dest for a in command_parser._actions if given & set(a.option_strings)}
    from_file = [s.option for s in applied if s.source.startswith("file ") and s.dest not in flags]
    if from_file and found is not None:  # said every time: a settings file can change what a gate decides
        print(f"modelshield: {', '.join(from_file)} from {found.path}", file=sys.stderr)
    return parser


def _silence_stdout() -> None:
    from contextlib import suppress

    with suppress(OSError, ValueError):  # stdout without a file descriptor (captured): nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the command and exit with its code.

    Before exiting, every object still alive is moved out of the cyclic garbage collector's view
    (``gc.freeze``): the interpreter's final collections would otherwise walk everything the scan
    created (~13 ms, a sixth of a small scan). Objects are still released by reference counting;
    output is flushed explicitly and nothing of ours relies on collecting cycles at exit.
    """
    code = run(argv)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    gc.freeze()
    sys.exit(code)
