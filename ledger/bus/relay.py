"""The relay out: every committed entry is published to the log's topic, in seq order (transactional outbox).

The database is the outbox: entries are committed first, whatever the broker does, and the relay's
progress (the next seq to publish) is kept beside them.  One pass (``run_once``) reads the entries from
that progress to the log's size in chunks, sends a chunk with ``acks=all``, waits until the broker has
acknowledged every record of it, and only then advances the progress.  A crash or an outage therefore
loses nothing; at worst a chunk that was sent but not recorded as acknowledged is sent again, so the only
duplicates on the topic repeat a seq that was already published, and consumers drop a seq they have seen.

Ordering: the producer is idempotent where the broker supports it (the broker then refuses a record whose
predecessor it has not written), else it keeps one request in flight per connection; after any failure
the producer is thrown away (pending records aborted) and the next pass re-sends from the progress.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from itertools import islice
from types import TracebackType
from typing import Any, Protocol

from ledger.bus.records import entry_record
from ledger.bus.topics import ensure_topic, entries_topic_spec
from ledger.errors import ConfigurationError, IntegrityError, LedgerError, PublishError
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.bus import BusStore
from ledger.store.recorder import SqlRecorder
from ledger.store.records import EntryFilter

log = logging.getLogger("ledger.relay")

MAX_BACKOFF_SECONDS = 30.0
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 5.0
# Raised when a broker refuses the idempotent producer (too old, or not authorised for it).
_IDEMPOTENCE_REJECTED = (
    "UnsupportedVersionError",
    "ClusterAuthorizationFailedError",
    "TransactionalIdAuthorizationFailedError",
    "KafkaConfigurationError",
    "IncompatibleBrokerVersion",
)


class SendFuture(Protocol):
    def get(self, timeout: float | None = None) -> Any: ...


class Producer(Protocol):
    """The part of ``kafka.KafkaProducer`` the relay uses (a test or benchmark may supply its own)."""

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None
    ) -> SendFuture: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


ProducerFactory = Callable[[dict[str, Any]], Producer]


def kafka_producer(config: dict[str, Any]) -> Producer:
    from kafka import KafkaProducer

    producer: Producer = KafkaProducer(**config)
    return producer


class Relay:
    """Publishes one log's entries to its topic; progress is kept in the log's database."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        producer_factory: ProducerFactory | None = None,
        *,
        publish_timeout_seconds: float = DEFAULT_PUBLISH_TIMEOUT_SECONDS,
        create_topic: bool = True,
    ) -> None:
        if not settings.kafka_bootstrap_servers:
            raise ConfigurationError("no Kafka broker configured: set LEDGER_KAFKA_BOOTSTRAP_SERVERS")
        if publish_timeout_seconds < 1:
            raise ConfigurationError("the relay's publish timeout must be at least 1 second")
        self.ledger = ledger
        self.settings = settings
        self.topic = settings.kafka_topic
        self.bus = BusStore(ledger.recorder.engine)
        # Progress is written as a writer (BEGIN IMMEDIATE on SQLite): a deferred transaction that reads and
        # then writes fails at once with "database is locked" while appends are committing.
        self._progress = BusStore(ledger.recorder.engine)
        self._producer_factory = producer_factory or kafka_producer
        self._timeout = publish_timeout_seconds
        self._create_topic = create_topic
        self._producer: Producer | None = None
        self._log_id: int | None = None
        self.idempotent = True
        """False once the broker refused the idempotent producer (then one request in flight at a time)."""

    # --- one pass ---------------------------------------------------------------------------------

    @property
    def log_id(self) -> int:
        if self._log_id is None:
            self._log_id = self.ledger.log_id
        return self._log_id

    def next_seq(self) -> int:
        """The first seq not yet acknowledged by the broker."""
        return self.bus.relay_next_seq(self.log_id, self.topic)

    def run_once(self) -> int:
        """Publish every entry from the relay's progress to the log's current size; return how many.

        Raises PublishError when the broker fails; the progress then stays at the last acknowledged chunk.
        """
        size = self.ledger.head().size
        next_seq = self.next_seq()
        published = 0
        while next_seq < size:
            end = min(next_seq + self.settings.relay_batch_size, size)
            records = self._records(next_seq, end)
            self._publish(records)
            self._progress.advance_relay(self.log_id, self.topic, end, utc_now())
            published += len(records)
            next_seq = end
        return published

    def _records(self, start: int, end: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
        """The records of entries ``start`` .. ``end - 1``, checked to be exactly those seqs in order."""
        origin = self.ledger.origin
        batch = end - start
        if self.settings.kafka_publish_payloads:
            rows = self.ledger.recorder.iter_entries_with_payloads(self.log_id, start, batch_size=batch)
            pairs = [(entry, payload.payload if payload else None) for entry, payload in islice(rows, batch)]
        else:
            entries = self.ledger.recorder.iter_entries(
                self.log_id, EntryFilter(from_seq=start, to_seq=end - 1), batch_size=batch
            )
            pairs = [(entry, None) for entry in entries]
        seqs = [entry.seq for entry, _ in pairs]
        if seqs != list(range(start, end)):
            # Never publish around a gap: the topic's order is the chain's order.
            raise IntegrityError(f"entries {start}..{end - 1} are not all readable in seq order")
        return [entry_record(origin, entry, payload) for entry, payload in pairs]

    def _publish(self, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
        """Send every record and wait until the broker has acknowledged each one, or raise PublishError."""
        from kafka.errors import KafkaError

        producer = self._ensure_producer()
        try:
            futures = [
                producer.send(self.topic, value=value, key=key, headers=headers) for key, value, headers in records
            ]
            producer.flush(timeout=self._timeout + CLOSE_TIMEOUT_SECONDS)
            for future in futures:
                future.get(timeout=self._timeout)
        except Exception as exc:
            self._discard_producer(exc)
            if isinstance(exc, (KafkaError, OSError)):
                raise PublishError(f"publishing to topic {self.topic} failed: {type(exc).__name__}") from exc
            raise

    # --- the producer -----------------------------------------------------------------------------

    def producer_config(self) -> dict[str, Any]:
        """kafka-python settings: acks=all, retries, idempotence (or one request in flight), compression."""
        delivery_ms = int(self._timeout * 1000)
        request_ms = min(10_000, delivery_ms // 2)  # a retry fits in the delivery timeout
        config: dict[str, Any] = {
            "bootstrap_servers": self.settings.kafka_bootstrap_servers,
            "client_id": f"ledger-relay-{self.ledger.origin}",
            "acks": "all",
            "retries": 2_147_483_647,  # bounded by delivery_timeout_ms
            "compression_type": None if self.settings.kafka_compression == "none" else self.settings.kafka_compression,
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "delivery_timeout_ms": delivery_ms,
            "request_timeout_ms": request_ms,
            "max_block_ms": min(delivery_ms, 10_000),
            "bootstrap_timeout_ms": min(delivery_ms, 10_000),
            "reconnect_backoff_max_ms": 1000,
        }
        if self.idempotent:
            config["enable_idempotence"] = True
        else:
            config["enable_idempotence"] = False
            config["max_in_flight_requests_per_connection"] = 1  # retries cannot reorder records
        return config

    def _ensure_producer(self) -> Producer:
        from kafka.errors import KafkaError

        if self._producer is not None:
            return self._producer
        # A missing topic would be auto-created by many brokers with *their* retention (7 days on Kafka):
        # create it with ours first.  An existing topic is never changed.
        timeout_ms = min(int(self._timeout * 1000), 10_000)
        if self._create_topic and ensure_topic(self.settings, entries_topic_spec(self.settings), timeout_ms):
            log.warning("relay: topic %s did not exist; created it from the settings", self.topic)
        try:
            self._producer = self._producer_factory(self.producer_config())
        except (KafkaError, OSError) as exc:
            if self.idempotent and type(exc).__name__ in _IDEMPOTENCE_REJECTED:
                self._fall_back(exc)
                return self._ensure_producer()
            raise PublishError(f"cannot reach the Kafka broker: {type(exc).__name__}") from exc
        except RuntimeError as exc:  # kafka-python: the compression library is not installed
            raise ConfigurationError(f"compression {self.settings.kafka_compression} is not available: {exc}") from exc
        return self._producer

    def _fall_back(self, exc: BaseException) -> None:
        self.idempotent = False
        log.warning(
            "relay: the broker refused the idempotent producer (%s); publishing without idempotence, "
            "with max_in_flight_requests_per_connection=1",
            type(exc).__name__,
        )

    def _discard_producer(self, exc: BaseException) -> None:
        """Throw the producer away: pending records are aborted, the next pass re-sends from the progress."""
        if self.idempotent and type(exc).__name__ in _IDEMPOTENCE_REJECTED:
            self._fall_back(exc)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as close_error:  # closing a broken producer may fail too; it is gone either way
                log.debug("relay: closing the failed producer: %s", type(close_error).__name__)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
            except Exception as exc:
                log.debug("relay: closing the producer: %s", type(exc).__name__)

    def __enter__(self) -> Relay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the loop ---------------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event) -> None:
        """Publish until ``stop_event`` is set; pause when caught up, back off when the broker fails.

        Failures are logged (error class and seq, never values) and never end the loop.
        """
        failures = 0
        try:
            while not stop_event.is_set():
                pause = self.settings.relay_interval_seconds
                try:
                    published = self.run_once()
                    if failures:
                        log.info("relay: publishing again after %d failed attempt(s)", failures)
                    failures = 0
                    if published:
                        pause = 0.0  # more may have been appended meanwhile
                except Exception as exc:
                    failures += 1
                    pause = backoff_seconds(self.settings.relay_interval_seconds, failures)
                    self._log_failure(exc, failures, pause)
                stop_event.wait(pause)
        finally:
            self.close()

    def _log_failure(self, exc: Exception, failures: int, pause: float) -> None:
        try:
            progress = f"next seq {self.next_seq()}"
        except Exception:
            progress = "progress unreadable"
        reason = str(exc) if isinstance(exc, LedgerError) else f"unexpected {type(exc).__name__}"
        log.warning(
            "relay to %s: %s (%s; attempt %d, retrying in %.1f s)", self.topic, reason, progress, failures, pause
        )


def backoff_seconds(interval: float, failures: int) -> float:
    """Exponential backoff from ``interval`` up to MAX_BACKOFF_SECONDS, with jitter."""
    ceiling = min(MAX_BACKOFF_SECONDS, interval * 2 ** min(failures, 16))
    return random.uniform(ceiling / 2, ceiling)


class LogWorkerThread:
    """A background worker over one log (inside ``ledger serve``): it opens its log once the database
    answers and it exists (LEDGER_LOG_ORIGIN, or the only log), then runs ``work(ledger, stop_event)``."""

    def __init__(self, settings: Settings, name: str, work: Callable[[Ledger, threading.Event], object]) -> None:
        self.settings = settings
        self._name = name
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ledger-{name}", daemon=True)

    def start(self) -> LogWorkerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        recorder = Ledger.open_recorder(self.settings, run_migrations=False)  # its own small pool
        try:
            ledger = self._open_log(recorder)
            if ledger is not None:
                self._work(ledger, self._stop)
        finally:
            recorder.engine.dispose()

    def _open_log(self, recorder: SqlRecorder) -> Ledger | None:
        failures = 0
        while not self._stop.is_set():
            try:
                origin = self.settings.log_origin
                if origin is None:
                    heads = recorder.list_logs()
                    if len(heads) != 1:
                        raise ConfigurationError(f"{len(heads)} logs exist: choose one with LEDGER_LOG_ORIGIN")
                    origin = heads[0].origin
                return Ledger(recorder, self.settings, origin)
            except Exception as exc:
                failures += 1
                pause = backoff_seconds(self.settings.relay_interval_seconds, failures)
                reason = str(exc) if isinstance(exc, LedgerError) else type(exc).__name__
                log.warning("%s: cannot open the log yet: %s (retrying in %.1f s)", self._name, reason, pause)
                self._stop.wait(pause)
        return None


def relay_thread(settings: Settings) -> LogWorkerThread:
    """The relay as a background worker of the server."""
    return LogWorkerThread(settings, "relay", lambda ledger, stop: Relay(ledger, settings).run_forever(stop))
