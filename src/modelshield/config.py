"""Settings for every CLI flag from the environment and from a configuration file.

Every long option of every command can also be given as

- an environment variable ``MODELSHIELD_<COMMAND>_<OPTION>`` (this command only) or
  ``MODELSHIELD_<OPTION>`` (every command that has the option), e.g. ``MODELSHIELD_SCAN_FAIL_ON=high``,
  ``MODELSHIELD_JOBS=2``; the option name is the long flag without dashes, upper case, ``-`` as ``_``;
- a key of ``modelshield.toml`` or of the ``[tool.modelshield]`` table of ``pyproject.toml``: top-level
  keys apply to every command that has the option, a ``[scan]`` (``[tool.modelshield.scan]``) table to
  that command only, ``[policy.check]`` to a sub-command.

Precedence, highest first: the flag on the command line, the command's environment variable, the
generic environment variable, the command's table of the file, the file's top level, the built-in
default. The file is ``$MODELSHIELD_CONFIG`` when set (``none`` turns file lookup off), else the first
``modelshield.toml`` or ``pyproject.toml`` with a ``[tool.modelshield]`` table found from the current
folder upwards, stopping at the root of the git work tree.

Values are checked exactly like the flag's own value (type, choices); a value that is not valid, an
unknown key or a malformed file is a :class:`~modelshield.errors.UsageError` (exit 2) naming where it
came from. Standard library only; ``tomllib`` is imported only when a file is found.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelshield.errors import UsageError

ENV_PREFIX = "MODELSHIELD_"
CONFIG_ENV = "MODELSHIELD_CONFIG"
FILE_NAME = "modelshield.toml"
PYPROJECT = "pyproject.toml"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A configuration file that was found: its path, the modelshield table, and how it is named."""

    path: str
    table: Mapping[str, Any]
    prefix: str  # "" for modelshield.toml, "tool.modelshield." for pyproject.toml

    def where(self, section: Sequence[str], key: str) -> str:
        """``/x/modelshield.toml [scan] jobs`` for messages and ``config show``."""
        table = self.prefix + ".".join(section)
        table = table.rstrip(".")
        return f"{self.path} [{table}] {key}" if table else f"{self.path} {key}"


@dataclass(frozen=True, slots=True)
class Setting:
    """The effective value of one option and where it came from."""

    option: str  # "--fail-on"
    dest: str
    value: object
    source: str  # "default", "env MODELSHIELD_FAIL_ON", "file /x/modelshield.toml [scan] fail-on", "flag"


def option_name(action: argparse.Action) -> str:
    """The option's name without dashes (``--fail-on`` -> ``fail-on``): its file key and env suffix."""
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs[0] if longs else action.option_strings[0]).lstrip("-")


def setting_name(action: argparse.Action) -> str:
    """The long flag of ``action`` as users type it (``--fail-on``)."""
    return "--" + option_name(action)


def env_names(command: Sequence[str], action: argparse.Action) -> tuple[str, str]:
    """The command's own and the generic environment variable of ``action``."""
    suffix = option_name(action).upper().replace("-", "_")
    scope = "_".join(command).upper().replace("-", "_")
    return (f"{ENV_PREFIX}{scope}_{suffix}" if scope else f"{ENV_PREFIX}{suffix}", f"{ENV_PREFIX}{suffix}")


