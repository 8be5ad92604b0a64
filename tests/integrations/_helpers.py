"""Shared helpers of the integration tests: harmless hostile fixtures and the installed CLI.

The malicious pickle only ever *would* touch a canary file in the test's tmp folder: nothing here
loads it (only the scanner reads it, statically), and every test checks the canary is still absent.
"""

from __future__ import annotations

import os
import pickle
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def malicious_pickle(canary: Path) -> bytes:
    """PROTO 2, GLOBAL os.system, ('touch CANARY',), REDUCE, STOP: what a load would run."""
    command = f"touch {shlex.quote(str(canary))}".encode()
    return b"\x80\x02cos\nsystem\nX" + len(command).to_bytes(4, "little") + command + b"\x85R."


def benign_pickle() -> bytes:
    """Plain data, as a framework would save it."""
    return pickle.dumps({"weights": [0.5, 1.5], "epochs": 3}, protocol=4)


def modelshield_cli() -> list[str]:
    """The installed ``modelshield`` console script (next to this Python), else ``python -m modelshield``."""
    script = Path(sys.executable).with_name("modelshield")
    if script.exists():
        return [str(script)]
    found = shutil.which("modelshield")
    return [found] if found else [sys.executable, "-m", "modelshield"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without modelshield settings (MODELSHIELD_* would change what a scan decides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIELD_")}
    env.update(extra)
    return env


def run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output."""
    return subprocess.run(
        argv, cwd=cwd, env=env if env is not None else clean_env(), capture_output=True, text=True, timeout=timeout
    )


def package_copy(dest: Path) -> Path:
    """This working tree's package (pyproject, README, hooks and action files, src/) copied to ``dest``.

    pip builds a local path in place (build/, egg-info); a copy keeps that out of the checkout and
    holds exactly the code under test, committed or not.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "action.yml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "src" / "modelshield",
        dest / "src" / "modelshield",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    return dest


def git(cwd: Path, *args: str) -> None:
    """Run git with a throwaway identity (the test machine may have none)."""
    env = clean_env(
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd),
    )  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)
