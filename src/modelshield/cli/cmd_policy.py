"""``modelshield policy``: check a model against a policy, show the effective policy, write a starter."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

policy_app = typer.Typer(help="Governance: risk profiles, rules and waivers.", no_args_is_help=True)


class CheckFormat(StrEnum):
    """Output of ``policy check``."""

    text = "text"
    json = "json"


@policy_app.command("check")
def check(
    targets: Annotated[list[str], typer.Argument(help="Model files or folders.")],
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy file (default: the built-in policy).")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Risk profile (default: chosen by the policy).")
    ] = None,
    env: Annotated[bool, typer.Option("--env", help="Match CVEs against the loaders installed here.")] = False,
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="Trust store: lets signature/attestation rules see a verified attestation."),
    ] = None,
    fmt: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the output here.")] = None,
) -> None:
    """Scan the model and decide whether the policy allows it (exit 1 when denied)."""
    import json

    from modelshield.cli.main import write_output
    from modelshield.policy.engine import render_decision
    from modelshield.policy.gate import Gate
    from modelshield.render.json import report_dict
    from modelshield.scan import Scanner

    gate = Gate.prepare(policy, profile, env, always=True, trust=trust)  # the whole policy is read before scanning
    report = gate.apply(Scanner().scan(targets))
    if gate.decision is None:  # pragma: no cover - always=True guarantees a policy
        raise typer.Exit(2)
    text = render_decision(gate.decision) + "\n"
    if fmt is CheckFormat.json:
        text = json.dumps(report_dict(report), indent=2) + "\n"
    write_output(text, output)
    if fmt is CheckFormat.json or output is not None:
        typer.echo(render_decision(gate.decision), err=True)
    raise typer.Exit(0 if gate.decision.allowed else 1)


@policy_app.command("show")
def show(
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy file (default: the built-in policy).")] = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema of policy files instead.")] = False,
) -> None:
    """Print the effective policy (validated, with defaults filled in) as YAML."""
    import json

    import yaml

    from modelshield.policy.engine import builtin_policy, policy_from_file
    from modelshield.policy.model import schema as policy_schema

    if schema:
        typer.echo(json.dumps(policy_schema(), indent=2))
        raise typer.Exit(0)
    loaded = policy_from_file(policy) if policy else builtin_policy()
    data = loaded.spec.model_dump(mode="json", exclude_none=True)
    typer.echo(f"# effective policy from {loaded.source}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, width=100).rstrip())
    raise typer.Exit(0)


@policy_app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter policy ('-' for stdout).")] = Path(
        "modelshield-policy.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter policy (the built-in defaults) to edit."""
    from modelshield.errors import UsageError
    from modelshield.policy.defaults import STARTER

    if str(path) == "-":
        typer.echo(STARTER, nl=False)
        raise typer.Exit(0)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    try:
        path.write_text(STARTER, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    typer.echo(f"wrote {path}; check a model with: modelshield policy check MODEL --policy {path}", err=True)
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    """Add the ``policy`` group to the main app."""
    app.add_typer(policy_app, name="policy")
