"""Exactly-once ingest from Kafka with a real broker and a real PostgreSQL server.

The drill at the end is the issue's acceptance test: ``ledger ingest`` runs as a subprocess while a producer
writes, is killed with SIGKILL at random moments (at least ten times) and restarted; once it has drained,
the ledger holds every valid message exactly once and every refused one is a dead letter exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import func, select

from ledger.bus.cloudevents import cloudevent_id
from ledger.bus.ingest import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    IngestConsumer,
    ingest_producer,
)
from ledger.errors import PublishError
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.bus import BusStore
from ledger.store.records import EntryFilter
from ledger.store.tables import entries
from tests import services

ORIGIN = "ingest.bank.example/ledger"
SECRET_VALUE = "Jane-Doe-4711"  # must never appear in a dead letter's reason

Headers = list[tuple[str, bytes]]
Message = tuple[int, bytes | None, Headers]
"""(partition, value, headers) of a message to send."""


@dataclass
class IngestSetup:
    settings: Settings
    ledger: Ledger
    bootstrap: str
    topic: str
    dead_letter_topic: str
    database_url: str

    def consumer(self, **kwargs: Any) -> IngestConsumer:
        return IngestConsumer(self.ledger, self.settings, **kwargs)

    def entries(self) -> list[Any]:
        return list(self.ledger.entries(EntryFilter(producer=ingest_producer(self.topic))))


@pytest.fixture
def ingest_setup(
    tmp_path: Path, pg_database: services.Database, postgres_server: services.PostgresServer, kafka_bootstrap: str
) -> Iterator[IngestSetup]:
    services.production_layout(pg_database, postgres_server.app_role)
    suffix = uuid.uuid4().hex[:10]
    topic, dead_letter_topic = f"ingest-{suffix}", f"ingest-dead-{suffix}"
    services.create_kafka_topics(kafka_bootstrap, {topic: 2, dead_letter_topic: 1})
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_database.url,
        log_origin=ORIGIN,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_ingest_topic=topic,
        kafka_dead_letter_topic=dead_letter_topic,
        max_payload_bytes=4096,
    )
    ledger = Ledger.create(settings, ORIGIN)
    yield IngestSetup(settings, ledger, kafka_bootstrap, topic, dead_letter_topic, pg_database.url)
    ledger.recorder.engine.dispose()


def _producer(bootstrap: str, linger_ms: int = 5) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms)


def _send_all(bootstrap: str, topic: str, messages: list[Message], linger_ms: int = 5) -> None:
    producer = _producer(bootstrap, linger_ms)
    try:
        futures = [
            producer.send(topic, value=value, key=None if value else b"key", partition=p, headers=h)
            for p, value, h in messages
        ]
        producer.flush(30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


def _read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        records.extend(r for batch in consumer.poll(timeout_ms=300).values() for r in batch)
        return records
    finally:
        consumer.close()


def check_payload(number: int, status: str = "pass") -> dict[str, Any]:
    return {
        "control_id": "IAM-01",
        "check_id": f"IAM-01-{number}",
        "status": status,
        "framework_refs": ["DORA Art. 9(4)(d)"],
        "evidence": [],
        "observed_at": "2026-11-20T10:00:00Z",
    }


def envelope(number: int, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.UUID(int=number + 1, version=4)),
        "stream": f"controls/iam-01/host-{number % 7:03d}",
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": check_payload(number),
    }
    event.update(changes)
    return event


def cloudevent(number: int, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"evt-{number}",
        "source": "https://ci.bank.example/iam-checker",
        "type": "check.result",
        "time": "2026-11-20T11:00:00+01:00",
        "subject": "host-001",
        "datacontenttype": "application/json",
        "ledgerstream": "controls/iam-01/cloud",
        "data": check_payload(number),
    }
    event.update(changes)
    return event


def test_mixed_messages_are_appended_once_and_refusals_dead_lettered(ingest_setup: IngestSetup) -> None:
    setup = ingest_setup
    first = envelope(1)
    ce_header: Headers = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    valid: list[Message] = [
        (0, orjson.dumps(first), []),
        (1, orjson.dumps(cloudevent(2)), []),
        (0, orjson.dumps(cloudevent(3)), ce_header),
        (1, orjson.dumps(envelope(4, producer="someone-else")), []),  # producer field ignored
    ]
    duplicate: Message = (1, orjson.dumps(first), [])  # the same event again: stored once
    refused: dict[str, Message] = {
        "bad JSON": (0, b'{"id": "' + SECRET_VALUE.encode() + b'"', []),
        "no stream": (1, orjson.dumps({k: v for k, v in envelope(5).items() if k != "stream"}), []),
        "bad type": (0, orjson.dumps(cloudevent(6, type="com.Example.Check")), []),
        "no ledgerstream": (1, orjson.dumps({k: v for k, v in cloudevent(7).items() if k != "ledgerstream"}), []),
        "oversize": (0, orjson.dumps(envelope(8, payload={"blob": "x" * 100_000})), []),
        "float": (1, orjson.dumps(envelope(9, payload={**check_payload(9), "secret": SECRET_VALUE, "n": 1.5})), []),
        "conflict": (0, orjson.dumps(envelope(1, occurred_at="2026-11-21T10:00:00Z")), []),
        "tombstone": (1, None, []),
    }
    sent = [*valid, duplicate, *refused.values()]
    _send_all(setup.bootstrap, setup.topic, sent)
    total = len(sent)

    with setup.consumer() as consumer:
        stats = consumer.run_once()
    assert stats.consumed == total
    assert stats.appended == len(valid)
    assert stats.already_stored == 1
    assert stats.dead_lettered == len(refused)
    assert stats.dead_letters_published == len(refused)

    stored = {entry.event_id: entry for entry in setup.entries()}
    ce2 = cloudevent_id("https://ci.bank.example/iam-checker", "evt-2")
    ce3 = cloudevent_id("https://ci.bank.example/iam-checker", "evt-3")
    assert set(stored) == {first["id"], ce2, ce3, envelope(4)["id"]}
    assert stored[first["id"]].stream == "controls/iam-01/host-001"
    assert stored[first["id"]].occurred_at == "2026-11-20T10:00:00.000000Z"
    assert stored[ce2].stream == "controls/iam-01/cloud"
    assert stored[ce2].type == "check.result"
    assert stored[ce2].occurred_at == "2026-11-20T10:00:00.000000Z"
    assert {entry.producer for entry in stored.values()} == {f"kafka:{setup.topic}"}
    payload = setup.ledger.payload(stored[ce3].seq)
    assert payload is not None and orjson.loads(payload.payload or b"") == check_payload(3)

    # The dead letters: in the database and on the dead-letter topic, with the reason and the original bytes.
    by_value = {value: name for name, (_, value, _) in refused.items()}
    letters = BusStore(setup.ledger.recorder.engine).dead_letters(setup.settings.kafka_consumer_name)
    assert len(letters) == len(refused)
    assert all(letter.published_at for letter in letters)
    reasons = {by_value[letter.message or None]: letter.reason for letter in letters}
    assert reasons["bad JSON"].startswith("message: invalid JSON")
    assert reasons["no stream"] == "stream: is required"
    assert reasons["bad type"].startswith("type: must be two or more dot-separated lowercase words")
    assert reasons["no ledgerstream"].startswith("ledgerstream: is required")
    assert "exceeds the limit" in reasons["oversize"]
    assert reasons["float"].startswith("payload.n: ")
    assert "already stored with different content" in reasons["conflict"]
    assert reasons["tombstone"] == "message: the value is empty"
    assert not any(SECRET_VALUE in reason for reason in reasons.values())

    published = _read_topic(setup.bootstrap, setup.dead_letter_topic, len(refused))
    assert len(published) == len(refused)
    by_offset = {(letter.partition, letter.offset): letter for letter in letters}
    for record in published:
        headers = {key: value.decode() for key, value in record.headers}
        assert headers[HEADER_TOPIC] == setup.topic
        letter = by_offset[(int(headers[HEADER_PARTITION]), int(headers[HEADER_OFFSET]))]
        assert headers[HEADER_REASON] == letter.reason
        assert (record.value or b"") == letter.message

    # Offsets: the end of each partition, stored with the entries.
    offsets = BusStore(setup.ledger.recorder.engine).consumer_offsets(setup.settings.kafka_consumer_name, setup.topic)
    assert offsets == {p: sum(1 for q, _, _ in sent if q == p) for p in (0, 1)}

    # Running again appends nothing and dead-letters nothing: the offsets were stored with the entries.
    size = setup.ledger.head().size
    with setup.consumer() as again:
        assert again.run_once().consumed == 0
    assert setup.ledger.head().size == size
    assert len(BusStore(setup.ledger.recorder.engine).dead_letters()) == len(refused)
    assert setup.ledger.audit().ok


class _FailingProducer:
    def send(self, *args: Any, **kwargs: Any) -> Any:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError("broker unavailable")

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def test_dead_letters_wait_in_the_database_until_the_broker_takes_them(ingest_setup: IngestSetup) -> None:
    setup = ingest_setup
    _send_all(setup.bootstrap, setup.topic, [(0, b"not json", []), (1, orjson.dumps(envelope(1)), [])])
    bus = BusStore(setup.ledger.recorder.engine)
    with setup.consumer(producer_factory=_FailingProducer) as failing:
        stats = failing.run_once()
    assert (stats.consumed, stats.appended, stats.dead_lettered, stats.dead_letters_published) == (2, 1, 1, 0)
    assert len(bus.unpublished_dead_letters(setup.settings.kafka_consumer_name)) == 1

    with setup.consumer() as working:  # nothing new to consume: it publishes what was left
        stats = working.run_once()
    assert (stats.consumed, stats.dead_letters_published) == (0, 1)
    assert bus.unpublished_dead_letters(setup.settings.kafka_consumer_name) == []
    [record] = _read_topic(setup.bootstrap, setup.dead_letter_topic, 1)
    assert record.value == b"not json"


def test_a_poll_of_refused_messages_only_still_stores_offsets_and_dead_letters(ingest_setup: IngestSetup) -> None:
    setup = ingest_setup
    size = setup.ledger.head().size
    _send_all(setup.bootstrap, setup.topic, [(0, b"[]", []), (0, b"{}", []), (1, b"nope", [])])
    with setup.consumer() as consumer:
        stats = consumer.run_once()
    assert (stats.consumed, stats.appended, stats.dead_lettered, stats.dead_letters_published) == (3, 0, 3, 3)
    assert setup.ledger.head().size == size
    bus = BusStore(setup.ledger.recorder.engine)
    assert bus.consumer_offsets(setup.settings.kafka_consumer_name, setup.topic) == {0: 2, 1: 1}
    assert [letter.reason for letter in bus.dead_letters()] == [
        "message: must be a JSON object",
        "id: is required | stream: is required | type: is required | occurred_at: is required | payload: is required",
        "message: invalid JSON at line 1 column 1",
    ]


def test_run_once_reads_to_the_end_of_the_last_record_batch(ingest_setup: IngestSetup) -> None:
    """Tansu lists the start of the last record batch as a partition's end: the fetch's high watermark counts."""
    setup = ingest_setup
    messages: list[Message] = [(n % 2, orjson.dumps(envelope(n)), []) for n in range(60)]
    _send_all(setup.bootstrap, setup.topic, messages, linger_ms=500)  # one record batch per partition
    with setup.consumer(batch_size=7) as consumer:
        stats = consumer.run_once()
    assert (stats.consumed, stats.appended) == (60, 60)


def test_events_for_the_ledgers_own_streams_are_dead_lettered(ingest_setup: IngestSetup) -> None:
    """ledger/holds, ledger/keys and the like hold records the ledger trusts: nobody appends there from Kafka."""
    setup = ingest_setup
    forged = [envelope(n, stream=stream) for n, stream in enumerate(("ledger/holds", "ledger/keys", "ledger"))]
    _send_all(setup.bootstrap, setup.topic, [(0, orjson.dumps(event), []) for event in forged])
    with setup.consumer() as consumer:
        stats = consumer.run_once()
    assert (stats.consumed, stats.appended, stats.dead_lettered) == (3, 0, 3)
    assert setup.entries() == []
    letters = BusStore(setup.ledger.recorder.engine).dead_letters(setup.settings.kafka_consumer_name)
    assert [letter.reason for letter in letters] == [
        "stream: streams under ledger/ are written by the ledger itself"
    ] * 3


def test_run_forever_consumes_until_stopped(ingest_setup: IngestSetup) -> None:
    setup = ingest_setup
    _send_all(setup.bootstrap, setup.topic, [(n % 2, orjson.dumps(envelope(n)), []) for n in range(20)])
    stop = threading.Event()
    with setup.consumer(batch_size=3) as consumer:
        stats = consumer.run_forever(stop, max_messages=20)
    assert (stats.consumed, stats.appended) == (20, 20)
    assert len(setup.entries()) == 20


def test_missing_topic_is_a_publish_error(ingest_setup: IngestSetup) -> None:
    settings = ingest_setup.settings.model_copy(update={"kafka_ingest_topic": f"missing-{uuid.uuid4().hex[:8]}"})
    with IngestConsumer(ingest_setup.ledger, settings) as consumer, pytest.raises(PublishError, match="does not exist"):
        consumer.run_once()


# --- the acceptance drill ----------------------------------------------------------------------------------

DRILL_KILLS = 12
DRILL_BURST = 100  # messages sent every DRILL_PAUSE seconds: faster than a consumer restarted every ~2 s drains
DRILL_PAUSE = 0.05


def _drill_message(number: int) -> tuple[bytes, str | None]:
    """Message ``number`` of the drill and the event id it must become (None: invalid, every tenth one)."""
    if number % 10 == 9:
        return orjson.dumps({"id": f"bad-{number}", "payload": {}}), None
    if number % 3 == 0:
        event = cloudevent(number, id=f"drill-{number}")
        return orjson.dumps(event), cloudevent_id(event["source"], event["id"])
    event = envelope(number, occurred_at="2026-11-22T08:00:00Z")
    return orjson.dumps(event), event["id"]


class _SteadyProducer(threading.Thread):
    """Writes drill messages to the ingest topic until stopped; ``sent`` counts those the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[BaseException] = []

    def run(self) -> None:
        try:
            producer = _producer(self.bootstrap)
            try:
                while not self.stop.is_set():
                    for _ in range(DRILL_BURST):
                        producer.send(self.topic, value=_drill_message(self.sent)[0]).add_errback(self.failures.append)
                        self.sent += 1
                    time.sleep(DRILL_PAUSE)
                producer.flush(60)
            finally:
                producer.close()
        except BaseException as exc:
            self.failures.append(exc)


