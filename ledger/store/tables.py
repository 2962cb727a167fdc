"""SQLAlchemy Core tables: one schema for PostgreSQL and SQLite, with ``log`` in every key.

Append-only tables (``entries``, ``merkle_nodes``, ``checkpoints``, ``entry_subjects``, ``cosignatures``)
are protected by triggers in the database itself (see the migrations) and, on PostgreSQL, by grants.
Timestamps are stored as fixed-width RFC 3339 UTC strings (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), which sort
correctly as text on both backends and are exactly what entry bodies carry.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

TIMESTAMP = String(27)
AUTO_ID = BigInteger().with_variant(Integer, "sqlite")

logs = Table(
    "logs",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("origin", String(255), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    # hashes of the complete subtrees of the binary decomposition of size, largest first (32 bytes each)
    Column("frontier", LargeBinary, nullable=False),
    Column("appends_since_checkpoint", BigInteger, nullable=False),
    Column("active_key_id", String(8), nullable=False),  # the key that signs new entries
    Column("created_at", TIMESTAMP, nullable=False),
)

log_keys = Table(
    "log_keys",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("verifier_key", Text, nullable=False),
    Column("valid_from_seq", BigInteger, nullable=False),
    Column("valid_until_seq", BigInteger, nullable=True),  # exclusive; NULL while the key is active
    Column("valid_from", TIMESTAMP, nullable=False),
    Column("valid_until", TIMESTAMP, nullable=True),
    PrimaryKeyConstraint("log_id", "key_id"),
)

entries = Table(
    "entries",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("stream", String(200), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("producer", String(200), nullable=False),
    Column("occurred_at", TIMESTAMP, nullable=False),
    Column("recorded_at", TIMESTAMP, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("key_id", String(8), nullable=False),
    PrimaryKeyConstraint("log_id", "seq"),
    UniqueConstraint("log_id", "event_id", name="uq_entries_event_id"),
    UniqueConstraint("log_id", "stream", "stream_seq", name="uq_entries_stream_seq"),
    Index("ix_entries_type", "log_id", "type", "seq"),
    Index("ix_entries_producer", "log_id", "producer", "seq"),
    Index("ix_entries_occurred_at", "log_id", "occurred_at"),
    Index("ix_entries_recorded_at", "log_id", "recorded_at"),
)

entry_subjects = Table(
    "entry_subjects",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("log_id", "subject", "seq"),
)

payloads = Table(
    "payloads",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("salt", LargeBinary(16), nullable=True),  # NULL once erased or disposed
    Column("payload", LargeBinary, nullable=True),  # canonical JSON bytes; NULL once erased or disposed
    Column("erased_at", TIMESTAMP, nullable=True),
    Column("erased_by_seq", BigInteger, nullable=True),
    Column("erasure_reason", String(100), nullable=True),
    PrimaryKeyConstraint("log_id", "seq"),
)

streams = Table(
    "streams",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("stream", String(200), nullable=False),
    Column("next_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("log_id", "stream"),
)

merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("end_seq", BigInteger, nullable=False),  # last leaf covered: (idx + 1) * 2**level - 1
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("log_id", "level", "idx"),
    Index("ix_merkle_nodes_end_seq", "log_id", "end_seq"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Index("ix_checkpoints_size", "log_id", "size"),
)

cosignatures = Table(
    "cosignatures",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("size", BigInteger, nullable=False),  # the checkpoint's tree size
    Column("witness_name", String(255), nullable=False),
    Column("witness_key_id", String(8), nullable=False),  # hex C2SP key id of the cosigner key (type 0x04)
    Column("signature_line", Text, nullable=False),  # "— <name> <base64>" as in the note, without the newline
    Column("created_at", TIMESTAMP, nullable=False),
    UniqueConstraint("log_id", "size", "witness_key_id", name="uq_cosignatures_witness"),
)

APPEND_ONLY_TABLES = ("entries", "entry_subjects", "merkle_nodes", "checkpoints", "cosignatures")

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", LargeBinary(32), nullable=False),  # SHA-256 of the random secret
    Column("role", String(20), nullable=False),
    Column("logs", Text, nullable=False),  # JSON list of log origins the key may see
    Column("stream_prefixes", Text, nullable=False),  # JSON list; publishers may append only there
    Column("name", String(200), nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("revoked_at", TIMESTAMP, nullable=True),
)

audit_runs = Table(
    "audit_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("requested_by", String(32), nullable=False),
    Column("started_at", TIMESTAMP, nullable=False),
    Column("finished_at", TIMESTAMP, nullable=True),
    Column("status", String(20), nullable=False),  # running, passed, failed, error
    Column("report", Text, nullable=True),  # the AuditReport as JSON
    Index("ix_audit_runs_log", "log_id", "started_at"),
)

relay_progress = Table(
    "relay_progress",
    metadata,
    Column("log_id", AUTO_ID, ForeignKey("logs.id"), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("next_seq", BigInteger, nullable=False),  # every seq below it has been acknowledged by the broker
    Column("updated_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("log_id", "topic"),
)

ingest_offsets = Table(
    "ingest_offsets",
    metadata,
    Column("consumer", String(100), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),  # advanced in the transaction that appends the messages
    Column("updated_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("consumer", "topic", "partition"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("consumer", String(100), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("message_offset", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("message", LargeBinary, nullable=False),  # kept until published to the dead-letter topic, and after
    Column("received_at", TIMESTAMP, nullable=False),
    Column("published_at", TIMESTAMP, nullable=True),
    UniqueConstraint("consumer", "topic", "partition", "message_offset", name="uq_dead_letters_message"),
)
