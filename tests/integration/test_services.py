"""The service fixtures hand out real, working servers: each test does real I/O against one."""

from __future__ import annotations

import secrets
import time

import pytest
from azure.storage.blob import BlobServiceClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError


def _execute(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _scalar(url: str, statement: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement)).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_round_trip_in_a_fresh_database(pg_database, postgres_server) -> None:
    superuser, app = create_engine(pg_database.superuser_url), create_engine(pg_database.url)
    try:
        with superuser.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
            conn.execute(text("CREATE TABLE evidence (id bigint PRIMARY KEY, body text NOT NULL)"))
            conn.execute(text(f"GRANT SELECT, INSERT ON evidence TO {postgres_server.app_role}"))
        with app.begin() as conn:
            conn.execute(text("INSERT INTO evidence VALUES (1, 'first'), (2, 'second')"))
        with app.connect() as conn:
            rows = conn.execute(text("SELECT id, body FROM evidence ORDER BY id")).all()
            assert [tuple(row) for row in rows] == [(1, "first"), (2, "second")]
            assert conn.execute(text("SHOW server_version_num")).scalar_one().startswith("15")
    finally:
        app.dispose()
        superuser.dispose()


@pytest.mark.postgres
def test_postgres_keeps_default_durability(postgres_server) -> None:
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert _scalar(postgres_server.url, f"SHOW {setting}") == "on", setting


@pytest.mark.postgres
def test_postgres_app_role_is_not_superuser_but_superuser_url_is(pg_database) -> None:
    is_superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    assert _scalar(pg_database.url, is_superuser) is False
    assert _scalar(pg_database.superuser_url, is_superuser) is True
    assert _scalar(pg_database.superuser_url, "SELECT current_database()") == pg_database.name


@pytest.mark.postgres
def test_postgres_app_role_has_only_its_grants(pg_database, postgres_server) -> None:
    superuser, app = create_engine(pg_database.superuser_url), create_engine(pg_database.url)
    try:
        with superuser.begin() as conn:
            conn.execute(text("CREATE TABLE entries (seq bigint PRIMARY KEY)"))
            conn.execute(text(f"GRANT SELECT, INSERT ON entries TO {postgres_server.app_role}"))
        with app.begin() as conn:
            conn.execute(text("INSERT INTO entries VALUES (0)"))
        for statement in ("DELETE FROM entries", "DROP TABLE entries", "CREATE TABLE other (id int)"):
            with (
                pytest.raises(ProgrammingError, match=r"permission denied|must be owner"),
                app.begin() as conn,
            ):
                conn.execute(text(statement))
    finally:
        app.dispose()
        superuser.dispose()


@pytest.mark.postgres
def test_postgres_app_owned_database_lets_the_app_create_tables(postgres_server) -> None:
    with postgres_server.database("app_owned", app_owns=True) as database:
        app = create_engine(database.url)
        try:
            with app.begin() as conn:
                conn.execute(text("CREATE TABLE scratch (id int)"))
                conn.execute(text("INSERT INTO scratch VALUES (7)"))
            assert _scalar(database.url, "SELECT id FROM scratch") == 7
        finally:
            app.dispose()


@pytest.mark.postgres
def test_postgres_databases_are_isolated(postgres_server) -> None:
    with postgres_server.database("isolation") as first, postgres_server.database("isolation") as second:
        assert first.name != second.name
        _execute(first.superuser_url, "CREATE TABLE only_in_first (id int)")
        assert _scalar(second.superuser_url, "SELECT to_regclass('only_in_first') IS NULL") is True
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{first.name}'"
    assert _scalar(postgres_server.superuser_url, exists) == 0


@pytest.mark.kafka
def test_kafka_create_produce_and_fetch_assigned_partition(kafka_bootstrap) -> None:
    topic = f"services-test-{secrets.token_hex(4)}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    try:
        sent = [producer.send(topic, key=b"stream-1", value=f"event-{i}".encode()).get(timeout=30) for i in range(3)]
    finally:
        producer.close()
    assert [metadata.offset for metadata in sent] == [0, 1, 2]

    # Tansu delivers nothing to consumer groups (DESIGN.md section 5): assign the partition explicitly.
    partition = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        received: list[tuple[int, bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        while len(received) < 3 and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(partition, []):
                received.append((record.offset, record.key, record.value))
    finally:
        consumer.close()
    assert received == [
        (0, b"stream-1", b"event-0"),
        (1, b"stream-1", b"event-1"),
        (2, b"stream-1", b"event-2"),
    ]


@pytest.mark.blob
def test_blob_upload_and_download_round_trip(blob_connection_string) -> None:
    payload = secrets.token_bytes(256 * 1024) + b"\x00\xff end"
    container_name = f"services-test-{secrets.token_hex(4)}"
    with BlobServiceClient.from_connection_string(blob_connection_string) as client:
        container = client.create_container(container_name)
        try:
            container.upload_blob("segments/000001.bin", payload)
            downloaded = container.download_blob("segments/000001.bin").readall()
            names = [blob.name for blob in container.list_blobs()]
        finally:
            container.delete_container()
    assert downloaded == payload
    assert names == ["segments/000001.bin"]
