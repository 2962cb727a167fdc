"""Crash drill: the server SIGKILLed at random moments while events arrive over HTTP and Kafka at once.

``ledger serve`` runs as a subprocess with its Kafka ingest consumer and relay, over a real PostgreSQL server
and a real broker. Four HTTP clients post events and a producer writes to the ingest topic without pause; the
server is killed with SIGKILL at a random moment of its work 20 times and started again. Afterwards:

- every event the server acknowledged (201 or 200) is stored exactly once;
- every message the broker acknowledged is stored exactly once, once the consumer has caught up;
- an event whose request got no answer is either stored whole (entry and payload) or absent, and posting it
  again stores it exactly once;
- seqs run from 0 without a gap, and the full audit (chain, signatures, payloads, tree, checkpoints) is clean.
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from ledger.access import Role
from ledger.bus.ingest import ingest_producer
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.tables import entries, payloads
from tests import services
from tests.events import check_result

ORIGIN = "crash.bank.example/ledger"
KILLS = 20
HTTP_CLIENTS = 4
KAFKA_BURST = 20  # messages every KAFKA_PAUSE seconds
KAFKA_PAUSE = 0.05

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]


@dataclass
class Drill:
    settings: Settings
    ledger: Ledger
    token: str
    env: dict[str, str]
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = _free_port()
        argv = [sys.executable, "-m", "ledger.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--log-level", "warning"], env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 60
        while not _healthy(self.port):
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not become healthy in 60 s"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False


@dataclass
class Outcomes:
    """What the HTTP clients saw, per event id (lists are appended to from several threads: list.append is atomic)."""

    acknowledged: list[str] = field(default_factory=list)
    unanswered: list[dict[str, Any]] = field(default_factory=list)  # events sent that got no 200/201 answer
    refused: list[tuple[str, int, bytes]] = field(default_factory=list)  # an answer other than 200/201/503


class HttpClient(threading.Thread):
    """Posts new events one after another to whichever server is running; never resends one during the drill."""

    def __init__(self, drill: Drill, outcomes: Outcomes, stop: threading.Event, number: int) -> None:
        super().__init__(daemon=True, name=f"drill-http-{number}")
        self.drill, self.outcomes, self.stop, self.number = drill, outcomes, stop, number

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        port = 0
        while not self.stop.is_set():
            if connection is None or port != self.drill.port:
                port = self.drill.port
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            event = check_result(stream=f"controls/iam-01/http-{self.number}")
            if connection.sock is None:
                try:
                    connection.connect()
                except OSError:
                    connection = None
                    time.sleep(0.02)  # no server at the moment: nothing was sent
                    continue
            body = orjson.dumps(event)
            try:
                connection.request(
                    "POST",
                    "/v1/events",
                    body=body,
                    headers={"X-API-Key": self.drill.token, "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                self.outcomes.unanswered.append(event)
                connection.close()
                connection = None
                continue
            if response.status in (200, 201):
                self.outcomes.acknowledged.append(event["id"])
            elif response.status == 503:
                self.outcomes.unanswered.append(event)  # shutting down or unavailable: not acknowledged
            else:
                self.outcomes.refused.append((event["id"], response.status, answer[:300]))


class KafkaWriter(threading.Thread):
    """Writes valid events to the ingest topic until stopped; ``sent`` holds the ids the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str, stop: threading.Event) -> None:
        super().__init__(daemon=True, name="drill-kafka")
        self.bootstrap, self.topic, self.stop = bootstrap, topic, stop
        self.sent: list[str] = []
        self.failures: list[BaseException] = []

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        try:
            while not self.stop.is_set():
                batch = [check_result(stream="controls/iam-01/kafka") for _ in range(KAFKA_BURST)]
                futures = [producer.send(self.topic, value=orjson.dumps(event)) for event in batch]
                producer.flush(30)
                for event, future in zip(batch, futures, strict=True):
                    try:
                        future.get(timeout=30)
                    except Exception as exc:  # not acknowledged: it may or may not be in the topic
                        self.failures.append(exc)
                    else:
                        self.sent.append(event["id"])
                time.sleep(KAFKA_PAUSE)
        finally:
            producer.close()


@pytest.fixture
def drill(
    tmp_path: Path, pg_database: services.Database, postgres_server: services.PostgresServer, kafka_bootstrap: str
) -> Iterator[Drill]:
    services.production_layout(pg_database, postgres_server.app_role)
    suffix = uuid.uuid4().hex[:10]
    topics = {"ingest": f"crash-ingest-{suffix}", "dead": f"crash-dead-{suffix}", "relay": f"crash-entries-{suffix}"}
    services.create_kafka_topics(kafka_bootstrap, {topics["ingest"]: 2, topics["dead"]: 1, topics["relay"]: 1})
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_database.url,
        log_origin=ORIGIN,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_ingest_topic=topics["ingest"],
        kafka_dead_letter_topic=topics["dead"],
        kafka_topic=topics["relay"],
    )
    ledger = Ledger.create(settings, ORIGIN)
    _, token = ApiKeyStore(ledger.recorder.engine).create(Role.PUBLISHER, [ORIGIN], ["controls"], "drill", "drill")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=pg_database.url,
        LEDGER_DATA_DIR=str(settings.data_dir),
        LEDGER_LOG_ORIGIN=ORIGIN,
        LEDGER_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        LEDGER_KAFKA_INGEST_TOPIC=topics["ingest"],
        LEDGER_KAFKA_DEAD_LETTER_TOPIC=topics["dead"],
        LEDGER_KAFKA_TOPIC=topics["relay"],
        LEDGER_API_RATE_LIMIT_PER_SECOND="1000000",
    )
    drill = Drill(settings, ledger, token, env, tmp_path / "server.log")
    try:
        yield drill
    finally:
        if drill.process is not None:
            drill.kill()
        ledger.recorder.engine.dispose()


