"""``modelshield policy``: check a model against a policy, show the effective policy, write a starter."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, add_group

if TYPE_CHECKING:
    from modelshield.cli._args import Commands

CHECK_FORMATS = ("text", "json")
DEFAULT_POLICY_PATH = Path("modelshield-policy.yaml")


def check(
    targets: list[str],
    policy: Path | None,
    profile: str | None,
    env: bool,
    trust: Path | None,
    fmt: str,
    output: Path | None,
) -> int:
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
        return 2
    text = render_decision(gate.decision) + "\n"
    if fmt == "json":
        text = json.dumps(report_dict(report), indent=2) + "\n"
    write_output(text, output)
    if fmt == "json" or output is not None:
        print(render_decision(gate.decision), file=sys.stderr)
    return 0 if gate.decision.allowed else 1


def show(policy: Path | None, schema: bool) -> int:
    """Print the effective policy (validated, with defaults filled in) as YAML."""
    import json

    import yaml

    from modelshield.policy.engine import builtin_policy, policy_from_file
    from modelshield.policy.model import schema as policy_schema

    if schema:
        print(json.dumps(policy_schema(), indent=2))
        return 0
    loaded = policy_from_file(policy) if policy else builtin_policy()
    data = loaded.spec.model_dump(mode="json", exclude_none=True)
    print(f"# effective policy from {loaded.source}")
    print(yaml.safe_dump(data, sort_keys=False, width=100).rstrip())
    return 0


def init(path: Path, force: bool) -> int:
    """Write a commented starter policy (the built-in defaults) to edit."""
    from modelshield.errors import UsageError
    from modelshield.policy.defaults import STARTER

    if str(path) == "-":
        sys.stdout.write(STARTER)
        return 0
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    try:
        path.write_text(STARTER, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}; check a model with: modelshield policy check MODEL --policy {path}", file=sys.stderr)
    return 0


def register(commands: Commands) -> None:
    """Add the ``policy`` group to the CLI."""
    group = add_group(commands, "policy", "Governance: risk profiles, rules and waivers.")
    parser = add_command(group, "check", check)
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="Model files or folders.")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="Policy file (default: the built-in policy).")
    parser.add_argument("--profile", metavar="NAME", help="Risk profile (default: chosen by the policy).")
    parser.add_argument("--env", action="store_true", help="Match CVEs against the loaders installed here.")
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="PATH",
        help="Trust store: lets signature/attestation rules see a verified attestation.",
    )
    parser.add_argument("--format", "-f", dest="fmt", choices=CHECK_FORMATS, default="text", help="Output format.")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="Write the output here.")

    parser = add_command(group, "show", show)
    parser.add_argument("--policy", type=Path, metavar="FILE", help="Policy file (default: the built-in policy).")
    parser.add_argument("--schema", action="store_true", help="Print the JSON Schema of policy files instead.")

    parser = add_command(group, "init", init)
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=DEFAULT_POLICY_PATH,
        metavar="PATH",
        help="Where to write the starter policy ('-' for stdout).",
    )
    parser.add_argument("--force", action="store_true", help="Overwrite an existing file.")
