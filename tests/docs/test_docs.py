"""The docs site builds with ``mkdocs build --strict`` and says what the installed CLI does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield import config
from modelshield.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))


def test_every_command_has_a_page_with_every_option(site: Path) -> None:
    for path, parser in config.walk(build_parser()):
        if not path or parser.get_default("_handler") is None:
            continue
        page = site / "commands" / "-".join(path) / "index.html"
        assert page.is_file(), path
        text = _text(page)
        for action in config.configurable(parser):
            assert config.env_names(path, action)[0] in text, (path, action.dest)


def test_rule_catalogue_lists_every_rule(site: Path) -> None:
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "modelshield", "rules", "-f", "json"], capture_output=True, text=True, check=True
        ).stdout
    )["rules"]
    text = _text(site / "rules" / "index.html")
    assert len(listed) > 100
    missing = [r["id"] for r in listed if r["id"] not in text]
    assert missing == []


def test_hand_written_pages_and_no_network(site: Path) -> None:
    for page in ("quickstart", "configuration", "threat-model"):
        assert (site / page / "index.html").is_file()
    assert "MODELSHIELD_CONFIG=none" in _text(site / "threat-model" / "index.html")
    for html in site.rglob("*.html"):
        body = html.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in body and "fonts.gstatic" not in body, html
