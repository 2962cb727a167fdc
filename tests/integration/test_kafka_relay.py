"""The relay out and topic set-up against a real Kafka-protocol broker and a real database.

The outage drills use a dedicated local Tansu broker (``services.local_tansu_broker``).  That Tansu keeps
topics in memory only, so stopping and starting it gives an *empty* broker, as after losing a broker's
disk; two drills therefore cover the acceptance criterion between them:

- ``test_drill_hung_broker``: the broker is frozen (SIGSTOP) mid-stream and thawed; its topic survives, and
  the single topic is checked to hold every entry from seq 0, in seq order, repeats only of seen seqs.
- ``test_drill_broker_stopped_and_started``: the broker process is killed mid-stream and started again,
  empty, on the same address.  The relay recreates its topic from the settings and resumes from its
  database progress; the new topic must hold every entry from that progress to the end, in order, and what
  a consumer read from the first broker before it died must be an in-order prefix from seq 0.  Records the
  first broker acknowledged but lost with its memory cannot come back without re-publishing: that is the
  broker's loss, not the relay's; on a broker that keeps its data the first drill's single-topic check
  applies.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from ledger.bus.records import MalformedRecordError, entry_record, parse_record
from ledger.bus.relay import Relay
from ledger.bus.topics import create_topics
from ledger.errors import PublishError, VerificationError
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.database import grant_app_role, make_engine, migrate
from ledger.store.records import EntryRecord
from tests.services import LocalBroker, local_tansu_broker

ORIGIN = "relay.bank.example/ledger"

pytestmark = pytest.mark.kafka

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def _event(number: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"controls/iam-{number % 3:02d}",
        "type": "test.written",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {"number": number, "note": "ünïcode ✓"},
    }


def _settings(data_dir: Path, bootstrap: str, **overrides: Any) -> Settings:
    """Settings with topics of their own, so tests sharing the session broker do not meet."""
    unique = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": f"entries-{unique}",
        "kafka_dead_letter_topic": f"dead-letters-{unique}",
        "relay_batch_size": 7,
        "relay_interval_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def _append(ledger: Ledger, count: int, start: int = 0) -> None:
    ledger.append_batch([_event(start + n) for n in range(count)], "relay-tests")


def read_topic(bootstrap: str, topic: str, expect_seqs: int, timeout: float = 20.0) -> list[Record]:
    """Every record of partition 0 from the beginning (explicit assignment: Tansu has no consumer groups).

    Reads until seqs 0 .. expect_seqs - 1 have all been seen (or the timeout), then once more briefly so
    that records beyond them would show.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000
    )
    partition = TopicPartition(topic, 0)
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records: list[Record] = []
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(seen) < expect_seqs:
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    records.append((message.key, message.value, list(message.headers)))
                    seen.add(json.loads(message.value)["seq"])
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend((m.key, m.value, list(m.headers)) for m in batch)
        return records
    finally:
        consumer.close()


def assert_in_seq_order(records: list[Record], entries: list[EntryRecord], start: int = 0) -> list[int]:
    """The consumer's rule: drop a seq already seen; what is left must be start, start+1, ... (no gap).

    Every record, repeats included, must carry exactly the stored entry.  Returns the seqs as read.
    """
    by_seq = {entry.seq: entry for entry in entries}
    expected = start
    seqs = []
    for key, value, headers in records:
        record = parse_record(key, value, headers)
        entry = by_seq[record.seq]
        assert (record.body, record.hash, record.signature) == (entry.body, entry.hash, entry.signature)
        assert (record.key_id, record.stream, record.log) == (entry.key_id, entry.stream, ORIGIN)
        assert record.seq <= expected, f"gap: seq {record.seq} arrived while {expected} was expected"
        if record.seq == expected:
            expected += 1
        seqs.append(record.seq)
    return seqs


def _covered(seqs: list[int], start: int = 0) -> int:
    """One past the last seq reached without a gap (repeats ignored)."""
    expected = start
    for seq in seqs:
        if seq == expected:
            expected += 1
    return expected


# --- the record format and one pass --------------------------------------------------------------------


