"""Alembic environment of the catalog: runs on the connection the service hands over (never a URL here)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations_online() -> None:
    """Run the migrations on ``config.attributes["connection"]`` (set by :func:`modelshield.service.db.migrate`)."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the catalog migrations run through modelshield (modelshield serve), not the alembic CLI")
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
