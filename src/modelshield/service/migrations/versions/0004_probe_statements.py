"""Endpoint probe results attached to catalog entries, and the keys the catalog trusts to sign them.

``probe_statements`` holds signed ``modelshield probe`` statements (DSSE envelopes) a publisher
attached to a model, with the facts the model page shows (endpoint, served model, verdict,
per-family rates, coverage, drift, signer); ``probe_signers`` holds the public keys an admin
trusts to sign them. A statement is verified against these keys before it is stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``probe_signers`` and ``probe_statements``."""
    op.create_table(
        "probe_signers",
        sa.Column("keyid", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "probe_statements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("families", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("coverage_complete", sa.Boolean(), nullable=False),
        sa.Column("drift", sa.Boolean(), nullable=True),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=True),
        sa.Column("signer_keyid", sa.String(64), nullable=False),
        sa.Column("signer_name", sa.String(100), nullable=False),
        sa.Column("statement_sha256", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("probed_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("model_id", "statement_sha256", name="uq_probe_statements_model_statement"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("probe_statements")
    op.drop_table("probe_signers")