def test_relay_publishes_every_entry_in_seq_order_in_the_record_format(tmp_path: Path, kafka_bootstrap: str) -> None:
    settings = _settings(tmp_path, kafka_bootstrap)
    ledger = Ledger.create(settings, ORIGIN)
    _append(ledger, 25)  # 25 entries, published in chunks of 7
    with Relay(ledger, settings) as relay:
        assert relay.next_seq() == 0
        assert relay.run_once() == 25
        assert relay.next_seq() == 25
        assert relay.run_once() == 0  # nothing new: nothing sent
    entries = list(ledger.entries())
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 25)
    assert assert_in_seq_order(records, entries) == list(range(25))  # exactly once each

    for (key, value, headers), entry in zip(records, entries, strict=True):
        assert key == entry.stream.encode()
        assert headers == [
            ("ledger-seq", str(entry.seq).encode()),
            ("ledger-hash", entry.hash.hex().encode()),
            ("ledger-log", ORIGIN.encode()),
        ]
        fields = orjson.loads(value)
        assert list(fields) == ["log", "seq", "body", "hash", "signature", "key_id"]  # no payload by default
        assert fields["body"].encode("utf-8") == entry.body  # the exact signed bytes
        assert fields["hash"] == entry.hash.hex()
        assert base64.b64decode(fields["signature"], validate=True) == entry.signature
        assert fields["key_id"] == entry.key_id
        assert (key, value, headers) == entry_record(ORIGIN, entry)

    # Progress lives in the database: a new relay (a restart) publishes only what is new.
    _append(ledger, 5, start=25)
    with Relay(Ledger.open(settings, ORIGIN), settings) as restarted:
        assert restarted.next_seq() == 25
        assert restarted.run_once() == 5
        assert restarted.run_once() == 0
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 30)
    assert assert_in_seq_order(records, list(ledger.entries())) == list(range(30))


@pytest.fixture
def pg_settings(pg_database: Any, postgres_server: Any, tmp_path: Path, kafka_bootstrap: str) -> Settings:
    admin = make_engine(pg_database.superuser_url)
    migrate(admin)
    grant_app_role(admin, postgres_server.app_role)
    admin.dispose()
    return _settings(tmp_path, kafka_bootstrap, database_url=pg_database.url, kafka_publish_payloads=True)


def test_relay_on_postgresql_publishes_payloads_only_when_configured(pg_settings: Settings) -> None:
    ledger = Ledger.create(pg_settings, ORIGIN)
    _append(ledger, 12)
    with Relay(ledger, pg_settings) as relay:
        assert relay.idempotent
        assert relay.run_once() == 12
    assert pg_settings.kafka_bootstrap_servers
    records = read_topic(pg_settings.kafka_bootstrap_servers, pg_settings.kafka_topic, 12)
    entries = list(ledger.entries())
    assert assert_in_seq_order(records, entries) == list(range(12))
    stored = ledger.recorder.payloads(ledger.head().log_id, list(range(12)))
    for _, value, _ in records:
        fields = orjson.loads(value)
        assert orjson.dumps(fields["payload"]) == stored[fields["seq"]].payload  # the canonical payload
        assert fields["payload"]["note"] == "ünïcode ✓"
    with Relay(Ledger.open(pg_settings, ORIGIN), pg_settings) as again:
        assert again.next_seq() == 12  # progress kept in PostgreSQL
        assert again.run_once() == 0
    ledger.recorder.engine.dispose()


def test_relay_falls_back_when_the_broker_refuses_idempotence(
    tmp_path: Path, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    from kafka import KafkaProducer
    from kafka.errors import UnsupportedVersionError

    configs: list[dict[str, Any]] = []

    def refusing_idempotence(config: dict[str, Any]) -> Any:
        configs.append(config)
        if config["enable_idempotence"]:
            raise UnsupportedVersionError("idempotent producer")  # as from a broker before Kafka 0.11
        return KafkaProducer(**config)

    settings = _settings(tmp_path, kafka_bootstrap)
    ledger = Ledger.create(settings, ORIGIN)
    _append(ledger, 10)
    with caplog.at_level("WARNING", logger="ledger.relay"), Relay(ledger, settings, refusing_idempotence) as relay:
        assert relay.run_once() == 10
        assert not relay.idempotent
    assert [c["enable_idempotence"] for c in configs] == [True, False]
    assert configs[1]["max_in_flight_requests_per_connection"] == 1  # retries cannot reorder records
    assert all(c["acks"] == "all" and c["retries"] > 0 for c in configs)
    assert "refused the idempotent producer" in caplog.text
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 10)
    assert assert_in_seq_order(records, list(ledger.entries())) == list(range(10))
    ledger.recorder.engine.dispose()


