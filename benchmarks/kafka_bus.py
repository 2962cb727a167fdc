"""``kafka.relay`` and ``kafka.ingest``: the ledger's Kafka relay and ingest consumer against a real broker.

- ``kafka.relay``: ``Relay.run_once()`` publishing entries already committed to a PostgreSQL-backed ledger to
  a fresh topic, as deployed: ``acks=all``, the relay's compression, linger and batch settings, idempotence
  where the broker allows it, one chunk of ``relay_batch_size`` entries read from the database, sent, waited
  for until every record is acknowledged, then the relay's progress committed, chunk after chunk.
- ``kafka.raw_produce``: the floor: a kafka-python ``KafkaProducer`` with the relay's own producer settings
  sending the same key, value and header bytes (built untimed with ``entry_record`` from the same entries,
  read back from the relay's ledger) to another fresh topic, then one ``flush()`` per turn.
- ``kafka.ingest``: ``IngestConsumer.run_once()`` consuming envelope messages (produced untimed beforehand)
  from a fresh ingest topic into a PostgreSQL-backed ledger: poll, parse and validate each message, append
  it, and commit each poll batch's entries together with the consumer's offsets in one durable transaction.
- ``kafka.raw_consume``: the Kafka floor: a kafka-python ``KafkaConsumer`` (assigned partitions, no group,
  the consumer's batch size) reading the same messages from the same topic and doing nothing with them.
- ``kafka.ingest.ledger_only``: the ledger floor: the same events through the calls the consumer makes
  (``Ledger.prepare_batch`` per event, ``Ledger.commit_prepared_with`` per poll batch), without Kafka, into
  a ledger of its own.  ``kafka.ingest`` is also compared with ``ingest.batch`` when the run measured it.

As in ``benchmarks.rounds``, the contenders of each benchmark take turns: the events are split into rounds;
before a round's first turn its entries are appended to the relay's ledger (or its messages produced to the
ingest topic), untimed, and each contender then drains that share in its timed turn, the order rotating.
Every contender first drains an untimed warm-up share (topic creation, connections, metadata).  Afterwards
the topics' end offsets are checked against the counts, and the ingest ledger's size and audit.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from benchmarks.common import BATCH_SIZE, EVENTS_PER_S, PRODUCER, Context, batches, make_events, rate
from benchmarks.rounds import Contender, race

if TYPE_CHECKING:
    from ledger.bus.ingest import IngestConsumer, IngestStats
    from ledger.bus.relay import Relay
    from ledger.service import Ledger
    from ledger.settings import Settings

RELAY = "kafka.relay"
RAW_PRODUCE = "kafka.raw_produce"
INGEST = "kafka.ingest"
RAW_CONSUME = "kafka.raw_consume"
LEDGER_ONLY = "kafka.ingest.ledger_only"
INGEST_BATCH = "ingest.batch"
WARMUP = BATCH_SIZE
READ_BACK_IDLE_S = 5.0
"""How long reading a topic back waits for more records before it concludes the topic has no more."""
KAFKA_TIMEOUT_S = 60.0
"""Longest wait for the broker to acknowledge or deliver a turn's records before the benchmark fails."""

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _kafka_settings(ledger: Ledger, bootstrap: str, **kafka: Any) -> Settings:
    """The ledger's settings with a broker and the given Kafka settings (other Kafka settings: defaults)."""
    return ledger.settings.model_copy(update={"kafka_bootstrap_servers": bootstrap, **kafka})


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


