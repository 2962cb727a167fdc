"""Topic set-up: create the ledger's topics and check existing ones against the settings.

``create_topics(settings)`` creates the entries topic, the ingest topic (when one is configured) and the
dead-letter topic with the configured partitions, replication factor, compression and retention (7 years by
default: the retention policy), and reads every topic back.  What it can read back is compared with what
the settings ask for and each difference is reported; what a broker does not let it read (Tansu returns no
topic configuration at all) is reported as not checked, never as matching.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import ConfigurationError, PublishError
from ledger.settings import Settings

log = logging.getLogger("ledger.kafka")

ADMIN_TIMEOUT_MS = 15_000
NOT_READABLE = "configuration not readable on this broker"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What the settings ask of one topic."""

    name: str
    purpose: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TopicCheck:
    """What was done to one topic and how it compares with its spec."""

    spec: TopicSpec
    created: bool
    differences: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    """Settings the broker would not let us read back (neither matching nor differing)."""

    def lines(self) -> list[str]:
        action = "created" if self.created else "exists"
        head = f"{self.spec.name} ({self.spec.purpose}): {action}"
        if self.differences:
            head += f", {len(self.differences)} difference(s)"
        elif not self.unchecked:
            head += ", matches the settings"
        lines = [head]
        lines += [f"  difference: {difference}" for difference in self.differences]
        if self.unchecked:
            lines.append(f"  not checked ({NOT_READABLE}): {', '.join(self.unchecked)}")
        return lines


@dataclass(frozen=True, slots=True)
class TopicsReport:
    topics: tuple[TopicCheck, ...] = field(default_factory=tuple)

    @property
    def differences(self) -> list[str]:
        return [f"{check.spec.name}: {d}" for check in self.topics for d in check.differences]

    @property
    def ok(self) -> bool:
        """No difference found (settings that could not be read back are not differences)."""
        return not self.differences

    def text(self) -> str:
        lines = [line for check in self.topics for line in check.lines()]
        unchecked = sum(1 for check in self.topics if check.unchecked)
        if self.differences:
            lines.append(f"{len(self.differences)} difference(s) from the settings")
        elif unchecked:
            lines.append(f"no difference in what could be read back; {unchecked} topic(s) not fully checked")
        else:
            lines.append("every topic matches the settings")
        return "\n".join(lines)


def topic_configs(settings: Settings) -> dict[str, str]:
    """Topic-level configuration from the settings (Kafka names and string values)."""
    configs = {
        "retention.ms": str(settings.kafka_retention_ms),
        "compression.type": "uncompressed" if settings.kafka_compression == "none" else settings.kafka_compression,
        "cleanup.policy": "delete",  # never "compact": compaction keeps one record per key (stream)
    }
    if settings.kafka_replication_factor > 1:  # acks=all then waits for at least two replicas
        configs["min.insync.replicas"] = str(min(2, settings.kafka_replication_factor))
    return configs


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The entries topic, the ingest topic if configured, and the dead-letter topic."""
    named = [(settings.kafka_topic, "ledger entries")]
    if settings.kafka_ingest_topic:
        named.append((settings.kafka_ingest_topic, "ingest"))
    named.append((settings.kafka_dead_letter_topic, "ingest dead letters"))
    configs = topic_configs(settings)
    return [
        TopicSpec(name, purpose, settings.kafka_partitions, settings.kafka_replication_factor, configs)
        for name, purpose in named
    ]


def create_topics(settings: Settings) -> TopicsReport:
    """Create missing topics, then read every topic back and compare it with the settings."""
    checks = []
    with _admin(settings) as admin:
        existing = set(_call("listing topics", admin.list_topics))
        for spec in topic_specs(settings):
            created = spec.name not in existing and _create(admin, spec)
            checks.append(_check(admin, spec, created))
    return TopicsReport(tuple(checks))


def ensure_topic(settings: Settings, spec: TopicSpec, timeout_ms: int = ADMIN_TIMEOUT_MS) -> bool:
    """Create one topic if it does not exist (never changes an existing one); True if it was created."""
    with _admin(settings, timeout_ms) as admin:
        if spec.name in set(_call("listing topics", admin.list_topics)):
            return False
        return _create(admin, spec)


def entries_topic_spec(settings: Settings) -> TopicSpec:
    return topic_specs(settings)[0]


@contextmanager
def _admin(settings: Settings, timeout_ms: int = ADMIN_TIMEOUT_MS) -> Iterator[Any]:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError("no Kafka broker configured: set LEDGER_KAFKA_BOOTSTRAP_SERVERS")
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="ledger-topics",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise PublishError(f"cannot reach the Kafka broker: {type(exc).__name__}") from exc
    try:
        yield admin
    finally:
        admin.close()


def _call(action: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    from kafka.errors import KafkaError

    try:
        return func(*args, **kwargs)
    except KafkaError as exc:
        raise PublishError(f"{action} failed: {type(exc).__name__}") from exc


def _create(admin: Any, spec: TopicSpec) -> bool:
    """Create a topic; False if it appeared meanwhile (another process created it)."""
    from kafka.errors import TopicAlreadyExistsError

    request = {
        spec.name: {
            "num_partitions": spec.partitions,
            "replication_factor": spec.replication_factor,
            "configs": dict(spec.configs),
        }
    }
    try:
        _call(f"creating topic {spec.name}", admin.create_topics, request, timeout_ms=ADMIN_TIMEOUT_MS)
    except PublishError as exc:
        if isinstance(exc.__cause__, TopicAlreadyExistsError):
            return False
        raise
    log.info("created topic %s (%d partitions, replication %d)", spec.name, spec.partitions, spec.replication_factor)
    return True


def _check(admin: Any, spec: TopicSpec, created: bool) -> TopicCheck:
    differences: list[str] = []
    described = _call(f"describing topic {spec.name}", admin.describe_topics, [spec.name])
    partitions = _partitions(described, spec.name)
    if partitions is None:
        return TopicCheck(spec, created, ("the broker does not list the topic",))
    if len(partitions) != spec.partitions:
        differences.append(f"partitions {len(partitions)}, settings ask for {spec.partitions}")
    replicas = {len(p.get("replica_nodes") or ()) for p in partitions}
    if replicas and replicas != {spec.replication_factor}:
        shown = ", ".join(str(r) for r in sorted(replicas))
        differences.append(f"replication factor {shown}, settings ask for {spec.replication_factor}")
    configs = _configs(admin, spec.name)
    unchecked = []
    for name, wanted in spec.configs.items():
        actual = configs.get(name)
        if actual is None:
            unchecked.append(name)
        elif actual != wanted:
            differences.append(f"{name} {actual}, settings ask for {wanted}")
    return TopicCheck(spec, created, tuple(differences), tuple(unchecked))


def _partitions(described: Any, name: str) -> list[dict[str, Any]] | None:
    for topic in described or ():
        if topic.get("name") == name and not topic.get("error_code"):
            return list(topic.get("partitions") or ())
    return None


def _configs(admin: Any, name: str) -> dict[str, str]:
    """Every readable configuration value of a topic (empty when the broker returns none, as Tansu does)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, name)
    result = _call(f"reading the configuration of {name}", admin.describe_configs, [resource], config_filter="all")
    entries = (result or {}).get("topic", {}).get(name) or {}
    return {key: str(entry["value"]) for key, entry in entries.items() if entry.get("value") is not None}