def _stored(ledger: Ledger) -> tuple[list[int], Counter[str], set[str]]:
    """(every seq, how often each event id is stored, event ids whose payload row exists)."""
    with ledger.recorder.engine.connect() as conn:
        rows = conn.execute(select(entries.c.seq, entries.c.event_id).order_by(entries.c.seq)).all()
        with_payload = conn.execute(
            select(entries.c.event_id).join(
                payloads, (payloads.c.log_id == entries.c.log_id) & (payloads.c.seq == entries.c.seq)
            )
        ).all()
    return [row.seq for row in rows], Counter(row.event_id for row in rows), {row.event_id for row in with_payload}


def _kafka_stored(ledger: Ledger, topic: str) -> int:
    with ledger.recorder.engine.connect() as conn:
        rows = conn.execute(select(entries.c.seq).where(entries.c.producer == ingest_producer(topic))).all()
    return len(rows)


def test_sigkill_drill_over_http_and_kafka(drill: Drill, kafka_bootstrap: str) -> None:
    rng = random.Random(20261202)
    outcomes, stop = Outcomes(), threading.Event()
    drill.start()
    clients = [HttpClient(drill, outcomes, stop, number) for number in range(HTTP_CLIENTS)]
    writer = KafkaWriter(kafka_bootstrap, drill.settings.kafka_ingest_topic or "", stop)
    for thread in (*clients, writer):
        thread.start()
    busy_kills = 0  # kills that hit the server while requests were in flight
    for _ in range(KILLS):
        before = len(outcomes.acknowledged)
        deadline = time.monotonic() + 30
        while len(outcomes.acknowledged) < before + 20:  # it is answering: kill it somewhere in its work
            assert time.monotonic() < deadline, drill.log.read_text()[-3000:]
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
        cut_off = len(outcomes.unanswered)
        drill.kill()
        time.sleep(0.1)
        busy_kills += len(outcomes.unanswered) > cut_off
        drill.start()
    time.sleep(0.5)
    stop.set()
    for thread in (*clients, writer):
        thread.join(timeout=60)
    assert not outcomes.refused, outcomes.refused[:3]
    assert not writer.failures, writer.failures[:3]
    assert busy_kills >= KILLS // 2, f"only {busy_kills} of {KILLS} kills cut requests off"

    # the restarted server's consumer catches up with everything the broker acknowledged
    topic = drill.settings.kafka_ingest_topic or ""
    deadline = time.monotonic() + 120
    while _kafka_stored(drill.ledger, topic) < len(writer.sent):
        assert time.monotonic() < deadline, f"{_kafka_stored(drill.ledger, topic)} of {len(writer.sent)} ingested"
        time.sleep(0.2)

    seqs, counts, with_payload = _stored(drill.ledger)
    assert seqs == list(range(len(seqs))), "seqs have a gap"
    assert all(count == 1 for count in counts.values()), [i for i, n in counts.items() if n > 1][:3]
    assert set(outcomes.acknowledged) <= set(counts), "an acknowledged event is missing"
    assert set(writer.sent) <= set(counts), "a message the broker acknowledged is missing"
    assert set(counts) <= with_payload, "an entry is stored without its payload"
    unanswered_ids = [event["id"] for event in outcomes.unanswered]
    unanswered_stored = [event_id for event_id in unanswered_ids if event_id in counts]
    assert len(outcomes.acknowledged) > 500 and len(writer.sent) > 500

    # posting the unanswered events again stores each exactly once (200 when it had been stored, else 201)
    connection = http.client.HTTPConnection("127.0.0.1", drill.port, timeout=10)
    statuses: Counter[int] = Counter()
    for event in outcomes.unanswered:
        event_id = event["id"]
        connection.request(
            "POST",
            "/v1/events",
            body=orjson.dumps(event),
            headers={"X-API-Key": drill.token, "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        statuses[response.status] += 1
        expected = 200 if event_id in counts else 201
        assert response.status == expected, (event_id, response.status)
    drill.kill()

    seqs, counts, _ = _stored(drill.ledger)
    assert seqs == list(range(len(seqs)))
    assert all(count == 1 for count in counts.values())
    assert set(unanswered_ids) <= set(counts)
    report = drill.ledger.audit()
    assert report.ok, report.findings[:5]
    print(
        f"crash drill: {KILLS} kills ({busy_kills} with requests cut off), {len(outcomes.acknowledged)} HTTP "
        f"acknowledged, {len(outcomes.unanswered)} unanswered ({len(unanswered_stored)} of them stored), "
        f"{len(writer.sent)} Kafka messages, {len(seqs)} entries, re-posted: {dict(statuses)}"
    )
