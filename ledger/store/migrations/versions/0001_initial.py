"""Initial schema: logs, keys, entries, subjects, payloads, streams, Merkle nodes, checkpoints.

Entries, subjects, Merkle nodes and checkpoints are append-only, enforced by triggers in the database.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.String(27)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
APPEND_ONLY = ("entries", "entry_subjects", "merkle_nodes", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(255), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("appends_since_checkpoint", sa.BigInteger, nullable=False),
        sa.Column("active_key_id", sa.String(8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "log_keys",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("verifier_key", sa.Text, nullable=False),
        sa.Column("valid_from_seq", sa.BigInteger, nullable=False),
        sa.Column("valid_until_seq", sa.BigInteger, nullable=True),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=True),
        sa.PrimaryKeyConstraint("log_id", "key_id"),
    )
    op.create_table(
        "entries",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("producer", sa.String(200), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "seq"),
        sa.UniqueConstraint("log_id", "event_id", name="uq_entries_event_id"),
        sa.UniqueConstraint("log_id", "stream", "stream_seq", name="uq_entries_stream_seq"),
    )
    op.create_index("ix_entries_type", "entries", ["log_id", "type", "seq"])
    op.create_index("ix_entries_producer", "entries", ["log_id", "producer", "seq"])
    op.create_index("ix_entries_occurred_at", "entries", ["log_id", "occurred_at"])
    op.create_index("ix_entries_recorded_at", "entries", ["log_id", "recorded_at"])
    op.create_table(
        "entry_subjects",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "subject", "seq"),
    )
    op.create_table(
        "payloads",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=True),
        sa.Column("erased_at", TS, nullable=True),
        sa.Column("erased_by_seq", sa.BigInteger, nullable=True),
        sa.Column("erasure_reason", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("log_id", "seq"),
    )
    op.create_table(
        "streams",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("next_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "stream"),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("end_seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "level", "idx"),
    )
    op.create_index("ix_merkle_nodes_end_seq", "merkle_nodes", ["log_id", "end_seq"])
    op.create_table(
        "checkpoints",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_checkpoints_size", "checkpoints", ["log_id", "size"])
    _protect_append_only()


def _protect_append_only() -> None:
    """Reject UPDATE, DELETE (and TRUNCATE on PostgreSQL) of evidence rows, whoever the caller is."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'ledger: % on % is refused: the table is append-only', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'raise_exception';
            END $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
            )
        return
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'ledger: {action} on {table} is refused: the table is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the evidence schema cannot be downgraded: restore from a backup instead")
