"""Shared pieces of the harness: the workload, scales, figures and the run context."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from ledger.service import Ledger
    from ledger.settings import Settings
    from tests.services import Database, PostgresServer

ORIGIN = "bench.example/ledger"
PRODUCER = "bench"
BATCH_SIZE = 1_000
STREAMS = 400
THREADS = 4
OCCURRED_AT = "2026-11-20T10:00:00Z"

EVENTS_PER_S = "events/s"
MEGABYTES = "MB"


# --- workload ------------------------------------------------------------------------------------------


def make_event(n: int) -> dict[str, Any]:
    """Event number ``n`` of the workload: a passing IAM check on one of 400 hosts, a fresh UUID each call."""
    return {
        "id": str(uuid.uuid4()),
        "stream": f"controls/iam-01/host-{n % STREAMS:03d}",
        "type": "check.result",
        "occurred_at": OCCURRED_AT,
        "payload": {
            "control_id": "IAM-01",
            "check_id": f"IAM-01-{n}",
            "status": "pass",
            "framework_refs": ["DORA Art. 9(4)(d)"],
            "evidence": [
                {
                    "name": "r.json",
                    "sha256": "ab" * 32,
                    "size": 1200,
                    "uri": "https://evidence.bank.example/r.json",
                }
            ],
            "observed_at": OCCURRED_AT,
            "summary": "MFA enforced for privileged accounts",
        },
    }


def make_events(start: int, count: int) -> list[dict[str, Any]]:
    return [make_event(n) for n in range(start, start + count)]


def batches(total: int, size: int = BATCH_SIZE) -> Iterator[tuple[int, int]]:
    """``(start, count)`` of each batch covering ``total`` events."""
    for start in range(0, total, size):
        yield start, min(size, total - start)


@dataclass(frozen=True)
class Scale:
    """How many events each benchmark writes."""

    batch_events: int
    single_events: int
    warmup_single: int
    threads: int = THREADS
    http_seconds: float = 10.0
    """Measured seconds of HTTP load per server, split over ``http_rounds`` turns."""
    http_warmup_seconds: float = 2.0
    http_rounds: int = 2
    kafka_relay_events: int = 50_000
    """Entries the Kafka relay publishes (and raw kafka-python produces) in ``kafka.relay``."""
    kafka_ingest_events: int = 20_000
    """Messages consumed from the ingest topic in ``kafka.ingest``."""
    seal_restore_entries: int = 1_000_000
    """Size of the log sealed and restored in ``retention.seal_restore``."""
    seal_azurite_entries: int = 100_000
    """Size of the log sealed into Azurite (and into a directory) in ``retention.seal_azurite``."""
    pack_entries: int = 100_000
    """Size of the log exported as one evidence pack (every entry in scope) and verified in ``packs.build_verify``."""
    load_rate: float = 1_000.0
    """Requests per second offered in ``http.load_drill`` (then twice that)."""
    load_seconds: float = 60.0
    """Measured seconds of each rate in ``http.load_drill``."""

    @classmethod
    def default(cls) -> Scale:
        return cls(batch_events=50_000, single_events=3_000, warmup_single=30)

    @classmethod
    def quick(cls) -> Scale:
        return cls(
            batch_events=5_000,
            single_events=300,
            warmup_single=10,
            http_seconds=3.0,
            http_warmup_seconds=1.0,
            http_rounds=1,
            kafka_relay_events=5_000,
            kafka_ingest_events=2_000,
            seal_restore_entries=20_000,
            seal_azurite_entries=20_000,
            pack_entries=10_000,
            load_seconds=5.0,
        )


# --- figures -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A figure we aim for; printed beside the result, never asserted."""

    value: float
    unit: str
    higher_is_better: bool = True

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.higher_is_better else measured <= self.value

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {format_number(self.value)} {self.unit}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    detail: str = ""


@dataclass(frozen=True)
class Row:
    """One line of the report: a figure, the baseline it is compared with, and its target."""

    figure: str
    baseline: str | None = None
    target: Target | None = None
    ratio_target: float | None = None
    """A floor for figure / baseline (e.g. 0.5: at least half the baseline); printed, never asserted."""


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, detail: str = "") -> Figure:
        figure = Figure(name, value, unit, detail)
        self.figures[name] = figure
        shown = f"{format_number(value)} {unit}"
        print(f"  {name:<38} {shown:>20}  {detail}", flush=True)
        return figure

    def compare(
        self,
        figure: str,
        baseline: str | None = None,
        target: Target | None = None,
        *,
        ratio_target: float | None = None,
    ) -> None:
        """Add a report row; rows whose figure was not measured are left out."""
        if figure in self.figures:
            self.rows.append(Row(figure, baseline if baseline in self.figures else None, target, ratio_target))

    def ratio(self, row: Row) -> float | None:
        if row.baseline is None:
            return None
        base = self.figures[row.baseline].value
        return self.figures[row.figure].value / base if base else None


