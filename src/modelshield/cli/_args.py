"""argparse helpers shared by the command modules: parser factories and checked number types.

Standard library only: every ``cmd_*`` module imports this while ``modelshield --help`` starts.

A command is a plain typed function whose keyword parameters are the ``dest`` names of its
arguments; :func:`add_command` makes its parser and :func:`modelshield.cli.main.run` calls it with
the parsed values and turns the returned int into the exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

Handler: TypeAlias = Callable[..., int]
"""A command: keyword arguments named after its parser's dests, returns the exit code."""


def _columns() -> int:
    """Terminal width as shutil.get_terminal_size reports it, without importing shutil (~2 ms)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (AttributeError, ValueError, OSError):
        return 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps docstring paragraphs as written; shows a default only when it says something."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        # argparse builds a formatter for every add_argument call; its own width lookup imports
        # shutil (and zlib, bz2, lzma with it) on every start.
        super().__init__(prog, indent_increment, max_help_position, width if width is not None else _columns() - 2)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "%(default)" in text:
            return text
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or isinstance(default, list):
            return text
        if action.option_strings or action.nargs == argparse.OPTIONAL:
            return f"{text} (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        # "-f, --format {text,json}" rather than argparse's "--format {text,json}, -f {text,json}".
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        names = ", ".join(sorted(action.option_strings, key=len))
        return f"{names} {self._format_args(action, self._get_default_metavar_for_optional(action))}"


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The top-level parser (``-h/--help``, no prefix matching of long options)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter, add_help=False, allow_abbrev=False
    )
    _add_help(parser)
    parser.set_defaults(_handler=None, _parser=parser)
    return parser


def add_command(commands: Commands, name: str, handler: Handler) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` run by ``handler``; its help is the handler's docstring."""
    description = _docstring(handler)
    parser = _add_parser(commands, name, description.split("\n\n")[0], description)
    parser.set_defaults(_handler=handler, _parser=parser)
    return parser


def add_group(commands: Commands, name: str, description: str) -> Commands:
    """Add the command group ``name``; run bare, it prints its help. Returns its sub-commands."""
    parser = _add_parser(commands, name, description, description)
    parser.set_defaults(_handler=None, _parser=parser)
    return add_commands(parser)


def add_commands(parser: argparse.ArgumentParser) -> Commands:
    """The sub-command slot of ``parser`` (listed under "commands" in its help)."""
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def _docstring(handler: Handler) -> str:
    # inspect.cleandoc without importing inspect (~6 ms); our docstrings are plain paragraphs.
    return "\n".join(line.strip() for line in (handler.__doc__ or "").strip().splitlines())


def _add_parser(commands: Commands, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=HelpFormatter,
        add_help=False,
        allow_abbrev=False,
    )
    _add_help(parser)
    return parser


def _add_help(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-h", "--help", action="help", help="Show this message and exit.")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``; the error names the bad value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def float_at_least(minimum: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number >= ``minimum``; the error names the bad value."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse
