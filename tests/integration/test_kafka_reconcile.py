"""Reconciliation of an entries topic with a real broker and a real ledger (embedded SQLite).

The records are produced here in the fixed record format (``ledger.bus.records.entry_record``) with a plain
kafka-python producer, independently of the relay.  The acceptance check of the issue is
``test_a_tampered_copy_of_the_topic_is_reported_by_seq``: the topic is copied to a second topic with one
record's body altered by one byte, another record deleted and a forged record (signed with another key)
appended, and the reconciliation must name each of those seqs with the right kind, through the library,
the ``ledger reconcile kafka`` command and the ``GET /v1/reconciliations/kafka`` route.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from api.app import create_app
from ledger.access import Role
from ledger.bus.reconcile import (
    ALTERED,
    CHAIN,
    CHECKPOINT,
    EXTRA,
    MISSING,
    ReconcileReport,
    read_topic,
    reconcile_topic,
)
from ledger.bus.records import Headers, entry_record
from ledger.chain import entry_body
from ledger.merkle import leaf_hash
from ledger.notes import NoteSigner
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.bus import BusStore
from ledger.store.records import EntryRecord
from tests import services

ORIGIN = "reconcile.bank.example/evidence"
ENTRIES = 24
ALTERED_SEQ = 5
DELETED_SEQ = 11
KEY_CREATED_AT = "2026-11-20T00:00:00.000000Z"
PROBLEM_JSON = "application/problem+json"

Record = tuple[bytes, bytes, Headers]  # key, value, headers


def check_result(number: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"controls/iam-0{number % 4}/host-001",
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {
            "control_id": "IAM-01",
            "check_id": f"c{number}",
            "status": "pass",
            "framework_refs": [],
            "evidence": [],
            "observed_at": "2026-11-20T10:00:00Z",
        },
    }


def unique_topic(purpose: str) -> str:
    return f"reconcile-{purpose}-{uuid.uuid4().hex[:12]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="reconcile-tests")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records: Iterable[Record], partitions: int = 1) -> str:
    """Create ``topic`` and write the records in this order, each acknowledged by the broker."""
    create_topic(bootstrap, topic, partitions)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="reconcile-tests")
    try:
        futures = [producer.send(topic, key=key, value=value, headers=list(headers)) for key, value, headers in records]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return topic


def read_records(bootstrap: str, topic: str) -> list[Record]:
    with read_topic(bootstrap, topic) as messages:
        return [(key or b"", value, [(n, v or b"") for n, v in headers]) for _offset, key, value, headers in messages]


@dataclass
class Published:
    """A ledger of ``ENTRIES`` entries (a signed checkpoint after each append) and its faithful topic."""

    settings: Settings
    ledger: Ledger
    entries: list[EntryRecord]
    records: list[Record]
    topic: str
    bootstrap: str

    def reconcile(self, topic: str) -> ReconcileReport:
        return reconcile_topic(self.ledger, self.bootstrap, topic)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Published]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("reconcile") / "data",
        database_url=None,
        log_origin=None,
        signing_key=None,
        subject_secret=None,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic=unique_topic("relay"),  # where the API's relay thread publishes
    )
    ledger = Ledger.create(settings, ORIGIN)
    for start in range(0, ENTRIES, 4):
        ledger.append_batch([check_result(n) for n in range(start, start + 4)], producer="svc")
    entries = list(ledger.entries())
    assert [e.seq for e in entries] == list(range(ENTRIES))
    assert ledger.recorder.latest_checkpoint(ledger.head().log_id).size == ENTRIES  # type: ignore[union-attr]
    records = [entry_record(ORIGIN, entry) for entry in entries]
    topic = produce(kafka_bootstrap, unique_topic("faithful"), records)
    yield Published(settings, ledger, entries, records, topic, kafka_bootstrap)
    ledger.recorder.engine.dispose()


def alter_body_by_one_byte(record: Record) -> Record:
    key, value, headers = record
    fields = orjson.loads(value)
    body: str = fields["body"]
    at = body.index("check.result")
    fields["body"] = body[:at] + "C" + body[at + 1 :]
    return key, orjson.dumps(fields), headers


def forged_record(after: EntryRecord) -> Record:
    """A well-formed next entry that links to the real chain, signed with a key the log never published."""
    forger = NoteSigner.generate(ORIGIN)
    seq = after.seq + 1
    body = entry_body(
        log=ORIGIN,
        seq=seq,
        prev=after.hash,
        event_id=str(uuid.uuid4()),
        stream="controls/iam-00/host-001",
        stream_seq=99,
        event_type="check.result",
        occurred_at=after.occurred_at,
        recorded_at=after.recorded_at,
        producer="svc",
        payload_digest="00" * 32,
        subjects=[],
    )
    entry = EntryRecord(
        seq=seq,
        event_id="forged",
        stream="controls/iam-00/host-001",
        stream_seq=99,
        type="check.result",
        producer="svc",
        occurred_at=after.occurred_at,
        recorded_at=after.recorded_at,
        body=body,
        hash=leaf_hash(body),
        signature=forger.sign(body),
        key_id=forger.key_id.hex(),
    )
    return entry_record(ORIGIN, entry)


@pytest.fixture(scope="module")
def tampered_topic(published: Published) -> str:
    """A copy of the faithful topic, read back from the broker: seq 5 altered, seq 11 deleted, seq 24 forged."""
    copy: list[Record] = []
    for record in read_records(published.bootstrap, published.topic):
        seq = int(dict(record[2])["ledger-seq"] or b"-1")
        if seq == DELETED_SEQ:
            continue
        copy.append(alter_body_by_one_byte(record) if seq == ALTERED_SEQ else record)
    copy.append(forged_record(published.entries[-1]))
    return produce(published.bootstrap, unique_topic("tampered"), copy)


def kinds_by_seq(findings: Iterable[dict[str, Any]]) -> dict[int | None, set[str]]:
    found: dict[int | None, set[str]] = {}
    for finding in findings:
        found.setdefault(finding["seq"], set()).add(finding["kind"])
    return found


EXPECTED_TAMPERING = {
    ALTERED_SEQ: {ALTERED},
    ALTERED_SEQ + 1: {CHAIN},  # seq 6 links to the genuine seq 5, not to the altered body
    DELETED_SEQ: {MISSING, CHECKPOINT},  # without seq 11 the topic cannot rebuild the signed root
    ENTRIES: {EXTRA, ALTERED},  # beyond the database, and signed with an unpublished key
}


# --- the library ---------------------------------------------------------------------------------------------


def test_the_faithful_topic_reconciles_without_findings(published: Published) -> None:
    report = published.reconcile(published.topic)
    assert report.ok, [str(f) for f in report.findings]
    assert (report.records_read, report.distinct_seqs, report.database_size) == (ENTRIES, ENTRIES, ENTRIES)
    assert report.checkpoint_size == ENTRIES and report.checkpoint_checked
    assert report.notes == []


def test_a_tampered_copy_of_the_topic_is_reported_by_seq(published: Published, tampered_topic: str) -> None:
    report = published.reconcile(tampered_topic)
    assert not report.ok
    assert kinds_by_seq(f.as_dict() for f in report.findings) == EXPECTED_TAMPERING
    assert report.seqs(MISSING) == [DELETED_SEQ]
    assert report.seqs(EXTRA) == [ENTRIES]
    altered = {f.message for f in report.findings if f.seq == ALTERED_SEQ}
    assert "hash is not SHA-256(0x00 || body)" in altered
    assert "the Ed25519 signature over the body does not verify" in altered
    assert any("which the log never published" in f.message for f in report.findings if f.seq == ENTRIES)
    assert (report.records_read, report.distinct_seqs, report.database_size) == (ENTRIES, ENTRIES, ENTRIES)
    assert next(f for f in report.findings if f.seq == ALTERED_SEQ).offset == ALTERED_SEQ


def test_repeats_after_a_relay_restart_are_not_differences(published: Published) -> None:
    topic = produce(published.bootstrap, unique_topic("repeats"), published.records + published.records[10:])
    report = published.reconcile(topic)
    assert report.ok, [str(f) for f in report.findings]
    assert report.duplicates == ENTRIES - 10 and report.records_read == 2 * ENTRIES - 10


def test_the_relays_progress_separates_unpublished_from_missing(published: Published) -> None:
    topic = produce(published.bootstrap, unique_topic("progress"), published.records[:15])
    bus = BusStore(published.ledger.recorder.engine)
    log_id = published.ledger.head().log_id

    bus.advance_relay(log_id, topic, 15, utc_now())
    report = published.reconcile(topic)
    assert report.ok, [str(f) for f in report.findings]
    assert report.unpublished == ENTRIES - 15
    # checkpoints were signed at 4, 8, ..., 24 entries: 12 is the latest one the relay's progress covers
    assert report.checkpoint_size == 12 and report.checkpoint_checked

    bus.advance_relay(log_id, topic, 20, utc_now())  # the relay says 15..19 were acknowledged: they are missing
    report = published.reconcile(topic)
    assert report.seqs(MISSING) == [15, 16, 17, 18, 19] and report.unpublished == ENTRIES - 20


def test_a_topic_with_several_partitions_is_merged_in_seq_order(published: Published) -> None:
    topic = produce(published.bootstrap, unique_topic("partitions"), published.records, partitions=3)
    report = published.reconcile(topic)
    assert report.ok, [str(f) for f in report.findings]
    assert report.records_read == ENTRIES and report.checkpoint_checked


def test_a_topic_that_does_not_exist(published: Published) -> None:
    from ledger.errors import NotFoundError

    with pytest.raises(NotFoundError, match="does not exist"):
        published.reconcile(unique_topic("absent"))


# --- the command line ------------------------------------------------------------------------------------------


def ledger_cli(published: Published, *args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap or published.bootstrap
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(published.settings.data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_cli_exits_0_for_the_faithful_topic(published: Published) -> None:
    done = ledger_cli(published, "reconcile", "kafka", "--topic", published.topic)
    assert done.returncode == 0, done
    assert done.stdout.startswith(f"OK: {ENTRIES} records read from {published.topic}")
    report = json.loads(ledger_cli(published, "reconcile", "kafka", "--topic", published.topic, "--json").stdout)
    assert report["ok"] is True and report["summary"]["distinct_seqs"] == ENTRIES


def test_cli_exits_1_and_names_each_tampered_seq(published: Published, tampered_topic: str) -> None:
    done = ledger_cli(published, "reconcile", "kafka", "--topic", tampered_topic)
    assert done.returncode == 1, done
    assert f"FINDING seq {DELETED_SEQ}: missing: the database entry is not on the topic" in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1].startswith("FAILED with")
    done = ledger_cli(published, "reconcile", "kafka", "--topic", tampered_topic, "--json")
    assert done.returncode == 1
    assert kinds_by_seq(json.loads(done.stdout)["findings"]) == EXPECTED_TAMPERING


def test_cli_without_a_broker_is_one_error_line(published: Published) -> None:
    done = ledger_cli(published, "reconcile", "kafka", bootstrap=f"127.0.0.1:{services.free_port()}")
    assert done.returncode == 3, done
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1, done.stderr


# --- the HTTP API -----------------------------------------------------------------------------------------------


def api_token(settings: Settings, role: Role) -> str:
    store = ApiKeyStore(Ledger.open_recorder(settings).engine)
    try:
        prefixes = ["controls"] if role is Role.PUBLISHER else []
        _key, token = store.create(role, [ORIGIN], prefixes, role.value, KEY_CREATED_AT)
        return token
    finally:
        store.engine.dispose()


@pytest.fixture(scope="module")
def api(published: Published) -> Iterator[Callable[..., Any]]:
    """``get(role, **params)`` on GET /v1/reconciliations/kafka of the app over the published ledger."""
    tokens = {role: api_token(published.settings, role) for role in (Role.AUDITOR, Role.PUBLISHER)}
    with TestClient(create_app(published.settings)) as client:

        def get(role: Role = Role.AUDITOR, **params: str) -> Any:
            return client.get("/v1/reconciliations/kafka", params=params, headers={"X-API-Key": tokens[role]})

        yield get


def test_api_reports_the_faithful_and_the_tampered_topic(
    published: Published, tampered_topic: str, api: Callable[..., Any]
) -> None:
    response = api(topic=published.topic)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["origin"] == ORIGIN and body["topic"] == published.topic
    assert body["summary"]["records_read"] == ENTRIES and body["summary"]["checkpoint_checked"] is True

    response = api(topic=tampered_topic)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is False
    assert kinds_by_seq(response.json()["findings"]) == EXPECTED_TAMPERING


def test_api_is_for_auditors(published: Published, api: Callable[..., Any]) -> None:
    response = api(Role.PUBLISHER, topic=published.topic)
    assert response.status_code == 403 and response.headers["content-type"].startswith(PROBLEM_JSON)


def test_api_problems(api: Callable[..., Any]) -> None:
    absent = api(topic=unique_topic("absent"))
    assert absent.status_code == 404 and absent.headers["content-type"].startswith(PROBLEM_JSON)
    assert "does not exist" in absent.json()["detail"]
    bad_name = api(topic="no spaces/allowed")
    assert bad_name.status_code == 422 and bad_name.headers["content-type"].startswith(PROBLEM_JSON)


def test_api_answers_503_when_the_broker_is_unreachable(published: Published) -> None:
    settings = published.settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{services.free_port()}", "kafka_topic": unique_topic("down")}
    )
    token = api_token(settings, Role.AUDITOR)
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/reconciliations/kafka", headers={"X-API-Key": token})
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["retry-after"]


def test_api_reconciles_the_topic_the_relay_publishes_to(published: Published, api: Callable[..., Any]) -> None:
    """The app's own relay thread publishes the log to the configured topic; the default topic reconciles."""
    bus = BusStore(published.ledger.recorder.engine)
    log_id = published.ledger.head().log_id
    deadline = time.monotonic() + 60
    while bus.relay_next_seq(log_id, published.settings.kafka_topic) < ENTRIES:
        assert time.monotonic() < deadline, "the relay did not publish the log within 60 s"
        time.sleep(0.2)
    response = api()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True, body["findings"]
    assert body["topic"] == published.settings.kafka_topic
    assert body["summary"]["distinct_seqs"] == ENTRIES and body["summary"]["unpublished"] == 0
