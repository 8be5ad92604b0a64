"""``modelshield advisories`` (offline CVE data: info, lookup, update) and ``modelshield env``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, add_group

if TYPE_CHECKING:
    from modelshield.cli._args import Commands

OSV_PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


def info() -> int:
    """Show the advisory database in use: snapshot date, source, counts per package."""
    from modelshield.advisories.db import load_db, shipped_path, user_path

    db = load_db()
    where = user_path() if user_path().is_file() and db.source.startswith("OSV export") else shipped_path()
    print(f"snapshot {db.snapshot}; {len(db)} advisories; source: {db.source}; file: {where}")
    for package, advisories in sorted(db.packages.items()):
        relevant = sum(a.relevant for a in advisories)
        print(f"  {package:24} {len(advisories):4} advisories, {relevant:3} relevant to model loading")
    return 0


def lookup(package: str, version: str) -> int:
    """List the advisories affecting PACKAGE==VERSION (exit 1 when any)."""
    from modelshield.advisories import Matcher, load_db

    matches = Matcher(load_db()).affected(package, version)
    for m in matches:
        flag = "model-loading" if m.advisory.relevant else "other"
        print(f"{m.advisory.display_id:18} {flag:13} fixed in {m.fixed_in or '-':10} {m.advisory.summary}")
    print(f"{len(matches)} advisories affect {package} {version}", file=sys.stderr)
    return 1 if matches else 0


def update(source: Path | None, online: bool, output: Path | None) -> int:
    """Refresh the advisory database from an OSV export, keeping the curated relevance flags."""
    import tempfile

    from modelshield.advisories.db import clear_cache, load_file, shipped_path, user_path
    from modelshield.advisories.osv import import_export
    from modelshield.errors import UsageError

    if (source is None) == (not online):
        raise UsageError("give exactly one of --from FILE or --online", hint=f"the export is at {OSV_PYPI_EXPORT}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = source if source is not None else _download(Path(tmp) / "all.zip")
        db = import_export(archive, load_file(shipped_path()))
    target = output or user_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(db.to_json(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    clear_cache()
    print(f"imported {len(db)} advisories for {len(db.packages)} packages, snapshot {db.snapshot} -> {target}")
    return 0


def _download(dest: Path) -> Path:
    import urllib.error
    import urllib.request

    from modelshield.errors import ModelShieldError

    try:
        with urllib.request.urlopen(OSV_PYPI_EXPORT, timeout=30) as response, dest.open("wb") as out:  # noqa: S310
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelShieldError(
            f"cannot download the OSV export from {OSV_PYPI_EXPORT}: {reason}",
            hint="no network here? download PyPI/all.zip elsewhere, then run "
            "`modelshield advisories update --from all.zip`",
        ) from None
    return dest


def env() -> int:
    """Show the model loaders installed in this Python environment and advisories affecting them."""
    from modelshield.advisories import Matcher, load_db
    from modelshield.advisories.environment import current_environment

    environment = current_environment()
    db = load_db()
    matcher = Matcher(db)
    print(f"{environment.origin} (advisory snapshot {db.snapshot})")
    for package, version in sorted(environment.versions.items()):
        matches = matcher.affected(package, version)
        relevant = [m.advisory.display_id for m in matches if m.advisory.relevant]
        note = (
            f"{len(matches)} advisories ({len(relevant)} model-loading: {', '.join(relevant[:5])})" if matches else "ok"
        )
        print(f"  {package:24} {version:16} {note}")
    return 0


def register(commands: Commands) -> None:
    """Add ``env`` and the ``advisories`` group to the CLI."""
    add_command(commands, "env", env)
    group = add_group(commands, "advisories", "The offline advisory (CVE) database.")
    add_command(group, "info", info)
    parser = add_command(group, "lookup", lookup)
    parser.add_argument("package", metavar="PACKAGE", help="PyPI package name, e.g. torch.")
    parser.add_argument("version", metavar="VERSION", help="Version to check, e.g. 2.5.1.")
    parser = add_command(group, "update", update)
    parser.add_argument(
        "--from", dest="source", type=Path, metavar="FILE", help="OSV export archive (PyPI/all.zip) to import offline."
    )
    parser.add_argument("--online", action="store_true", help="Download the PyPI OSV export first (needs network).")
    parser.add_argument("--output", type=Path, metavar="FILE", help="Write the database here (default: user data dir).")