def _ingest_command(setup: IngestSetup, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=setup.database_url,
        LEDGER_KAFKA_BOOTSTRAP_SERVERS=setup.bootstrap,
        LEDGER_KAFKA_INGEST_TOPIC=setup.topic,
        LEDGER_KAFKA_DEAD_LETTER_TOPIC=setup.dead_letter_topic,
        LEDGER_DATA_DIR=str(setup.settings.data_dir),
        LEDGER_LOG_ORIGIN=ORIGIN,
        LEDGER_MAX_PAYLOAD_BYTES=str(setup.settings.max_payload_bytes),
    )
    return [sys.executable, "-m", "ledger.cli", "ingest", "--log-level", "warning", *args], env


def _consumed(setup: IngestSetup) -> int:
    """Messages consumed so far: the sum of the next offsets stored in the database."""
    offsets = BusStore(setup.ledger.recorder.engine).consumer_offsets(setup.settings.kafka_consumer_name, setup.topic)
    return sum(offsets.values())


def _wait_for_progress(setup: IngestSetup, process: subprocess.Popen[bytes], before: int, log_path: Path) -> None:
    """Wait until the consumer has committed something beyond ``before`` (it has started and is working)."""
    deadline = time.monotonic() + 60
    while _consumed(setup) <= before:
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "the ingest consumer made no progress in 60 s"
        time.sleep(0.02)