def test_parse_record_refuses_malformed_records(tmp_path: Path) -> None:
    ledger = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    _append(ledger, 1)
    entry = next(ledger.entries())
    key, value, headers = entry_record(ORIGIN, entry)
    parsed = parse_record(key, value, headers)
    assert (parsed.seq, parsed.body, parsed.hash, parsed.signature) == (0, entry.body, entry.hash, entry.signature)
    fields = orjson.loads(value)

    def with_fields(**changes: Any) -> bytes:
        return orjson.dumps({**fields, **changes})

    cases: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (key, b"not json", headers),
        (key, b"[1, 2]", headers),
        (key, with_fields(seq=True), headers),
        (key, with_fields(seq=-1), headers),
        (key, orjson.dumps({k: v for k, v in fields.items() if k != "signature"}), headers),
        (key, with_fields(extra=1), headers),
        (key, with_fields(hash="zz" * 32), headers),
        (key, with_fields(hash=entry.hash.hex().upper()), headers),
        (key, with_fields(signature="not base64!"), headers),
        (key, with_fields(key_id="abc"), headers),
        (key, with_fields(body=""), headers),
        (key, with_fields(payload=[1]), headers),
        (None, value, headers),
        (b"\xff\xfe", value, headers),
        (key, value, headers[:2]),
        (key, value, [*headers, ("ledger-seq", b"0")]),
        (key, value, [("ledger-seq", b"1"), *headers[1:]]),
        (key, value, [headers[0], ("ledger-hash", b"00" * 32), headers[2]]),
        (key, value, [*headers[:2], ("ledger-log", b"other.example/log")]),
    ]
    for case_key, case_value, case_headers in cases:
        with pytest.raises(MalformedRecordError) as caught:
            parse_record(case_key, case_value, case_headers)
        assert isinstance(caught.value, VerificationError)
        assert str(caught.value).startswith("malformed record")
    with pytest.raises(MalformedRecordError) as caught:
        parse_record(key, with_fields(hash="00"), headers)
    assert caught.value.seq == 0  # reported by seq when the seq is readable
    ledger.recorder.engine.dispose()


# --- outage drills -----------------------------------------------------------------------------------


class Appender:
    """Appends small batches continuously in a thread; appends never wait for the broker."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.appended = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _append(self.ledger, 3, start=self.appended)
                self.appended += 3
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)
                return
            time.sleep(0.01)

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


class RelayLoop:
    """``Relay.run_forever`` in a thread, as in ``ledger relay`` and ``ledger serve``."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=relay.run_forever, args=(self._stop,), daemon=True)

    def __enter__(self) -> RelayLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _drill_settings(tmp_path: Path, broker: LocalBroker) -> Settings:
    return _settings(tmp_path, broker.bootstrap, relay_batch_size=20)


def _outage(ledger: Ledger, settings: Settings, appender: Appender, relay: Relay) -> None:
    """While the broker is unavailable: appends keep committing, the relay's progress stays put and a pass
    fails with PublishError (the loop meanwhile backs off)."""
    began = time.monotonic()
    progress_before = relay.next_seq()
    floor = max(ledger.head().size, progress_before + settings.relay_batch_size)  # beyond any chunk in flight
    _wait_for(lambda: ledger.head().size >= floor + 60, 20, "appends during the outage")
    with Relay(ledger, settings, publish_timeout_seconds=2) as probe, pytest.raises(PublishError):
        probe.run_once()
    # Long enough for the loop's pending records to expire (publish timeout 2 s) and for it to back off.
    _wait_for(lambda: time.monotonic() - began > 3.5, 10, "the outage to last")
    assert not appender.errors, appender.errors
    assert relay.next_seq() <= progress_before + settings.relay_batch_size  # at most the chunk being acked
    assert relay.next_seq() < ledger.head().size


def _catch_up(ledger: Ledger, appender: Appender, relay: Relay) -> int:
    time.sleep(0.3)  # appends go on after the broker is back
    appender.stop()
    assert not appender.errors, appender.errors
    size = ledger.head().size
    _wait_for(lambda: relay.next_seq() == size, 30, "the relay to catch up")
    return size


def test_drill_hung_broker(tmp_path: Path) -> None:
    with local_tansu_broker() as broker:
        settings = _drill_settings(tmp_path, broker)
        ledger = Ledger.create(settings, ORIGIN)
        relay = Relay(ledger, settings, publish_timeout_seconds=2)
        with Appender(ledger) as appender, RelayLoop(relay):
            _wait_for(lambda: relay.next_seq() >= 40, 20, "the first entries to be published")
            broker.pause()  # mid-stream: connections hang, nothing answers
            _outage(ledger, settings, appender, relay)
            broker.resume()
            size = _catch_up(ledger, appender, relay)
        records = read_topic(broker.bootstrap, settings.kafka_topic, size)
        seqs = assert_in_seq_order(records, list(ledger.entries()))
        assert _covered(seqs) == size  # every entry from seq 0, in seq order, on the one topic
        assert len(seqs) - size <= 10 * settings.relay_batch_size  # repeats: only chunks sent during the outage
    ledger.recorder.engine.dispose()


