"""Kafka: relay progress per log and topic, consumed ingest offsets, dead letters (an outbox of their own).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.String(27)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "relay_progress",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("next_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "topic"),
    )
    op.create_table(
        "ingest_offsets",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("message_offset", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.UniqueConstraint("consumer", "topic", "partition", "message_offset", name="uq_dead_letters_message"),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("ingest_offsets")
    op.drop_table("relay_progress")
