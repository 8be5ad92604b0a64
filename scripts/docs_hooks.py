"""mkdocs hooks: generate the per-command pages and the rule catalogue from the installed CLI.

The pages come from the real argparse tree (``modelshield.cli.main.build_parser``) and from
``modelshield rules --format json`` run in a subprocess, at every build, so the site says exactly
what the installed command does. The navigation is built here too: the hand-written pages first,
then every generated command page, then any other page found under docs/ (guides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from mkdocs.structure.files import File, Files

HAND_WRITTEN = [
    ("Home", "index.md"),
    ("Quick start", "quickstart.md"),
    ("Configuration", "configuration.md"),
    ("Threat model", "threat-model.md"),
]
RULES_PAGE = "rules.md"


def _commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    from modelshield import config
    from modelshield.cli.main import build_parser

    os.environ["COLUMNS"] = "100"  # usage lines wrapped the same on every machine
    return [(p, parser) for p, parser in config.walk(build_parser()) if p and parser.get_default("_handler")]


def _page_name(path: tuple[str, ...]) -> str:
    return "commands/" + "-".join(path) + ".md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _default(action: argparse.Action) -> str:
    value = action.default
    if value is None or value is argparse.SUPPRESS or value == []:
        return ""
    return f"`{value}`"


def command_page(path: tuple[str, ...], parser: argparse.ArgumentParser) -> str:
    """The Markdown page of one command: what it does, its usage, arguments and every option."""
    from modelshield import config

    name = "modelshield " + " ".join(path)
    lines = [f"# `{name}`", "", parser.description or "", "", "```text", parser.format_usage().strip(), "```", ""]
    positionals = [a for a in parser._actions if not a.option_strings]
    if positionals:
        lines += ["## Arguments", "", "| argument | meaning |", "|---|---|"]
        lines += [f"| `{a.metavar or a.dest}` | {_cell(a.help or '')} |" for a in positionals]
        lines.append("")
    options = config.configurable(parser)
    if options:
        lines += [
            "## Options",
            "",
            "Each option can also be set by environment variable or in `modelshield.toml` "
            f"(`[{'.'.join(path)}]` table, key = the option without dashes); "
            "see [Configuration](../configuration.md).",
            "",
            "| option | environment | default | meaning |",
            "|---|---|---|---|",
        ]
        for action in options:
            flags = ", ".join(f"`{s}`" for s in sorted(action.option_strings, key=len))
            own, generic = config.env_names(path, action)
            choices = f" One of: {', '.join(map(str, action.choices))}." if action.choices else ""
            help_text = (action.help or "").replace("%(default)s", str(action.default))
            lines.append(f"| {flags} | `{own}` or `{generic}` | {_default(action)} | {_cell(help_text + choices)} |")
        lines.append("")
    return "\n".join(lines)


def rules_page() -> str:
    """The rule catalogue, from ``modelshield rules --format json``."""
    result = subprocess.run(
        [sys.executable, "-m", "modelshield", "rules", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    catalogue = json.loads(result.stdout)
    rules = catalogue["rules"]
    lines = [
        "# Rule catalogue",
        "",
        f"Every finding carries one of these stable rule ids (rules version `{catalogue['rules_version']}`, "
        f"{len(rules)} rules). This page is generated from `modelshield rules --format json` at every build.",
        "",
        "| rule | severity | category | title |",
        "|---|---|---|---|",
    ]
    for r in rules:
        anchor = r["id"].lower()
        lines.append(f"| [`{r['id']}`](#{anchor}) | {r['severity']} | {r['category']} | {_cell(r['title'])} |")
    lines.append("")
    for r in rules:
        lines += [f"## {r['id']}", "", f"**{_cell(r['title'])}** — {r['severity']}, {r['category']}.", ""]
        lines += [_cell(r["description"]), ""]
        if r["remediation"]:
            lines += [f"*Remediation:* {_cell(r['remediation'])}", ""]
        if r["references"]:
            lines += ["*References:* " + ", ".join(f"`{ref}`" for ref in r["references"]), ""]
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    """Build the navigation: hand-written pages, commands, rules, then every other page (guides)."""
    docs = config["docs_dir"]
    commands = [{"modelshield " + " ".join(p): _page_name(p)} for p, _ in _commands()]
    known = {page for _, page in HAND_WRITTEN} | {RULES_PAGE}
    guides = []
    for folder, _, names in sorted(os.walk(docs)):
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(folder, name), docs).replace(os.sep, "/")
            if name.endswith(".md") and rel not in known and not rel.startswith("commands/"):
                guides.append({_title(os.path.join(folder, name), rel): rel})
    nav: list[Any] = [{title: page} for title, page in HAND_WRITTEN]
    nav += [{"Commands": commands}, {"Rule catalogue": RULES_PAGE}]
    if guides:
        nav.append({"Guides": guides})
    config["nav"] = nav
    return config


def _title(path: str, rel: str) -> str:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("# "):
                return line[2:].strip().strip("`")
    return rel


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages to the build (nothing is written into docs/)."""
    for path, parser in _commands():
        files.append(File.generated(config, _page_name(path), content=command_page(path, parser)))
    files.append(File.generated(config, RULES_PAGE, content=rules_page()))
    return files
