"""Command ``probe``: red-team and zero-trust checks of an OpenAI-compatible chat endpoint.

Imports of the implementation stay inside the command so ``modelshield --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, float_at_least, int_at_least
from modelshield.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from modelshield.cli._args import Commands
    from modelshield.probe.runner import Progress

FORMATS = ("text", "json", "sarif", "html")
PROFILES = ("experimental", "internal", "production", "regulated", "strict")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]probing[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("probe", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def probe(
    url: str,
    model: str | None,
    api_key_env: str | None,
    pack: str,
    family: list[str] | None,
    limit: int | None,
    repeats: int,
    fmt: str,
    output: Path | None,
    baseline: Path | None,
    save_baseline: Path | None,
    profile: str,
    sign: Path | None,
    statement: Path | None,
    valid_days: float,
    concurrency: int,
    timeout: float,
    retries: int,
    insecure: bool,
    max_bytes: int,
    temperature: float,
    seed: int,
    max_tokens: int,
    no_progress: bool,
    catalog: str | None,
    catalog_model: str | None,
    catalog_token_env: str,
) -> int:
    """Probe an OpenAI-compatible chat endpoint: transport and access checks, identity drift, and a
    red-team pack (injection, jailbreaks, leaks, data boundary, harmful requests, package
    hallucination, unsafe output), judged per risk profile.

    With --catalog and --catalog-model the signed statement is attached to the model's entry in a
    modelshield catalog (needs --sign and a publisher token in $MODELSHIELD_TOKEN); the catalog
    verifies it against the probe signers it trusts before it stores it.

    Exit codes: 0 pass, 1 warn or fail per the profile, 2 error (bad options, endpoint unusable,
    catalog unreachable or refusing the statement: the report and the statement are written first).
    """
    from modelshield.cli.main import write_output
    from modelshield.probe.render import render, summary_line
    from modelshield.probe.runner import ProbeOptions
    from modelshield.probe.runner import probe as run
    from modelshield.probe.runner import save_baseline as write_baseline

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise UsageError(f"--api-key-env {api_key_env}: the variable is not set or empty", hint="export it first")
    token = _catalog_token(catalog, catalog_model, catalog_token_env, sign)
    options = ProbeOptions(
        model=model,
        api_key=api_key,
        pack=pack,
        families=tuple(family or ()),
        limit=limit,
        repeats=repeats,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        insecure=insecure,
        max_bytes=max_bytes,
        temperature=temperature,
        seed=seed,
        max_tokens=max_tokens,
        profile=profile,
        baseline=baseline,
    )
    with _progress(not no_progress) as progress:
        report = run(url, options, progress=progress)
    write_output(render(report, fmt), output)
    print(summary_line(report), file=sys.stderr)
    if report.aborted:
        hints = [f.evidence for f in report.findings if f.rule_id == "PROBE-ENDPOINT-UNUSABLE" and f.evidence]
        print(f"error: {report.aborted}" + (f"\n  hint: {hints[0]}" if hints else ""), file=sys.stderr)
        return 2
    if save_baseline is not None:
        write_baseline(report, save_baseline)
        print(f"baseline written: {save_baseline}", file=sys.stderr)
    if sign is not None:
        from modelshield.probe.statement import sign_report

        target = statement or Path("probe-statement.dsse.json")
        keyid = sign_report(report, sign, target, valid_days=valid_days)
        print(f"probe statement: {target} (signed by {keyid})", file=sys.stderr)
        if catalog is not None and catalog_model is not None and token is not None:
            _attach(target, catalog, catalog_model, token)
    return 0 if report.verdict == "pass" else 1


def _catalog_token(catalog: str | None, model: str | None, token_env: str, sign: Path | None) -> str | None:
    """The catalog token when attaching; UsageError (before probing) for an incomplete --catalog setup."""
    if catalog is None and model is None:
        return None
    if catalog is None or not model:
        raise UsageError("--catalog and --catalog-model go together", hint="give the catalog URL and the model's name")
    if sign is None:
        raise UsageError("--catalog attaches the signed statement: it needs --sign KEY", hint="add --sign KEY")
    from modelshield.probe.catalog import probes_url

    probes_url(catalog, model)
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise UsageError(
            f"--catalog needs a publisher token in ${token_env}, which is not set or empty",
            hint=f"export {token_env}=TOKEN (modelshield token create --role publisher) or use --catalog-token-env",
        )
    return token


def _attach(statement: Path, catalog: str, model: str, token: str) -> None:
    """Post the signed statement to the catalog; CatalogError (exit 2) when it is refused."""
    from modelshield.probe.catalog import CatalogError, attach

    try:
        envelope = statement.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read the probe statement {statement}: {exc.strerror}") from None
    created = attach(envelope, catalog, model, token)
    print(
        f"attached to catalog model {model!r} as probe {created['id']} ({catalog.rstrip('/')}/ui/models/"
        f"{created.get('model_id')})",
        file=sys.stderr,
    )


def probe_attach(statement: Path, catalog: str, catalog_model: str, catalog_token_env: str) -> int:
    """Attach a signed probe statement (the file `modelshield probe --sign` wrote) to a model's entry
    in a modelshield catalog. The catalog verifies it against the probe signers it trusts before it
    stores it; it needs a publisher token in $MODELSHIELD_TOKEN (or --catalog-token-env).

    Exit codes: 0 attached, 2 error (bad options, unreadable file, catalog unreachable or refusing it).
    """
    token = _catalog_token(catalog, catalog_model, catalog_token_env, statement) or ""
    _attach(statement, catalog, catalog_model, token)
    return 0


def _add_catalog_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--catalog",
        required=required,
        metavar="SERVICE_URL",
        help="Attach the signed statement to a model in this modelshield catalog"
        + ("." if required else " (needs --sign and --catalog-model)."),
    )
    parser.add_argument(
        "--catalog-model", required=required, metavar="REF", help="The catalog model (name or id) to attach it to."
    )
    parser.add_argument(
        "--catalog-token-env",
        default="MODELSHIELD_TOKEN",
        metavar="VAR",
        help="Read the catalog's publisher token from this environment variable.",
    )


def register(commands: Commands) -> None:
    """Add the ``probe`` and ``probe-attach`` commands to the CLI."""
    attach = add_command(commands, "probe-attach", probe_attach)
    attach.add_argument("statement", metavar="FILE", type=Path, help="The signed probe statement (DSSE JSON).")
    _add_catalog_options(attach, required=True)
    parser = add_command(commands, "probe", probe)
    parser.add_argument("url", metavar="URL", help="The endpoint, e.g. http://127.0.0.1:8080 (with or without /v1).")
    parser.add_argument("--model", metavar="NAME", help="Model name to request (default: the first /v1/models lists).")
    parser.add_argument("--api-key-env", metavar="VAR", help="Read the API key from this environment variable.")
    parser.add_argument("--pack", default="default", metavar="NAME|FILE", help="Probe pack: default, smoke or a file.")
    parser.add_argument("--family", action="append", metavar="NAME", help="Only probes of this family (repeatable).")
    parser.add_argument("--limit", type=int_at_least(1), metavar="N", help="At most N probes per family.")
    parser.add_argument("--repeats", type=int_at_least(1), default=1, metavar="N", help="Send every probe N times.")
    parser.add_argument("--format", "-f", dest="fmt", choices=FORMATS, default="text", help="Report format.")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="Write the report here, not to stdout.")
    parser.add_argument("--baseline", type=Path, metavar="FILE", help="Compare the identity fingerprint with this.")
    parser.add_argument("--save-baseline", type=Path, metavar="FILE", help="Save the identity fingerprint here.")
    parser.add_argument("--profile", choices=PROFILES, default="internal", help="Risk profile deciding the verdict.")
    parser.add_argument("--sign", type=Path, metavar="KEY", help="Sign an in-toto statement (modelshield keygen key).")
    parser.add_argument(
        "--statement",
        type=Path,
        metavar="FILE",
        help="Where to write the signed statement (default: probe-statement.dsse.json).",
    )
    parser.add_argument(
        "--valid-days", type=float_at_least(0.01), default=30.0, metavar="DAYS", help="Statement validity."
    )
    parser.add_argument(
        "--concurrency", type=int_at_least(1), default=2, metavar="N", help="Requests in flight at most."
    )
    parser.add_argument("--timeout", type=float_at_least(0.1), default=60.0, metavar="SECONDS", help="Per request.")
    parser.add_argument("--retries", type=int_at_least(0), default=2, metavar="N", help="Retries of 429/5xx/refused.")
    parser.add_argument("--insecure", action="store_true", help="Accept an unverified TLS certificate (a finding).")
    parser.add_argument(
        "--max-bytes", type=int_at_least(1024), default=1 << 20, metavar="N", help="Read at most N bytes per answer."
    )
    parser.add_argument("--temperature", type=float_at_least(0.0), default=0.7, help="Sampling temperature of probes.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the probes (repeat i uses seed+i).")
    parser.add_argument("--max-tokens", type=int_at_least(1), default=64, metavar="N", help="Answer length per probe.")
    parser.add_argument("--no-progress", action="store_true", help="Never show a progress bar.")
    _add_catalog_options(parser, required=False)