def format_number(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def add_memory(results: Any, figure: str, measured: dict[str, Any], before_what: str) -> None:
    """``FIGURE.rss_before_mb`` and ``FIGURE.peak_rss_mb`` from what a measured child reported."""
    source = measured["memory_source"]
    results.add(f"{figure}.rss_before_mb", measured["before_mb"], MEGABYTES, f"after {before_what} ({source})")
    results.add(f"{figure}.peak_rss_mb", measured["peak_mb"], MEGABYTES, f"child's high-water mark ({source})")


def percentile_ms(seconds: list[float], q: float) -> float:
    """Nearest-rank percentile of durations in seconds, in milliseconds (NaN for none)."""
    if not seconds:
        return float("nan")
    ordered = sorted(seconds)
    rank = int(max(1, -(-len(ordered) * q // 100)))
    return ordered[rank - 1] * 1000


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def peak_rss_mb() -> float:
    """High-water resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """Accumulates the time spent inside ``with stopwatch:`` blocks (set-up outside them is not counted)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


# --- run context ---------------------------------------------------------------------------------------


@dataclass
class Context:
    server: PostgresServer
    scale: Scale
    results: Results
    services: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """Services started on demand for the whole run (the Kafka broker); the harness closes it at the end."""
    _kafka: str | None = field(default=None, init=False, repr=False)

    def kafka_bootstrap(self) -> str:
        """``host:port`` of a Kafka broker, started on first use and shared by every Kafka benchmark.

        ``LEDGER_TEST_KAFKA_BOOTSTRAP_SERVERS`` when set, else an Apache Kafka container, else a local Tansu
        broker (``tests.services.kafka_bootstrap_servers``).
        """
        if self._kafka is None:
            from tests.services import kafka_bootstrap_servers

            source = kafka_source()
            self._kafka = self.services.enter_context(kafka_bootstrap_servers())
            self.results.facts["kafka_broker"] = source
        return self._kafka

    @contextlib.contextmanager
    def database(self, prefix: str) -> Iterator[Database]:
        """A fresh database on the shared server, dropped afterwards."""
        with self.server.database(prefix) as database:
            yield database

    @contextlib.contextmanager
    def ledger(self, prefix: str) -> Iterator[Ledger]:
        """A new ledger (migrations run, key created) in its own database and key directory."""
        with self.database(prefix) as database, new_ledger(database.superuser_url) as ledger:
            yield ledger


def kafka_source() -> str:
    """Which broker ``tests.services.kafka_bootstrap_servers`` chooses, the way it chooses it."""
    from tests.services import KAFKA_BOOTSTRAP_ENV, docker_engine_available, tansu_binary

    if os.environ.get(KAFKA_BOOTSTRAP_ENV):
        return f"broker at {KAFKA_BOOTSTRAP_ENV}"
    if docker_engine_available():
        return "Apache Kafka container (testcontainers, KRaft)"
    binary = tansu_binary()
    version = "version unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        answer = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
        version = answer.stdout.strip() or version
    return f"local Tansu broker ({version}, memory storage)"


def ledger_settings(data_dir: Path, url: str) -> Settings:
    """The ledger's settings for a benchmark, stated in full so that LEDGER_* variables cannot change them."""
    from ledger.settings import Settings

    return Settings(
        data_dir=data_dir,
        database_url=url,
        checkpoint_interval=1,
        max_batch_events=10_000,
        signing_key=None,
        subject_secret=None,
        log_origin=None,
    )


@contextlib.contextmanager
def new_ledger(url: str, data_dir: Path | None = None) -> Iterator[Ledger]:
    """``Ledger.create`` on the database at ``url``; key files in ``data_dir`` or a temporary directory."""
    from ledger.service import Ledger

    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-bench-")))
        ledger = Ledger.create(ledger_settings(data_dir, url), ORIGIN)
        stack.callback(ledger.recorder.engine.dispose)
        yield ledger


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy ``postgresql+psycopg`` URL."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def nproc() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