def configurable(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` that settings can give: every flag but help and version."""
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in parser._actions if a.option_strings and not isinstance(a, skip)]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name (empty for a leaf command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_path(root: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser]:
    """The command words at the start of ``argv`` and the parser they select (``root`` for none)."""
    parser, path = root, []
    for word in argv:
        chosen = subcommands(parser).get(word)
        if chosen is None:
            break
        parser, path = chosen, [*path, word]
    return tuple(path), parser


# --- finding and reading the file ---------------------------------------------------------------


def find_config_file(start: str | None = None, environ: Mapping[str, str] | None = None) -> ConfigFile | None:
    """The configuration file that applies in ``start`` (default: the current folder), if any."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(CONFIG_ENV)
    if chosen is not None:
        if chosen.strip().lower() in {"", "none", "off", "0"}:
            return None
        if not os.path.isfile(chosen):
            raise UsageError(f"{CONFIG_ENV}={chosen}: no such file", hint=f"point it at a {FILE_NAME} or unset it")
        table = _read_table(chosen, pyproject=os.path.basename(chosen) == PYPROJECT)
        prefix = "tool.modelshield." if os.path.basename(chosen) == PYPROJECT else ""
        return ConfigFile(chosen, table or {}, prefix)
    folder = os.path.abspath(start or os.getcwd())
    while True:
        own = os.path.join(folder, FILE_NAME)
        if os.path.isfile(own):
            return ConfigFile(own, _read_table(own, pyproject=False) or {}, "")
        project = os.path.join(folder, PYPROJECT)
        if os.path.isfile(project):
            table = _read_table(project, pyproject=True)
            if table is not None:
                return ConfigFile(project, table, "tool.modelshield.")
        parent = os.path.dirname(folder)
        if parent == folder or os.path.exists(os.path.join(folder, ".git")):
            return None
        folder = parent


def _read_table(path: str, *, pyproject: bool) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="fix its permissions or remove it") from None
    if pyproject and b"tool.modelshield" not in data and b"[tool]" not in data:
        return None  # the common case: a project's pyproject.toml, no need to parse it
    import tomllib

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: not valid TOML: {exc}", hint="fix the file, or set MODELSHIELD_CONFIG=none"
        ) from None
    if not pyproject:
        return document
    table = document.get("tool", {}).get("modelshield") if isinstance(document.get("tool"), dict) else None
    if table is not None and not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.modelshield] must be a table", hint="see modelshield config show")
    return table


# --- resolving values ---------------------------------------------------------------------------


def resolve(
    parser: argparse.ArgumentParser,
    command: Sequence[str],
    environ: Mapping[str, str] | None = None,
    config: ConfigFile | None = None,
    root: argparse.ArgumentParser | None = None,
) -> list[Setting]:
    """Every configurable option of ``command`` with its value from env/file, else its default."""
    environ = os.environ if environ is None else environ
    if config is not None and root is not None:
        check_file(config, root)
    file_values = _file_values(config, parser, command) if config is not None else {}
    settings = []
    for action in configurable(parser):
        own, generic = env_names(command, action)
        if own in environ:
            setting = _from_text(action, environ[own], f"env {own}")
        elif generic in environ:
            try:
                setting = _from_text(action, environ[generic], f"env {generic}")
            except UsageError as exc:  # valid for another command, perhaps: say how to scope it
                scoped = generic.replace(ENV_PREFIX, ENV_PREFIX + "<COMMAND>_", 1)
                hint = f"{generic} applies to every command with {setting_name(action)}; use {scoped} for one command"
                raise UsageError(exc.message, hint=hint) from None
        elif action.dest in file_values:
            raw, where = file_values[action.dest]
            setting = _from_file(action, raw, f"file {where}")
        else:
            setting = Setting(setting_name(action), action.dest, action.default, "default")
        settings.append(setting)
    return settings


def apply(
    parser: argparse.ArgumentParser,
    command: Sequence[str],
    environ: Mapping[str, str] | None = None,
    config: ConfigFile | None = None,
    root: argparse.ArgumentParser | None = None,
) -> list[Setting]:
    """Make the env/file values the defaults of ``parser`` (so flags still win); returns them."""
    given = [s for s in resolve(parser, command, environ, config, root) if s.source != "default"]
    by_dest = {s.dest: s for s in given}
    for action in configurable(parser):
        if action.dest in by_dest:
            action.required = False  # a required option given by the environment or the file
    if by_dest:
        parser.set_defaults(**{dest: s.value for dest, s in by_dest.items()})
    return given


def _file_values(
    config: ConfigFile, parser: argparse.ArgumentParser, command: Sequence[str]
) -> dict[str, tuple[object, str]]:
    """dest -> (raw value, where) from the file's top level, then the command's tables (more specific wins)."""
    by_key = {option_name(a): a for a in configurable(parser)}
    values: dict[str, tuple[object, str]] = {}
    section: object = config.table
    for depth in range(len(command) + 1):  # the top level, then [scan], then [policy.check] ...
        if depth:
            section = section.get(command[depth - 1]) if isinstance(section, dict) else None
        if not isinstance(section, dict):
            break
        for key, raw in section.items():
            action = by_key.get(key.replace("_", "-"))
            if action is not None:
                values[action.dest] = (raw, config.where(command[:depth], key))
    return values


def check_file(config: ConfigFile, root: argparse.ArgumentParser) -> None:
    """Every key of the file must be a command's table or an option of a command it applies to."""

    def check(table: Mapping[str, Any], path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        below = subcommands(parser)
        names = {option_name(a) for _, p in walk(parser) for a in configurable(p)}
        for key, raw in table.items():
            name = key.replace("_", "-")
            if isinstance(raw, dict) and name in below:
                check(raw, (*path, name), below[name])
            elif name not in names:
                scope = f"`modelshield {' '.join(path)}` has no such option" if path else "no command has it"
                raise UsageError(
                    f"{config.where(path, key)}: unknown option {key!r} ({scope})",
                    hint="keys are long flag names without dashes (modelshield config show lists them)",
                )

    check(config.table, (), root)


def walk(
    root: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of the tree with its path, depth first (groups included, the root first)."""
    yield path, root
    for name, parser in subcommands(root).items():
        yield from walk(parser, (*path, name))


def _from_text(action: argparse.Action, text: str, source: str) -> Setting:
    """A value given as text (environment): parsed like the flag would parse it."""
    name = setting_name(action)
    if action.nargs == 0:  # store_true / store_false / BooleanOptionalAction
        flag = text.strip().lower()
        if flag not in _TRUE | _FALSE:
            raise UsageError(f"{source}={text!r}: {name} is on or off", hint="use true/false, 1/0, yes/no or on/off")
        return Setting(name, action.dest, _switch(action, flag in _TRUE), source)
    if _is_list(action):
        items: list[object] = [item.strip() for item in text.split(",") if item.strip()]
        return Setting(name, action.dest, [_convert(action, i, source) for i in items], source)
    return Setting(name, action.dest, _convert(action, text, source), source)


def _from_file(action: argparse.Action, raw: object, source: str) -> Setting:
    """A value from the TOML file: booleans for switches, lists (or a NAME = VALUE table) for repeatable flags."""
    name = setting_name(action)
    if action.nargs == 0:
        if not isinstance(raw, bool):
            raise UsageError(f"{source}: {name} is on or off, got {raw!r}", hint="use true or false")
        return Setting(name, action.dest, _switch(action, raw), source)
    if _is_list(action):
        if isinstance(raw, dict):
            raw = [f"{k}={v}" for k, v in raw.items()]
        if not isinstance(raw, list):
            raw = [raw]
        return Setting(name, action.dest, [_convert(action, item, source) for item in raw], source)
    if isinstance(raw, (dict, list)):
        raise UsageError(f"{source}: {name} takes one value, got {raw!r}", hint="give a string or a number")
    return Setting(name, action.dest, _convert(action, raw, source), source)


def _is_list(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*") or isinstance(action.nargs, int)


def _switch(action: argparse.Action, on: bool) -> object:
    if isinstance(action, argparse.BooleanOptionalAction):
        return on
    return action.const if on else action.default


def _convert(action: argparse.Action, raw: object, source: str) -> object:
    name = setting_name(action)
    if isinstance(raw, bool):
        raise UsageError(f"{source}: {name} takes a value, got {raw!r}", hint=f"see the {name} help")
    text = str(raw)
    value: object = text
    if callable(action.type):
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise UsageError(f"{source}={text!r}: {name}: {exc}", hint=f"see the {name} help") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(str(c) for c in action.choices)
        raise UsageError(f"{source}={text!r}: {name} must be one of: {choices}", hint=f"see the {name} help")
    return value
