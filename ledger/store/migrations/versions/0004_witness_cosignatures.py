"""Witness cosignatures (C2SP tlog-cosignature) of the log's checkpoints, append-only like the checkpoints.

One row per log, checkpoint size and witness key: the signature line exactly as it appears in the published
note.  UPDATE and DELETE (and TRUNCATE on PostgreSQL) are refused by triggers, as for the tables of 0001;
``grant_app_role`` gives the application role SELECT and INSERT only.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.String(27)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TABLE = "cosignatures"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("log_id", AUTO_ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("witness_name", sa.String(255), nullable=False),
        sa.Column("witness_key_id", sa.String(8), nullable=False),
        sa.Column("signature_line", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("log_id", "size", "witness_key_id", name="uq_cosignatures_witness"),
    )
    _protect_append_only()


def _protect_append_only() -> None:
    """The triggers of 0001 for one more evidence table (on PostgreSQL, 0001's ledger_reject_change())."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} BEGIN "
            f"SELECT RAISE(ABORT, 'ledger: {action} on {TABLE} is refused: the table is append-only'); END"
        )


def downgrade() -> None:
    raise RuntimeError("the evidence schema cannot be downgraded: restore from a backup instead")