def _read_seqs(bootstrap: str, topic: str, expected: int) -> list[int | None]:
    """The ``ledger-seq`` header of every record on ``topic`` (None where it has none), in topic order.

    The topic is read back rather than its end offset asked for: Tansu answers ListOffsets(latest) with the
    base offset of the last record batch, not the offset after its last record.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=5_000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seqs: list[int | None] = []
        idle_until = time.monotonic() + READ_BACK_IDLE_S
        while time.monotonic() < idle_until:
            polled = consumer.poll(timeout_ms=200)
            for records in polled.values():
                seqs += [_seq(record.headers) for record in records]
            if polled and len(seqs) < expected:
                idle_until = time.monotonic() + READ_BACK_IDLE_S
            elif len(seqs) >= expected:
                idle_until = min(idle_until, time.monotonic() + 0.5)  # a short look for records beyond
        return seqs
    finally:
        consumer.close(autocommit=False)


def _seq(headers: list[tuple[str, bytes]] | None) -> int | None:
    for name, value in headers or ():
        if name == "ledger-seq":
            return int(value)
    return None


def _check_topic(ctx: Context, bootstrap: str, topic: str, expected: int) -> bool:
    """Read ``topic`` back: it must hold exactly seqs 0 .. expected - 1 in order; a note says what differs."""
    seqs = _read_seqs(bootstrap, topic, expected)
    if seqs == list(range(expected)):
        return True
    first_wrong = next((i for i, seq in enumerate(seqs) if seq != i), len(seqs))
    ctx.results.notes.append(
        f"WARNING: topic {topic} holds {len(seqs):,} records, expected seqs 0..{expected - 1:,} in order; "
        f"the first difference is at offset {first_wrong:,}"
    )
    return False


# --- kafka.relay -----------------------------------------------------------------------------------------


class Backlog:
    """Entries appended (untimed) to the relay's ledger for each ``(start, count)`` share of the race, once."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.seqs: dict[tuple[int, int], range] = {}

    def append(self, start: int, count: int) -> range:
        """Append the share's events (the first time it is asked for) and return their seqs."""
        key = (start, count)
        if key not in self.seqs:
            first = self.ledger.head().size
            for offset, size in batches(count):
                self.ledger.append_batch(make_events(start + offset, size), producer=PRODUCER)
            self.seqs[key] = range(first, self.ledger.head().size)
        return self.seqs[key]

    def records(self, start: int, count: int) -> list[Record]:
        """The share's records, exactly as the relay builds them, from the entries read back from the database."""
        from ledger.bus.records import entry_record
        from ledger.store.records import EntryFilter

        seqs = self.append(start, count)
        head = self.ledger.head()
        entries = self.ledger.recorder.iter_entries(
            head.log_id, EntryFilter(from_seq=seqs.start, to_seq=seqs.stop - 1), batch_size=len(seqs)
        )
        records = [entry_record(self.ledger.origin, entry) for entry in entries]
        if len(records) != len(seqs):
            raise RuntimeError(f"read {len(records)} entries back for seqs {seqs.start}..{seqs.stop - 1}")
        return records


def run_relay(ctx: Context) -> None:
    from ledger.bus.relay import Relay
    from ledger.bus.topics import ensure_topic, entries_topic_spec

    results, total = ctx.results, ctx.scale.kafka_relay_events
    bootstrap = ctx.kafka_bootstrap()
    suffix = _suffix()
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(ctx.ledger("bench_kafka_relay"))
        settings = _kafka_settings(ledger, bootstrap, kafka_topic=f"bench-relay-{suffix}")
        ensure_topic(settings, entries_topic_spec(settings))  # as `ledger kafka create-topics` would
        relay = stack.enter_context(Relay(ledger, settings))
        backlog = Backlog(ledger)

        def write_relay(_worker: int, count: int) -> None:
            published = relay.run_once()
            if published != count:
                raise RuntimeError(f"Relay.run_once() published {published:,} entries, expected {count:,}")

        def prepare_relay(start: int, count: int) -> list[int]:
            backlog.append(start, count)
            return [count]

        raw_topic = f"bench-raw-produce-{suffix}"
        raw = RawProducer(relay, raw_topic)
        stack.callback(raw.close)
        contenders = [
            Contender(RELAY, "Relay.run_once", prepare_relay, write_relay, after_warmup=raw.start),
            Contender(RAW_PRODUCE, "KafkaProducer.send + flush", lambda s, c: [backlog.records(s, c)], raw.write),
        ]
        seconds = race(contenders, total, warmup=WARMUP)

        config = relay.producer_config()
        chunk = settings.relay_batch_size
        described = (
            f"acks={config['acks']}, {config['compression_type'] or 'no'} compression, "
            f"linger_ms={config['linger_ms']}, batch_size={config['batch_size'] // 1024} KiB, "
            f"idempotence {'on' if relay.idempotent else 'off'}"
        )
        results.add(
            RELAY,
            rate(total, seconds[RELAY]),
            EVENTS_PER_S,
            f"{total:,} entries in {seconds[RELAY]:.1f} s, chunks of {chunk:,}; {described}",
        )
        results.add(
            RAW_PRODUCE,
            rate(total, seconds[RAW_PRODUCE]),
            EVENTS_PER_S,
            f"{total:,} records in {seconds[RAW_PRODUCE]:.1f} s, one flush per turn; the relay's producer settings",
        )
        expected = total + WARMUP
        results.facts["kafka_relay_progress_ok"] = relay.next_seq() == ledger.head().size == expected
        results.facts["kafka_relay_topic_ok"] = _check_topic(ctx, bootstrap, settings.kafka_topic, expected)
        results.facts["kafka_raw_topic_ok"] = _check_topic(ctx, bootstrap, raw_topic, expected)
        results.facts["kafka_record_value_bytes"] = len(backlog.records(total, WARMUP)[0][1])
    results.compare(RELAY, RAW_PRODUCE)


