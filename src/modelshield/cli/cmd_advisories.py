"""``modelshield advisories`` (offline CVE data: info, lookup, update) and ``modelshield env``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

advisories_app = typer.Typer(help="The offline advisory (CVE) database.", no_args_is_help=True)

OSV_PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


@advisories_app.command("info")
def info() -> None:
    """Show the advisory database in use: snapshot date, source, counts per package."""
    from modelshield.advisories.db import load_db, shipped_path, user_path

    db = load_db()
    where = user_path() if user_path().is_file() and db.source.startswith("OSV export") else shipped_path()
    typer.echo(f"snapshot {db.snapshot}; {len(db)} advisories; source: {db.source}; file: {where}")
    for package, advisories in sorted(db.packages.items()):
        relevant = sum(a.relevant for a in advisories)
        typer.echo(f"  {package:24} {len(advisories):4} advisories, {relevant:3} relevant to model loading")
    raise typer.Exit(0)


@advisories_app.command("lookup")
def lookup(
    package: Annotated[str, typer.Argument(help="PyPI package name, e.g. torch.")],
    version: Annotated[str, typer.Argument(help="Version to check, e.g. 2.5.1.")],
) -> None:
    """List the advisories affecting PACKAGE==VERSION (exit 1 when any)."""
    from modelshield.advisories import Matcher, load_db

    matches = Matcher(load_db()).affected(package, version)
    for m in matches:
        flag = "model-loading" if m.advisory.relevant else "other"
        typer.echo(f"{m.advisory.display_id:18} {flag:13} fixed in {m.fixed_in or '-':10} {m.advisory.summary}")
    typer.echo(f"{len(matches)} advisories affect {package} {version}", err=True)
    raise typer.Exit(1 if matches else 0)


@advisories_app.command("update")
def update(
    source: Annotated[
        Path | None, typer.Option("--from", help="OSV export archive (PyPI/all.zip) to import offline.")
    ] = None,
    online: Annotated[
        bool, typer.Option("--online", help="Download the PyPI OSV export first (needs network).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the database here (default: user data dir).")
    ] = None,
) -> None:
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
    typer.echo(f"imported {len(db)} advisories for {len(db.packages)} packages, snapshot {db.snapshot} -> {target}")
    raise typer.Exit(0)


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


def env() -> None:
    """Show the model loaders installed in this Python environment and advisories affecting them."""
    from modelshield.advisories import Matcher, load_db
    from modelshield.advisories.environment import current_environment

    environment = current_environment()
    db = load_db()
    matcher = Matcher(db)
    typer.echo(f"{environment.origin} (advisory snapshot {db.snapshot})")
    for package, version in sorted(environment.versions.items()):
        matches = matcher.affected(package, version)
        relevant = [m.advisory.display_id for m in matches if m.advisory.relevant]
        note = (
            f"{len(matches)} advisories ({len(relevant)} model-loading: {', '.join(relevant[:5])})" if matches else "ok"
        )
        typer.echo(f"  {package:24} {version:16} {note}")
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    """Add ``advisories`` and ``env`` to the main app."""
    app.add_typer(advisories_app, name="advisories")
    app.command("env")(env)
