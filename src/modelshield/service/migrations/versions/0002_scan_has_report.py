"""Scans say whether they hold a report, so model pages never load the report text.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``scans.has_report`` and fill it in."""
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("has_report", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE scans SET has_report = (report IS NOT NULL)")


def downgrade() -> None:
    """Drop ``scans.has_report``."""
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("has_report")
