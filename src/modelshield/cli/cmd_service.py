"""Commands ``serve`` (the catalog: web app + workers), ``worker`` and ``token``.

The service (FastAPI, SQLAlchemy, uvicorn: the ``service`` extra) is imported inside the commands,
so ``modelshield --help`` and ``modelshield scan`` never load it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command, add_group, float_at_least, int_at_least

if TYPE_CHECKING:
    from modelshield.cli._args import Commands
    from modelshield.service.settings import Settings

ROLES = ("viewer", "publisher", "admin")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _settings(data_dir: str | None, database_url: str | None, **knobs: object) -> Settings:
    try:
        from modelshield.service.settings import load_settings
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        from modelshield.errors import UsageError

        raise UsageError(
            f"the catalog service needs the 'service' extra ({exc.name} is missing)",
            hint="pip install 'modelshield[service]'",
        ) from None
    return load_settings(data_dir, database_url, **knobs)  # type: ignore[arg-type]


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


def serve(
    host: str,
    port: int,
    data_dir: str | None,
    database_url: str | None,
    workers: int,
    create_token: str | None,
    lease_seconds: float | None,
    max_attempts: int | None,
    max_upload_mb: float | None,
    verify_interval: float | None,
    attestation_days: float | None,
    log_level: str,
) -> int:
    """Run the model catalog: web UI and API on HOST:PORT, and the scan workers.

    With no options: SQLite in the per-user data dir, 127.0.0.1:8080, 2 workers. Stop with Ctrl-C
    or SIGTERM. Get a token with --create-token ROLE (printed once) or `modelshield token create ROLE`.
    """
    settings = _settings(
        data_dir,
        database_url,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        max_upload_mb=max_upload_mb,
        verify_interval_s=verify_interval,
        attestation_days=attestation_days,
    )
    _logging(log_level)
    from modelshield.service.server import serve as run_server

    return run_server(settings, host, port, workers, create_token, log_level)


def worker(
    data_dir: str | None,
    database_url: str | None,
    lease_seconds: float | None,
    max_attempts: int | None,
    log_level: str,
) -> int:
    """Run one scan worker against the catalog's database (more machines: same database and data dir)."""
    settings = _settings(data_dir, database_url, lease_seconds=lease_seconds, max_attempts=max_attempts)
    _logging(log_level)
    from modelshield.service.server import prepare
    from modelshield.service.worker import run_worker

    prepare(settings)
    return run_worker(settings)


def token_create(
    role: str | None, role_option: str | None, name: str | None, data_dir: str | None, database_url: str | None
) -> int:
    """Create an API token and print it (only the token, on stdout; it is stored hashed)."""
    from modelshield.errors import UsageError

    chosen = role_option or role
    if chosen is None or (role and role_option and role != role_option):
        raise UsageError("give the role once: viewer, publisher or admin", hint="modelshield token create publisher")
    settings = _settings(data_dir, database_url)
    from modelshield.service import auth
    from modelshield.service.db import Database
    from modelshield.service.errors import ServiceError
    from modelshield.service.server import database_errors, prepare

    prepare(settings)
    db = Database(settings.database_url, pool_size=1)
    try:
        with database_errors(settings), db.write() as session:
            row, value = auth.create_token(session, chosen, name or f"cli-{chosen}", "system:cli")
            token_id = row.id
    except ServiceError as exc:
        raise UsageError(exc.message, hint="see modelshield token create --help") from None
    finally:
        db.dispose()
    print(value)
    print(f"token {token_id} ({chosen}) created; it is shown only now", file=sys.stderr)
    return 0


def token_list(data_dir: str | None, database_url: str | None) -> int:
    """List the tokens (id, name, role, prefix, state); values are never stored."""
    settings = _settings(data_dir, database_url)
    from sqlalchemy import select

    from modelshield.service.db import Database
    from modelshield.service.models import Token
    from modelshield.service.server import prepare

    prepare(settings)
    db = Database(settings.database_url, pool_size=1)
    try:
        with db.read() as session:
            for row in session.scalars(select(Token).order_by(Token.id)):
                state = "revoked" if row.revoked_at else "active"
                print(f"{row.id:5} {row.role:9} {state:8} {row.prefix}...  {row.name}")
    finally:
        db.dispose()
    return 0


def token_revoke(token_id: int, data_dir: str | None, database_url: str | None) -> int:
    """Revoke a token by id (its browser sessions end too)."""
    settings = _settings(data_dir, database_url)
    from modelshield.errors import UsageError
    from modelshield.service import auth
    from modelshield.service.db import Database
    from modelshield.service.errors import ServiceError
    from modelshield.service.server import database_errors, prepare

    prepare(settings)
    db = Database(settings.database_url, pool_size=1)
    try:
        with database_errors(settings), db.write() as session:
            auth.revoke_token(session, token_id, "system:cli")
    except ServiceError as exc:
        raise UsageError(exc.message, hint="modelshield token list shows the ids") from None
    finally:
        db.dispose()
    print(f"token {token_id} revoked", file=sys.stderr)
    return 0


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="DIR", help="Data dir (default: $MODELSHIELD_DATA_DIR or ~/.local/share/modelshield)."
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="sqlite:///PATH or postgresql+psycopg://... (default: $MODELSHIELD_DATABASE_URL, else a SQLite file).",
    )


def _queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lease-seconds",
        type=float_at_least(1.0),
        metavar="S",
        help="Job lease: a dead worker's job is retried after this (default 30; env MODELSHIELD_LEASE_SECONDS).",
    )
    parser.add_argument(
        "--max-attempts",
        type=int_at_least(1),
        metavar="N",
        help="Attempts before a model is scan_failed (default 3).",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="Log level (logs go to stderr).")


def register(commands: Commands) -> None:
    """Add ``serve``, ``worker`` and ``token`` to the CLI."""
    parser = add_command(commands, "serve", serve)
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--port", type=int_at_least(0), default=8080, help="Port to listen on.")
    _storage_options(parser)
    parser.add_argument("--workers", type=int_at_least(0), default=2, metavar="N", help="Scan worker processes to run.")
    parser.add_argument("--create-token", choices=ROLES, metavar="ROLE", help="Print a new token of ROLE first.")
    _queue_options(parser)
    parser.add_argument(
        "--max-upload-mb", type=float_at_least(0.001), metavar="MB", help="Upload size limit (default 1024)."
    )
    parser.add_argument(
        "--verify-interval", type=float_at_least(1.0), metavar="S", help="Re-hash stored files every S seconds (3600)."
    )
    parser.add_argument(
        "--attestation-days", type=float_at_least(0.001), metavar="D", help="Attestations expire after D days (30)."
    )

    parser = add_command(commands, "worker", worker)
    _storage_options(parser)
    _queue_options(parser)

    tokens = add_group(commands, "token", "Manage the catalog's API tokens (stored hashed).")
    parser = add_command(tokens, "create", token_create)
    parser.add_argument("role", nargs="?", choices=ROLES, metavar="ROLE", help="viewer, publisher or admin.")
    parser.add_argument("--role", dest="role_option", choices=ROLES, help="The role (instead of the argument).")
    parser.add_argument("--name", help="Who holds the token (the identity in the audit log).")
    _storage_options(parser)
    parser = add_command(tokens, "list", token_list)
    _storage_options(parser)
    parser = add_command(tokens, "revoke", token_revoke)
    parser.add_argument("token_id", type=int_at_least(1), metavar="ID", help="Token id (from token list).")
    _storage_options(parser)