class RawProducer:
    """kafka-python's producer with the relay's producer settings, on a topic created like the relay's."""

    def __init__(self, relay: Relay, topic: str) -> None:
        self.relay = relay
        self.topic = topic
        self.producer: Any = None

    def start(self) -> None:
        """Create the topic (the relay's spec under another name) and the producer with the relay's settings.

        Called after the relay's warm-up (the relay is the first contender), so that the producer gets the
        settings the relay ended up with (it drops idempotence when the broker refuses it).
        """
        import dataclasses

        from kafka import KafkaProducer

        from ledger.bus.topics import ensure_topic, entries_topic_spec

        settings = self.relay.settings
        ensure_topic(settings, dataclasses.replace(entries_topic_spec(settings), name=self.topic))
        self.producer = KafkaProducer(**{**self.relay.producer_config(), "client_id": "bench-raw-producer"})

    def write(self, _worker: int, records: list[Record]) -> None:
        send = self.producer.send
        futures = [send(self.topic, value=value, key=key, headers=headers) for key, value, headers in records]
        self.producer.flush(timeout=KAFKA_TIMEOUT_S)
        for future in futures:
            future.get(timeout=KAFKA_TIMEOUT_S)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=5)


# --- kafka.ingest ----------------------------------------------------------------------------------------


class IngestBacklog:
    """Envelope messages produced (untimed) to the ingest topic for each ``(start, count)`` share, once."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self.topic = settings.kafka_ingest_topic
        compression = settings.kafka_compression
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="bench-ingest-source",
            acks="all",
            compression_type=None if compression == "none" else compression,
            linger_ms=5,
            batch_size=256 * 1024,
        )
        self.values: dict[tuple[int, int], list[bytes]] = {}

    def produce(self, start: int, count: int) -> list[bytes]:
        """Produce the share's messages (the first time it is asked for) and return their values."""
        key = (start, count)
        if key not in self.values:
            values = [orjson.dumps(event) for event in make_events(start, count)]
            futures = [self.producer.send(self.topic, value=value) for value in values]
            self.producer.flush(timeout=KAFKA_TIMEOUT_S)
            for future in futures:
                future.get(timeout=KAFKA_TIMEOUT_S)
            self.values[key] = values
        return self.values[key]

    def close(self) -> None:
        self.producer.close(timeout=5)


def run_ingest(ctx: Context) -> None:
    from ledger.bus.ingest import BATCH_SIZE as INGEST_BATCH_SIZE
    from ledger.bus.ingest import IngestConsumer, IngestStats
    from ledger.bus.topics import ensure_topic, topic_specs

    results, total = ctx.results, ctx.scale.kafka_ingest_events
    bootstrap = ctx.kafka_bootstrap()
    suffix = _suffix()
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(ctx.ledger("bench_kafka_ingest"))
        settings = _kafka_settings(
            ledger,
            bootstrap,
            kafka_ingest_topic=f"bench-ingest-{suffix}",
            kafka_dead_letter_topic=f"bench-ingest-dead-{suffix}",
            kafka_consumer_name="bench-ingest",
        )
        for spec in topic_specs(settings):
            if spec.name in (settings.kafka_ingest_topic, settings.kafka_dead_letter_topic):
                ensure_topic(settings, spec)
        backlog = IngestBacklog(settings)
        stack.callback(backlog.close)
        consumer = stack.enter_context(IngestConsumer(ledger, settings))
        totals = IngestStats()
        stalls: list[int] = []

        def prepare_count(start: int, count: int) -> list[int]:
            backlog.produce(start, count)
            return [count]

        def write_ingest(_worker: int, count: int) -> None:
            totals.add(_drain(consumer, count, stalls))

        def after_warmup() -> None:
            totals.consumed = totals.appended = totals.already_stored = totals.dead_lettered = 0

        raw = stack.enter_context(_raw_consumer(settings, INGEST_BATCH_SIZE))
        ledger_only = stack.enter_context(ctx.ledger("bench_kafka_ledger_only"))
        contenders = [
            Contender(INGEST, "IngestConsumer.run_once", prepare_count, write_ingest, after_warmup=after_warmup),
            Contender(RAW_CONSUME, "KafkaConsumer.poll", prepare_count, raw),
            _ledger_only_contender(ledger_only, backlog, INGEST_BATCH_SIZE, consumer.producer),
        ]
        seconds = race(contenders, total, warmup=WARMUP)

        results.add(
            INGEST,
            rate(total, seconds[INGEST]),
            EVENTS_PER_S,
            f"{total:,} messages in {seconds[INGEST]:.1f} s, up to {INGEST_BATCH_SIZE} per transaction; "
            f"appended {totals.appended:,}, dead letters {totals.dead_lettered:,}",
        )
        results.add(
            RAW_CONSUME,
            rate(total, seconds[RAW_CONSUME]),
            EVENTS_PER_S,
            f"{total:,} messages in {seconds[RAW_CONSUME]:.1f} s, max_poll_records={INGEST_BATCH_SIZE}",
        )
        results.add(
            LEDGER_ONLY,
            rate(total, seconds[LEDGER_ONLY]),
            EVENTS_PER_S,
            f"{total:,} events in {seconds[LEDGER_ONLY]:.1f} s: prepare_batch per event, "
            f"commit_prepared_with per {INGEST_BATCH_SIZE}",
        )
        if stalls:
            results.notes.append(
                f"NOTE: {len(stalls)} time(s) IngestConsumer.run_once() found nothing to do with "
                f"{sum(stalls):,} messages of its share still on the topic (the broker's end offset lagged); "
                "run_forever(max_messages=...) consumed the rest inside the timed turn"
            )
        _check_ingest(ctx, ledger, totals, total)
    results.compare(INGEST, RAW_CONSUME)
    results.compare(INGEST, LEDGER_ONLY)
    if INGEST_BATCH in results.figures:
        results.compare(INGEST, INGEST_BATCH)


