"""The fleet sweep's tables: the content-addressed verdict cache and the per-file sweep log.

Until now ``modelshield fleet scan --database-url`` made these itself (``CREATE TABLE IF NOT
EXISTS``); a catalog database now has them from its migrations, and a sweep into it also fills the
catalog's own model entries. The shapes are the ones the sweep wrote, so a database where a sweep
made them already is left as it is.

``scans.artifacts`` keeps a fleet entry's scanned artifacts (findings and the facts the CVE stage
reads, as :mod:`modelshield.fleet.codec` JSON): the catalog holds no bytes of a swept model, so a
policy change or a waiver re-evaluates the entry from them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``fleet_verdicts`` and ``fleet_results`` unless a sweep made them before; add ``scans.artifacts``."""
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("artifacts", sa.Text(), nullable=True))
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "fleet_verdicts" not in existing:
        op.create_table(
            "fleet_verdicts",
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("context", sa.String(400), nullable=False),
            sa.Column("rules_version", sa.String(32), nullable=False),
            sa.Column("engine_version", sa.String(200), nullable=False),
            sa.Column("advisory_key", sa.String(64), nullable=False),
            sa.Column("packages", sa.Text(), nullable=False),
            sa.Column("result", sa.Text(), nullable=False),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("sha256", "context", "rules_version", "engine_version", "advisory_key"),
        )
    if "fleet_results" not in existing:
        op.create_table(
            "fleet_results",
            sa.Column("run_id", sa.String(40), nullable=False),
            sa.Column("idx", sa.Integer(), nullable=False),
            sa.Column("target", sa.Text(), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=True),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("verdict", sa.String(8), nullable=False),
            sa.Column("cached", sa.Integer(), nullable=False),
            sa.Column("findings", sa.Text(), nullable=False),
            sa.Column("finished_at", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("run_id", "idx"),
        )


def downgrade() -> None:
    """Drop the fleet tables and ``scans.artifacts``."""
    op.drop_table("fleet_results")
    op.drop_table("fleet_verdicts")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("artifacts")
