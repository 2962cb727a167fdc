"""Exactly-once ingest: consume the ingest topic and append its events to the ledger.

Services publish events to ``LEDGER_KAFKA_INGEST_TOPIC``: the ledger's envelope JSON or CloudEvents 1.0
structured-mode JSON (:mod:`ledger.bus.cloudevents`).  :class:`IngestConsumer` reads them and appends them with
the producer identity ``kafka:<topic>`` (the topic is the authenticated channel: whoever may write to it speaks
for that producer; a ``producer`` field inside a message is ignored, as on the HTTP API).

How every message is appended exactly once, across crashes and restarts:

- No consumer group (they do not work on every broker, Tansu among them, and would keep offsets in the wrong
  place): the consumer assigns itself *every* partition of the topic and seeks each to the next offset stored
  in the database (``ingest_offsets``, under ``LEDGER_KAFKA_CONSUMER_NAME``), or to the beginning when none is.
- Each poll batch is committed in ONE database transaction holding the new entries, the dead letters of the
  refused messages and the next offsets (last offset + 1 per partition).  A crash before the commit stores
  nothing and the batch is read again; after it, everything is stored and the batch is not read again.
- Each valid message is its own ledger batch, so a message that conflicts (an event id reused with other
  content) is refused alone; an event id already stored with the same content is not appended again.

A refused message (bad JSON, bad envelope or CloudEvent, too large, conflicting id) never stops the consumer:
it is recorded in ``dead_letters`` with the reason (which never quotes a value) in the same transaction, then
published to ``LEDGER_KAFKA_DEAD_LETTER_TOPIC`` with acks=all: value = the original message bytes, headers
``ledger-reason``, ``ledger-original-topic``, ``ledger-original-partition``, ``ledger-original-offset``,
``ledger-consumer``.  A broker failure there is logged and the publication retried on the next round: the
database row stays until the broker acknowledged it.  Publication is at least once: after a crash between the
acknowledgement and the bookkeeping a dead letter may appear twice on that topic (same original offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ledger.access import is_ledger_stream
from ledger.bus.broker import kafka_errors
from ledger.bus.cloudevents import parse_ingest_message
from ledger.errors import ConfigurationError, ConflictError, InfrastructureError, PublishError, ValidationError
from ledger.service import Ledger, PreparedBatch, utc_now
from ledger.settings import Settings
from ledger.store.bus import BusStore, DeadLetter, add_dead_letters, save_offsets
from ledger.store.recorder import AppendTransaction

__all__ = ["IngestConsumer", "IngestStats", "check_ingest_settings", "ingest_producer"]

log = logging.getLogger("ledger.bus.ingest")

PRODUCER_PREFIX: Final = "kafka:"
BATCH_SIZE: Final = 500
"""Most messages polled, and committed in one transaction, at a time."""
POLL_TIMEOUT_MS: Final = 1000
IDLE_LIMIT_SECONDS: Final = 15.0
"""``run_once`` gives up waiting for records it was told exist after this long without receiving any."""
RETRY_PAUSE_SECONDS: Final = 1.0
KAFKA_TIMEOUT_MS: Final = 10_000
DEAD_LETTER_PAGE: Final = 500

HEADER_REASON: Final = "ledger-reason"
HEADER_TOPIC: Final = "ledger-original-topic"
HEADER_PARTITION: Final = "ledger-original-partition"
HEADER_OFFSET: Final = "ledger-original-offset"
HEADER_CONSUMER: Final = "ledger-consumer"


def ingest_producer(topic: str) -> str:
    """The producer identity recorded in every entry ingested from ``topic``."""
    return f"{PRODUCER_PREFIX}{topic}"


def check_ingest_settings(settings: Settings, *, need_broker: bool = True) -> str:
    """The ingest topic, or ConfigurationError when ingest is not configured."""
    if need_broker and not settings.kafka_bootstrap_servers:
        raise ConfigurationError("ingest needs a Kafka broker: set LEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if not settings.kafka_ingest_topic:
        raise ConfigurationError("ingest needs a topic: set LEDGER_KAFKA_INGEST_TOPIC")
    return settings.kafka_ingest_topic


class ConsumerLike(Protocol):
    """What the ingest consumer needs from a Kafka consumer (``kafka.KafkaConsumer`` has all of it)."""

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...
    def assign(self, partitions: list[Any]) -> None: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def seek_to_beginning(self, *partitions: Any) -> None: ...
    def position(self, partition: Any, timeout_ms: int | None = None) -> int | None: ...
    def end_offsets(self, partitions: list[Any], timeout_ms: int | None = None) -> dict[Any, int]: ...
    def highwater(self, partition: Any) -> int | None: ...
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]: ...
    def close(self, autocommit: bool = True) -> None: ...


class FutureLike(Protocol):
    def get(self, timeout: float | None = None) -> Any: ...


class ProducerLike(Protocol):
    """What dead-letter publishing needs from a Kafka producer (``kafka.KafkaProducer``)."""

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None
    ) -> FutureLike: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


@dataclass(slots=True)
class IngestStats:
    """What one or more rounds did."""

    consumed: int = 0
    """Messages read from the ingest topic and committed (appended, found already stored, or refused)."""
    appended: int = 0
    """New entries."""
    already_stored: int = 0
    """Valid messages whose event was already in the ledger with the same content (a producer's retry)."""
    dead_lettered: int = 0
    """Messages refused and recorded as dead letters."""
    dead_letters_published: int = 0
    """Dead letters acknowledged by the dead-letter topic."""

    def add(self, other: IngestStats) -> None:
        self.consumed += other.consumed
        self.appended += other.appended
        self.already_stored += other.already_stored
        self.dead_lettered += other.dead_lettered
        self.dead_letters_published += other.dead_letters_published

    def as_dict(self) -> dict[str, int]:
        return {
            "consumed": self.consumed,
            "appended": self.appended,
            "already_stored": self.already_stored,
            "dead_lettered": self.dead_lettered,
            "dead_letters_published": self.dead_letters_published,
        }


@dataclass(frozen=True, slots=True)
class _Message:
    partition: int
    offset: int
    value: bytes


class IngestConsumer:
    """Consumes the ingest topic into one ledger; see the module documentation for the guarantees."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        consumer_factory: Callable[[], ConsumerLike] | None = None,
        producer_factory: Callable[[], ProducerLike] | None = None,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.topic = check_ingest_settings(settings, need_broker=consumer_factory is None or producer_factory is None)
        self.ledger = ledger
        self.settings = settings
        self.dead_letter_topic = settings.kafka_dead_letter_topic
        self.consumer_name = settings.kafka_consumer_name
        self.producer = ingest_producer(self.topic)
        self.batch_size = max(1, batch_size)
        self.bus = BusStore(ledger.recorder.engine)
        self._consumer_factory = consumer_factory or self._default_consumer
        self._producer_factory = producer_factory or self._default_producer
        self._consumer: ConsumerLike | None = None
        self._dead_letter_producer: ProducerLike | None = None
        self._partitions: dict[int, Any] = {}  # partition number -> TopicPartition
        self._positioned = False  # False: seek every partition to the offsets stored in the database first
        self._dead_letters_pending = True  # publish leftovers of an earlier run on the first round

    # --- Kafka clients ----------------------------------------------------------------------------

    def _default_consumer(self) -> ConsumerLike:
        from kafka import KafkaConsumer

        with kafka_errors("connecting the ingest consumer"):
            consumer: ConsumerLike = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.consumer_name}-consumer",
                group_id=None,  # no group: partitions are assigned here and offsets kept in the database
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                max_poll_records=self.batch_size,
                request_timeout_ms=30_000,
                bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
            )
        return consumer

    def _default_producer(self) -> ProducerLike:
        from kafka import KafkaProducer

        compression = self.settings.kafka_compression
        with kafka_errors("connecting the dead-letter producer"):
            producer: ProducerLike = KafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.consumer_name}-dead-letters",
                acks="all",  # idempotence is kafka-python's default where the broker supports it
                compression_type=None if compression == "none" else compression,
                max_block_ms=KAFKA_TIMEOUT_MS,
                delivery_timeout_ms=30_000,
                request_timeout_ms=KAFKA_TIMEOUT_MS,
                bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
            )
        return producer

    def _kafka_consumer(self) -> ConsumerLike:
        if self._consumer is None:
            self._consumer = self._consumer_factory()
        return self._consumer

    def close(self) -> None:
        """Close the Kafka clients (nothing is committed to Kafka: the offsets live in the database)."""
        consumer, self._consumer = self._consumer, None
        producer, self._dead_letter_producer = self._dead_letter_producer, None
        self._partitions, self._positioned = {}, False
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except Exception as exc:  # closing is best effort; nothing is lost
                log.warning("closing the ingest consumer failed: %s", type(exc).__name__)
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception as exc:
                log.warning("closing the dead-letter producer failed: %s", type(exc).__name__)

    def __enter__(self) -> IngestConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- assignment -------------------------------------------------------------------------------

    def _position(self) -> ConsumerLike:
        """Assign every partition of the topic and, after a start or a failure, seek to the stored offsets."""
        from kafka import TopicPartition

        consumer = self._kafka_consumer()
        with kafka_errors("reading the ingest topic's partitions"):
            numbers = consumer.partitions_for_topic(self.topic) or set()
        if not numbers:
            raise PublishError(
                f"the ingest topic {self.topic!r} does not exist or has no partitions "
                "(create it, e.g. with `ledger kafka create-topics`)"
            )
        if set(numbers) != set(self._partitions):
            self._partitions = {n: TopicPartition(self.topic, n) for n in sorted(numbers)}
            with kafka_errors("assigning the ingest topic's partitions"):
                consumer.assign(list(self._partitions.values()))
            self._positioned = False
        if not self._positioned:
            stored = self.bus.consumer_offsets(self.consumer_name, self.topic)
            with kafka_errors("seeking to the stored offsets"):
                for number, partition in self._partitions.items():
                    if number in stored:
                        consumer.seek(partition, stored[number])
                    else:
                        consumer.seek_to_beginning(partition)
            self._positioned = True
        return consumer

    # --- consuming --------------------------------------------------------------------------------

    def run_once(self, max_messages: int | None = None) -> IngestStats:
        """Consume until caught up with the topic's end as it is now (or ``max_messages``), then return.

        Caught up means: each partition's position has reached both the end offset listed when the run began
        and the high watermark of the latest fetch (some brokers, Tansu among them, list the start of the last
        record batch as the end, so the listed end alone would stop in the middle of that batch).  Dead
        letters are published before returning; one the broker refuses stays in the database for the next
        run.  Storage or broker failures raise: nothing half-done is kept, the next run starts again from the
        stored offsets.
        """
        stats = IngestStats()
        try:
            consumer = self._position()
            with kafka_errors("reading the ingest topic's end offsets"):
                targets = consumer.end_offsets(list(self._partitions.values()), timeout_ms=KAFKA_TIMEOUT_MS)
            last_progress = time.monotonic()
            while max_messages is None or stats.consumed < max_messages:
                limit = self.batch_size
                if max_messages is not None:
                    limit = min(limit, max_messages - stats.consumed)
                round_stats = self._round(limit)
                stats.add(round_stats)
                if self._caught_up(consumer, targets, idle=round_stats.consumed == 0):
                    break
                if round_stats.consumed:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > IDLE_LIMIT_SECONDS:
                    log.warning("ingest: no records arrived for %.0f s before the topic's end", IDLE_LIMIT_SECONDS)
                    break
        except Exception:
            self._positioned = False
            raise
        stats.dead_letters_published += self.publish_dead_letters()
        return stats

    def run_forever(self, stop_event: threading.Event, *, max_messages: int | None = None) -> IngestStats:
        """Consume until ``stop_event`` is set (or ``max_messages`` were consumed); failures are retried."""
        stats = IngestStats()
        while not stop_event.is_set() and (max_messages is None or stats.consumed < max_messages):
            limit = self.batch_size
            if max_messages is not None:
                limit = min(limit, max_messages - stats.consumed)
            try:
                self._position()
                stats.add(self._round(limit))
                if self._dead_letters_pending:
                    stats.dead_letters_published += self.publish_dead_letters()
            except InfrastructureError as exc:
                self._positioned = False
                log.warning("ingest: %s; retrying in %.0f s", exc, RETRY_PAUSE_SECONDS)
                stop_event.wait(RETRY_PAUSE_SECONDS)
        if self._dead_letters_pending:
            try:
                stats.dead_letters_published += self.publish_dead_letters()
            except InfrastructureError as exc:
                log.warning("ingest: dead letters stay in the database for the next run: %s", exc)
        return stats

    def _caught_up(self, consumer: ConsumerLike, targets: dict[Any, int], *, idle: bool) -> bool:
        """Every partition's position is at its listed end and at the high watermark of the latest fetch.

        A partition not fetched yet has no known high watermark: it counts as caught up only after a poll
        that returned nothing.
        """
        with kafka_errors("reading the consumer's position"):
            for partition, end in targets.items():
                highwater = consumer.highwater(partition)
                if highwater is None and not idle:
                    return False
                position = consumer.position(partition, timeout_ms=KAFKA_TIMEOUT_MS)
                if position is None or position < max(end, highwater or 0):
                    return False
        return True

    def _round(self, max_records: int) -> IngestStats:
        """Poll once and commit everything polled in one transaction (entries, dead letters, offsets)."""
        consumer = self._kafka_consumer()
        try:
            with kafka_errors("polling the ingest topic"):
                polled = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max(1, max_records))
            messages = [
                _Message(record.partition, record.offset, record.value or b"")
                for records in polled.values()
                for record in records
            ]
            headers = {
                (record.partition, record.offset): list(record.headers or ())
                for records in polled.values()
                for record in records
            }
            if not messages:
                return IngestStats()
            return self._commit(messages, headers)
        except Exception:
            self._positioned = False  # the consumer's position may be ahead of the database: seek again
            raise

    def _commit(
        self, messages: Sequence[_Message], headers: dict[tuple[int, int], list[tuple[str, bytes | None]]]
    ) -> IngestStats:
        now = utc_now()
        refused: list[DeadLetter] = []
        accepted: list[tuple[_Message, PreparedBatch]] = []
        for message in messages:
            try:
                event = parse_ingest_message(
                    message.value,
                    headers.get((message.partition, message.offset), []),
                    max_payload_bytes=self.settings.max_payload_bytes,
                )
                if is_ledger_stream(event.stream):
                    raise ValidationError(
                        "stream: streams under ledger/ are written by the ledger itself", field="stream"
                    )
                accepted.append((message, self.ledger.prepare_batch([event], producer=self.producer)))
            except ValidationError as exc:
                refused.append(self._dead_letter(message, str(exc), now))
        next_offsets: dict[int, int] = {}
        for message in messages:
            next_offsets[message.partition] = max(next_offsets.get(message.partition, 0), message.offset + 1)
        batches = [batch for _, batch in accepted]
        conflicts: list[DeadLetter] = []

        def before_write(txn: AppendTransaction, planned: Sequence[PreparedBatch]) -> None:
            conflicts.clear()  # the callback runs once per transaction; start clean if it is ever repeated
            for message, batch in accepted:
                if isinstance(batch.error, ConflictError | ValidationError):
                    conflicts.append(self._dead_letter(message, str(batch.error), now))
            add_dead_letters(txn.connection, [*refused, *conflicts])
            save_offsets(txn.connection, self.consumer_name, self.topic, next_offsets, now)

        self.ledger.commit_prepared_with(batches, before_write)
        stats = IngestStats(consumed=len(messages), dead_lettered=len(refused) + len(conflicts))
        for _, batch in accepted:
            if batch.error is None and batch.results:
                if batch.results[0].created:
                    stats.appended += 1
                else:
                    stats.already_stored += 1
        if stats.dead_lettered:
            self._dead_letters_pending = True
        return stats

    def _dead_letter(self, message: _Message, reason: str, now: str) -> DeadLetter:
        return DeadLetter(
            consumer=self.consumer_name,
            topic=self.topic,
            partition=message.partition,
            offset=message.offset,
            reason=reason,
            message=message.value,
            received_at=now,
        )

    # --- dead letters -----------------------------------------------------------------------------

    def publish_dead_letters(self) -> int:
        """Publish recorded dead letters not yet on the dead-letter topic; return how many were acknowledged.

        A broker failure is logged and leaves the rest in the database for the next round (never lost).
        """
        published_total = 0
        while True:
            letters = self.bus.unpublished_dead_letters(self.consumer_name, limit=DEAD_LETTER_PAGE)
            if not letters:
                self._dead_letters_pending = False
                return published_total
            published = self._publish(letters)
            if published:
                self.bus.mark_published(published, utc_now())
                published_total += len(published)
            if len(published) < len(letters):
                self._dead_letters_pending = True
                return published_total

    def _publish(self, letters: Sequence[DeadLetter]) -> list[int]:
        """Send dead letters with acks=all; return the ids the broker acknowledged."""
        acknowledged: list[int] = []
        try:
            with kafka_errors("publishing dead letters"):
                if self._dead_letter_producer is None:
                    self._dead_letter_producer = self._producer_factory()
                producer = self._dead_letter_producer
                sent = [
                    (letter, producer.send(self.dead_letter_topic, value=letter.message, headers=_headers(letter)))
                    for letter in letters
                ]
                producer.flush(timeout=KAFKA_TIMEOUT_MS / 1000)
        except PublishError as exc:
            log.warning("ingest: dead letters not sent to %r, retried next round: %s", self.dead_letter_topic, exc)
            return acknowledged
        failure: PublishError | None = None
        for letter, future in sent:
            try:
                with kafka_errors("publishing a dead letter"):
                    future.get(timeout=KAFKA_TIMEOUT_MS / 1000)
            except PublishError as exc:
                failure = exc
                continue
            if letter.id is not None:
                acknowledged.append(letter.id)
        if failure is not None:
            log.warning(
                "ingest: %d dead letters not acknowledged by %r, retried next round: %s",
                len(sent) - len(acknowledged),
                self.dead_letter_topic,
                failure,
            )
        return acknowledged


def _headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (HEADER_REASON, letter.reason.encode("utf-8", errors="replace")),
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_OFFSET, str(letter.offset).encode()),
        (HEADER_CONSUMER, letter.consumer.encode()),
    ]