def _ingested(setup: IngestSetup) -> int:
    with setup.ledger.recorder.engine.connect() as conn:
        count = conn.execute(select(func.count()).where(entries.c.producer == ingest_producer(setup.topic))).scalar()
    return int(count or 0)


@pytest.mark.slow
def test_sigkill_drill_appends_every_message_exactly_once(ingest_setup: IngestSetup, tmp_path: Path) -> None:
    setup = ingest_setup
    rng = random.Random(20261123)
    producer = _SteadyProducer(setup.bootstrap, setup.topic)
    producer.start()
    argv, env = _ingest_command(setup)
    busy_kills = 0  # kills that hit a consumer with messages still waiting for it
    consumed = [0]
    log_path = tmp_path / "ingest.log"
    with log_path.open("ab") as log:
        for _ in range(DRILL_KILLS):
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            _wait_for_progress(setup, process, consumed[-1], log_path)
            time.sleep(rng.uniform(0.0, 0.8))  # a random moment while it works through the backlog
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            consumed.append(_consumed(setup))
            busy_kills += producer.sent > consumed[-1]
    producer.stop.set()
    producer.join(timeout=60)
    assert not producer.failures, producer.failures[:3]
    assert busy_kills >= 10, (consumed, producer.sent)

    drain = subprocess.run([*argv, "--once", "--json"], env=env, capture_output=True, timeout=120, check=False)
    assert drain.returncode == 0, drain.stderr.decode()
    assert b"Traceback" not in drain.stderr
    assert _consumed(setup) == producer.sent, drain.stdout.decode()

    expected = [_drill_message(number)[1] for number in range(producer.sent)]
    valid_ids = {event_id for event_id in expected if event_id is not None}
    invalid = expected.count(None)
    stored_ids = [entry.event_id for entry in setup.entries()]
    assert len(stored_ids) == len(set(stored_ids)), "an event was appended twice"
    assert set(stored_ids) == valid_ids
    assert _ingested(setup) == len(valid_ids)

    letters = BusStore(setup.ledger.recorder.engine).dead_letters(setup.settings.kafka_consumer_name)
    assert len(letters) == invalid
    assert len({(letter.partition, letter.offset) for letter in letters}) == invalid
    assert all(letter.published_at for letter in letters)
    assert all(letter.reason.startswith("id: must be a UUID") for letter in letters), letters[0].reason
    assert not any("bad-" in letter.reason for letter in letters)

    report = setup.ledger.audit()
    assert report.ok, report.findings[:5]
