"""API keys (stored hashed) and the kept results of server-side audit runs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.String(27)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("logs", sa.Text, nullable=False),
        sa.Column("stream_prefixes", sa.Text, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("report", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_runs_log", "audit_runs", ["log_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_runs_log", "audit_runs")
    op.drop_table("audit_runs")
    op.drop_table("api_keys")