class Mirror:
    """A consumer reading the topic as it is written (explicitly assigned partition), until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Record] = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        partition = TopicPartition(topic, 0)
        self._consumer.assign([partition])
        self._consumer.seek_to_beginning(partition)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for batch in self._consumer.poll(timeout_ms=100).values():
                self.records.extend((m.key, m.value, list(m.headers)) for m in batch)

    def stop(self) -> list[Record]:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()
        return self.records


def test_drill_broker_stopped_and_started(tmp_path: Path) -> None:
    with local_tansu_broker() as broker:
        settings = _drill_settings(tmp_path, broker)
        ledger = Ledger.create(settings, ORIGIN)
        assert create_topics(settings).ok
        relay = Relay(ledger, settings, publish_timeout_seconds=2)
        mirror = Mirror(broker.bootstrap, settings.kafka_topic)
        with Appender(ledger) as appender, RelayLoop(relay):
            _wait_for(lambda: relay.next_seq() >= 40, 20, "the first entries to be published")
            _wait_for(lambda: len(mirror.records) >= 40, 20, "a consumer to read them")
            broker.kill()  # mid-stream, like a crash; its memory storage (the topic) is gone with it
            first_life = mirror.stop()
            _outage(ledger, settings, appender, relay)
            resumed_from = relay.next_seq()
            broker.start()  # same address, empty: the relay recreates its topic from the settings
            size = _catch_up(ledger, appender, relay)
        entries = list(ledger.entries())
        first = assert_in_seq_order(first_life, entries)
        assert _covered(first) >= 40  # what a consumer saw before the broker died: in order from seq 0
        second_life = read_topic(broker.bootstrap, settings.kafka_topic, size - resumed_from)
        assert second_life, "nothing on the topic after the restart"
        assert parse_record(*second_life[0]).seq == resumed_from  # resumed from the database progress
        second = assert_in_seq_order(second_life, entries, start=resumed_from)
        assert _covered(second, start=resumed_from) == size  # then every entry, in seq order, to the end
        assert create_topics(settings).ok  # the recreated topic has the configured settings
    ledger.recorder.engine.dispose()


# --- inside the server and on the command line --------------------------------------------------------


def test_server_runs_the_relay_when_kafka_is_configured(tmp_path: Path, kafka_bootstrap: str) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = _settings(tmp_path, kafka_bootstrap)
    ledger = Ledger.create(settings, ORIGIN)
    _append(ledger, 10)
    with TestClient(create_app(settings)):
        relay_progress = Relay(ledger, settings, create_topic=False)
        _wait_for(lambda: relay_progress.next_seq() == 10, 20, "the server's relay to publish")
        _append(ledger, 4, start=10)
        _wait_for(lambda: relay_progress.next_seq() == 14, 20, "the server's relay to publish new entries")
    assert not [t for t in threading.enumerate() if t.name == "ledger-relay"]  # stopped with the server
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 14)
    assert assert_in_seq_order(records, list(ledger.entries())) == list(range(14))
    ledger.recorder.engine.dispose()


def test_server_ingests_when_an_ingest_topic_is_configured(tmp_path: Path, kafka_bootstrap: str) -> None:
    from fastapi.testclient import TestClient
    from kafka import KafkaProducer

    from api.app import create_app

    settings = _settings(tmp_path, kafka_bootstrap, kafka_ingest_topic=f"ingest-{uuid.uuid4().hex[:10]}")
    ledger = Ledger.create(settings, ORIGIN)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for event_id in ids:
        event = {
            "id": event_id,
            "stream": "controls/iam-01/host-001",
            "type": "check.result",
            "occurred_at": "2026-11-20T10:00:00Z",
            "payload": {
                "control_id": "IAM-01",
                "check_id": "c1",
                "status": "pass",
                "observed_at": "2026-11-20T10:00:00Z",
            },
        }
        producer.send(settings.kafka_ingest_topic or "", json.dumps(event).encode())
    producer.flush()
    producer.close()
    with TestClient(create_app(settings)):
        _wait_for(lambda: ledger.head().size == 5, 30, "the server to ingest the topic")
    assert not [t for t in threading.enumerate() if t.name in ("ledger-relay", "ledger-ingest")]
    assert sorted(e.event_id for e in ledger.entries()) == sorted(ids)
    assert {e.producer for e in ledger.entries()} == {f"kafka:{settings.kafka_ingest_topic}"}
    ledger.recorder.engine.dispose()


def _ledger_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _report_block(report: str, topic: str) -> list[str]:
    """The lines of ``ledger kafka create-topics`` about one topic."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{topic} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


