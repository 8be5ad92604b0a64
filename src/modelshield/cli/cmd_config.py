"""``modelshield config show``: the effective value of every option and where it came from."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, add_group

if TYPE_CHECKING:
    import argparse

    from modelshield.cli._args import Commands
    from modelshield.config import ConfigFile, Setting

SHOW_FORMATS = ("text", "json")
PRECEDENCE = (
    "flag > MODELSHIELD_<COMMAND>_<OPTION> > MODELSHIELD_<OPTION> > file [command] table > file top level > default"
)


def register(commands: Commands) -> None:
    """Add the ``config`` group (``config show``) to the CLI."""
    group = add_group(commands, "config", "Settings from MODELSHIELD_* variables and modelshield.toml.")
    parser = add_command(group, "show", show)
    parser.add_argument(
        "command",
        nargs="*",
        metavar="COMMAND",
        help="Show this command only (e.g. scan, or policy check); default: every command.",
    )
    parser.add_argument("--format", "-f", dest="fmt", choices=SHOW_FORMATS, default="text", help="Output format.")


def show(command: list[str], fmt: str) -> int:
    """Print every option's effective value and its source: flag, environment, config file or default.

    Precedence: a flag on the command line, then MODELSHIELD_<COMMAND>_<OPTION>, then
    MODELSHIELD_<OPTION>, then the command's table of modelshield.toml (or [tool.modelshield] in
    pyproject.toml), then the file's top level, then the built-in default.
    """
    from modelshield import config
    from modelshield.cli.main import build_parser
    from modelshield.errors import UsageError

    root = build_parser()
    found = config.find_config_file()
    if found is not None:
        config.check_file(found, root)
    chosen = [(path, parser) for path, parser in config.walk(root) if path and parser.get_default("_handler")]
    if command:
        path, parser = config.command_path(root, command)
        if path != tuple(command):
            raise UsageError(f"no command `modelshield {' '.join(command)}`", hint="see modelshield --help")
        chosen = [(p, sub) for p, sub in chosen if p[: len(path)] == path]
    resolved = [(path, config.resolve(parser, path, config=found, root=root), parser) for path, parser in chosen]
    if fmt == "json":
        sys.stdout.write(json.dumps(_as_json(found, resolved), indent=2) + "\n")
    else:
        sys.stdout.write(_as_text(found, resolved))
    return 0


def _shown(value: object) -> object:
    """A value as JSON can hold it (paths as text, NAME=VALUE pairs joined)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, str) for v in value) and isinstance(value, tuple):
            return f"{value[0]}={value[1]}"
        return [_shown(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _as_json(
    found: ConfigFile | None, resolved: list[tuple[tuple[str, ...], list[Setting], argparse.ArgumentParser]]
) -> dict[str, object]:
    from modelshield import config

    commands = {}
    for path, settings, parser in resolved:
        actions = {a.dest: a for a in config.configurable(parser)}
        commands[" ".join(path)] = [
            {
                "option": s.option,
                "value": _shown(s.value),
                "source": s.source,
                "env": list(config.env_names(path, actions[s.dest])),
                "key": s.option.lstrip("-"),
            }
            for s in settings
        ]
    return {"file": found.path if found else None, "precedence": PRECEDENCE, "commands": commands}


def _as_text(
    found: ConfigFile | None, resolved: list[tuple[tuple[str, ...], list[Setting], argparse.ArgumentParser]]
) -> str:
    lines = [
        f"settings file: {found.path if found else 'none (no modelshield.toml or [tool.modelshield] found)'}",
        f"precedence: {PRECEDENCE}",
        "",
    ]
    for path, settings, _ in resolved:
        if not settings:
            continue
        lines.append(f"modelshield {' '.join(path)}")
        width = max(len(s.option) for s in settings)
        for s in settings:
            value = _shown(s.value)
            text = json.dumps(value) if not isinstance(value, str) else value
            lines.append(f"  {s.option:<{width}}  {text:<24}  {s.source}")
        lines.append("")
    return "\n".join(lines)
