"""The boundary with kafka-python: its exceptions become ledger errors (DESIGN.md section 4, rule 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ledger.errors import PublishError


@contextmanager
def kafka_errors(action: str) -> Iterator[None]:
    """Turn a kafka-python or socket failure during ``action`` into :class:`PublishError`."""
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise PublishError(f"{action}: the Kafka broker failed ({type(exc).__name__})") from exc
    except OSError as exc:
        raise PublishError(f"{action}: the Kafka broker is unreachable ({type(exc).__name__})") from exc