def test_cli_relay_once_and_create_topics(tmp_path: Path, kafka_bootstrap: str) -> None:
    settings = _settings(tmp_path, kafka_bootstrap, kafka_ingest_topic=f"ingest-{uuid.uuid4().hex[:10]}")
    ledger = Ledger.create(settings, ORIGIN)
    _append(ledger, 9)
    env = {
        "LEDGER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEDGER_KAFKA_TOPIC": settings.kafka_topic,
        "LEDGER_KAFKA_INGEST_TOPIC": str(settings.kafka_ingest_topic),
        "LEDGER_KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
    }

    created = _ledger_cli(tmp_path, "kafka", "create-topics", **env)
    assert created.returncode == 0, created
    for topic in (settings.kafka_topic, settings.kafka_ingest_topic, settings.kafka_dead_letter_topic):
        assert f"{topic} (" in created.stdout and "created" in created.stdout
    assert "difference" not in created.stdout

    again = _ledger_cli(tmp_path, "kafka", "create-topics", **env)
    assert again.returncode == 0, again
    assert again.stdout.count(": exists") == 3
    differs = _ledger_cli(tmp_path, "kafka", "create-topics", **env, LEDGER_KAFKA_PARTITIONS="2")
    assert differs.returncode == 1, differs
    assert differs.stdout.count("difference: partitions 1, settings ask for 2") == 3
    differs = _ledger_cli(tmp_path, "kafka", "create-topics", **env, LEDGER_KAFKA_RETENTION_MS="86400000")
    assert differs.returncode == 1, differs
    assert "difference: retention.ms 220752000000, settings ask for 86400000" in differs.stdout

    # A topic made by someone else without our settings: a difference where the broker shows its
    # configuration (Apache Kafka), or plainly "not readable" where it does not (Tansu) - never "matches".
    foreign = f"foreign-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics({foreign: {"num_partitions": 1, "replication_factor": 1}})
    admin.close()
    checked = _ledger_cli(tmp_path, "kafka", "create-topics", **{**env, "LEDGER_KAFKA_TOPIC": foreign})
    block = _report_block(checked.stdout, foreign)
    assert block[0] == f"{foreign} (ledger entries): exists", checked.stdout  # never "matches the settings"
    if checked.returncode == 0:
        assert "  not checked (configuration not readable on this broker): " in block[1], checked.stdout
        assert "retention.ms" in block[1]
    else:
        assert checked.returncode == 1, checked
        assert any(line.startswith("  difference: retention.ms") for line in block), checked.stdout

    published = _ledger_cli(tmp_path, "relay", "--once", **env)
    assert published.returncode == 0, published
    assert published.stdout.strip() == f"published 9 entries to {settings.kafka_topic}; next seq 9"
    nothing = _ledger_cli(tmp_path, "relay", "--once", **env)
    assert nothing.stdout.strip() == f"published 0 entries to {settings.kafka_topic}; next seq 9"
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 9)
    assert assert_in_seq_order(records, list(ledger.entries())) == list(range(9))

    # Without --once the relay runs until SIGTERM, publishing what is appended meanwhile.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    environment.update(env, LEDGER_RELAY_INTERVAL_SECONDS="0.05")
    running = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(tmp_path), "relay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        _append(ledger, 4, start=9)
        progress = Relay(ledger, settings, create_topic=False)
        _wait_for(lambda: progress.next_seq() == 13, 30, "`ledger relay` to publish new entries")
    finally:
        running.send_signal(signal.SIGTERM)
        _, stderr = running.communicate(timeout=30)
    assert running.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    records = read_topic(kafka_bootstrap, settings.kafka_topic, 13)
    assert assert_in_seq_order(records, list(ledger.entries())) == list(range(13))

    unconfigured = _ledger_cli(tmp_path, "relay", "--once")
    assert unconfigured.returncode == 2
    assert unconfigured.stderr.strip() == "error: no Kafka broker configured: set LEDGER_KAFKA_BOOTSTRAP_SERVERS"
    ledger.recorder.engine.dispose()


@pytest.fixture(autouse=True)
def _quiet_kafka_client() -> Iterator[None]:
    """kafka-python logs an ERROR for every refused connection during the drills; keep reports readable."""
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("kafka").setLevel(logging.NOTSET)
