"""Engines for PostgreSQL (psycopg 3) and SQLite, migrations, and the PostgreSQL application role."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import ConfigurationError, StorageUnavailable
from ledger.files import private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0004"  # the newest file in migrations/versions; a test keeps the two equal
WRITE_OPTION = "ledger_write"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def make_engine(url: str, *, timeout_seconds: float = 3.0) -> Engine:
    """An engine with the ledger's connection settings for the URL's dialect.

    ``timeout_seconds`` bounds connecting and waiting for a pooled connection, so that with the database
    down callers fail fast (StorageUnavailable, HTTP 503) instead of hanging; TCP keepalives notice a
    vanished server.  Broken connections invalidate the pool, so service resumes on its own.
    """
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(url)
    if parsed.drivername in ("postgresql", "postgres"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    elif not parsed.drivername.startswith("postgresql"):
        raise ConfigurationError(f"unsupported database: {parsed.drivername} (use postgresql or sqlite)")
    return create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,  # no pre-ping round trip per checkout: a dropped connection invalidates the pool
        pool_timeout=timeout_seconds,
        connect_args={
            "connect_timeout": max(1, round(timeout_seconds)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 3,
            "keepalives_count": 3,
        },
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        # Owner-only before SQLite opens it: SQLite gives its -wal and -shm files the database file's mode.
        private_file(Path(database))
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # durable: a committed entry survives power loss
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the database write lock up front, the SQLite form of locking the log head.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"the database is unreachable ({type(exc).__name__})") from exc


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (Alembic is only loaded when there is work)."""
    if schema_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"migration failed: {type(exc).__name__}") from exc


def grant_app_role(engine: Engine, role: str) -> None:
    """Give a PostgreSQL role what the application needs and no more.

    Evidence tables get SELECT and INSERT only: no UPDATE, DELETE or TRUNCATE grant, on top of the
    triggers.  Payloads may be updated (erasure), heads and streams advance, keys get a validity end.
    """
    if engine.dialect.name != "postgresql":
        raise ConfigurationError("roles and grants exist on PostgreSQL only")
    if not _ROLE_NAME.match(role):
        raise ConfigurationError("role name must be a lower-case SQL identifier")
    statements = [
        "REVOKE ALL ON entries, entry_subjects, merkle_nodes, checkpoints, cosignatures, payloads, logs, streams, "
        f"api_keys, audit_runs, log_keys, relay_progress, ingest_offsets, dead_letters FROM {role}",
        f"GRANT SELECT, INSERT ON entries, entry_subjects, merkle_nodes, checkpoints, cosignatures TO {role}",
        "GRANT SELECT, INSERT, UPDATE ON logs, streams, log_keys, payloads, api_keys, audit_runs, relay_progress, "
        f"ingest_offsets, dead_letters TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT SELECT ON alembic_version TO {role}",
    ]
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"granting rights to the application role failed: {type(exc).__name__}") from exc
