"""Prometheus metrics, one registry per app (never the global one), with bounded label values.

Routes record what they did through ``record_append`` and ``record_audit``; the middleware records every
request through ``record_request``; ``GET /metrics`` calls ``render`` after ``set_log_sizes``.  Values that
are computed when scraped (overdue DORA reports) come from scrape hooks, which ``render`` runs first.
Label values are route templates, known HTTP methods, status codes and log origins: never raw paths,
key ids or anything taken from a request body.
"""

from __future__ import annotations

import copy
import os
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.requests import Request

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # "text/plain; version=0.0.4; charset=utf-8", what generate_latest writes
UNMATCHED_ROUTE = "<unmatched>"  # no route answered: unknown paths, and 413/429 refused before routing
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's; set by ``ledger serve --workers N``
ScrapeHook = Callable[[Collection[str] | None], None]
"""Called at each scrape with the logs whose series will be shown (None: every log)."""


class ApiMetrics:
    """The metrics of one app; ``registry`` is what ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "ledger_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.request_duration = Histogram(
            "ledger_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.appended = Counter("ledger_appended_entries", "entries appended", ["log"], registry=registry)
        self.duplicates = Counter(
            "ledger_append_duplicates", "events already stored, answered with their entry", ["log"], registry=registry
        )
        self.audits = Counter("ledger_audits", "server-side audits run", ["log", "result"], registry=registry)
        self.audit_findings = Counter(
            "ledger_audit_findings", "findings reported by server-side audits", ["log"], registry=registry
        )
        # set at each scrape; across the processes of ``ledger serve --workers N`` the latest value counts
        self.log_size = Gauge(
            "ledger_log_size",
            "entries in the log (updated on scrape)",
            ["log"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.dora_reports_overdue = Gauge(
            "ledger_dora_reports_overdue",
            "DORA report deadlines passed without the report (RTS 2025/301 Art. 5; updated on scrape)",
            ["log"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._scrape_hooks: list[ScrapeHook] = []
        _BY_REGISTRY[registry] = self

    def record_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.request_duration.labels(method, route).observe(seconds)

    def set_log_sizes(self, sizes: Iterable[tuple[str, int]]) -> None:
        for log, size in sizes:
            self.log_size.labels(log).set(size)

    def set_overdue_reports(self, counts: Iterable[tuple[str, int]]) -> None:
        for log, count in counts:
            self.dora_reports_overdue.labels(log).set(count)

    def add_scrape_hook(self, hook: ScrapeHook) -> None:
        """Run ``hook(logs)`` at every scrape, before the text is rendered (``logs`` as given to ``render``)."""
        self._scrape_hooks.append(hook)

    def render(self, logs: Collection[str] | None = None) -> bytes:
        """The exposition text; with ``logs``, series labelled with any other log are left out.

        The scrape hooks run first, with the same ``logs``, so that they compute only what will be shown.
        """
        for hook in self._scrape_hooks:
            hook(logs)
        registry = self.registry
        if folder := os.environ.get(MULTIPROCESS_ENV):
            # a worker of ``ledger serve --workers N``: every worker's values, added up from their files
            registry = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        if logs is None:
            return generate_latest(registry)
        return generate_latest(_OnlyLogs(registry, frozenset(logs)))


class _OnlyLogs:
    """The registry's metrics without the series of logs outside ``logs`` (an admin sees only its own logs)."""

    def __init__(self, registry: CollectorRegistry, logs: frozenset[str]) -> None:
        self.registry = registry
        self.logs = logs

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            samples = [s for s in family.samples if "log" not in s.labels or s.labels["log"] in self.logs]
            if len(samples) == len(family.samples):
                yield family
                continue
            narrowed = copy.copy(family)
            narrowed.samples = samples
            yield narrowed


MetricsTarget = Starlette | Request | ApiMetrics | CollectorRegistry
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, ApiMetrics] = weakref.WeakKeyDictionary()


def install_metrics(app: Starlette) -> ApiMetrics:
    """Create the app's metrics and keep them on ``app.state.metrics`` (the same object on a second call)."""
    existing = getattr(app.state, "metrics", None)
    if isinstance(existing, ApiMetrics):
        return existing
    metrics = ApiMetrics()
    app.state.metrics = metrics
    return metrics


def metrics_of(target: MetricsTarget) -> ApiMetrics:
    """The ``ApiMetrics`` of an app, of the app serving a request, or behind a registry."""
    if isinstance(target, ApiMetrics):
        return target
    if isinstance(target, CollectorRegistry):
        return _BY_REGISTRY[target]
    app = target.app if isinstance(target, Request) else target
    found: ApiMetrics = app.state.metrics
    return found


def record_append(target: MetricsTarget, log: str, created: int, duplicates: int = 0) -> None:
    """Count entries appended to ``log`` and events that were already stored (bools count as 0/1)."""
    metrics = metrics_of(target)
    if created:
        metrics.appended.labels(log).inc(int(created))
    if duplicates:
        metrics.duplicates.labels(log).inc(int(duplicates))


def record_audit(target: MetricsTarget, log: str, ok: bool, findings: int) -> None:
    """Count one server-side audit of ``log``, its result and how many findings it reported."""
    metrics = metrics_of(target)
    metrics.audits.labels(log, "ok" if ok else "failed").inc()
    metrics.audit_findings.labels(log).inc(max(0, findings))