def _drain(consumer: IngestConsumer, count: int, stalls: list[int]) -> IngestStats:
    """``run_once`` until ``count`` messages were consumed; each must have been appended.

    ``run_once`` stops at the topic's end offsets as the broker reports them when it starts.  Tansu reports
    the base offset of the last record batch, so a pass can stop short of the last batch and the next pass
    then finds nothing to do; the rest is consumed with ``run_forever(max_messages=...)``, which does not
    ask for end offsets, and the stall is counted in ``stalls``.
    """
    import threading

    from ledger.bus.ingest import IngestStats

    stats = IngestStats()
    while stats.consumed < count:
        done = consumer.run_once(max_messages=count - stats.consumed)
        if not done.consumed:
            stalls.append(count - stats.consumed)
            done = consumer.run_forever(threading.Event(), max_messages=count - stats.consumed)
        stats.add(done)
    if stats.appended != count:
        raise RuntimeError(f"{count:,} messages consumed but {stats.appended:,} appended: {stats.as_dict()}")
    return stats


@contextlib.contextmanager
def _raw_consumer(settings: Settings, max_poll_records: int) -> Iterator[Callable[[int, int], None]]:
    """A kafka-python consumer on the ingest topic from its beginning; yields ``write(worker, count)``."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.kafka_ingest_topic
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="bench-raw-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)

        def write(_worker: int, count: int) -> None:
            received = 0
            deadline = time.monotonic() + KAFKA_TIMEOUT_S
            while received < count:
                polled = consumer.poll(timeout_ms=1000, max_records=min(max_poll_records, count - received))
                received += sum(len(records) for records in polled.values())
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the raw consumer received {received:,} of {count:,} messages")

        yield write
    finally:
        consumer.close(autocommit=False)


def _ledger_only_contender(ledger: Ledger, backlog: IngestBacklog, batch_size: int, producer: str) -> Contender:
    """The consumer's ledger calls on the same events, without Kafka: parsed untimed from the same values."""

    def prepare(start: int, count: int) -> Iterator[list[dict[str, Any]]]:
        values = backlog.produce(start, count)
        for offset, size in batches(count, batch_size):
            yield [orjson.loads(value) for value in values[offset : offset + size]]

    def write(_worker: int, events: list[dict[str, Any]]) -> None:
        prepared = [ledger.prepare_batch([event], producer=producer) for event in events]
        ledger.commit_prepared_with(prepared, lambda _txn, _batches: None)

    return Contender(LEDGER_ONLY, "Ledger.prepare_batch + commit_prepared_with", prepare, write)


def _check_ingest(ctx: Context, ledger: Ledger, totals: IngestStats, total: int) -> None:
    """The ingest ledger holds every message once (warm-up included) and passes its audit."""
    results = ctx.results
    expected = total + WARMUP
    size = ledger.head().size
    report = ledger.audit()
    results.facts["kafka_ingest_log_entries"] = size
    results.facts["kafka_ingest_log_matches"] = size == expected and totals.appended == total
    results.facts["kafka_ingest_audit_ok"] = report.ok
    if size != expected:
        results.notes.append(f"WARNING: after {INGEST} the ledger holds {size:,} entries, expected {expected:,}")
    if not report.ok:
        results.notes.append(f"WARNING: the audit after {INGEST} reported findings: {report!r}"[:2000])
