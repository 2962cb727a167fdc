"""Request protection around the API: headers, request ids, body and rate limits, CORS, logs, metrics, probes.

Everything runs in-process (``TestClient``) over the embedded SQLite store.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics import record_append, record_audit
from api.middleware import JsonFormatter, TokenBuckets, configure_json_logging
from ledger.access import Role, split_token
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.database import make_engine
from ledger.store.recorder import SqlRecorder

ORIGIN = "t.example/log"
CREATED_AT = "2026-11-20T00:00:00.000000Z"
PAYLOAD_MARKER = "SECRET-MARKER-123"
QUERY_MARKER = "QUERY-MARKER-456"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
ACCESS_FIELDS = {"time", "level", "request_id", "method", "route", "status", "duration_ms", "key_id"}


@dataclass(frozen=True)
class Keys:
    publisher: str
    officer: str
    admin: str
    second_admin: str

    @staticmethod
    def key_id(token: str) -> str:
        parts = split_token(token)
        assert parts is not None
        return parts[0]


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    """A log and one key per role that the tests use, in the embedded store under ``tmp_path``."""
    ledger = Ledger.create(Settings(data_dir=tmp_path), ORIGIN)
    store = ApiKeyStore(ledger.recorder.engine)
    try:
        _, publisher = store.create(Role.PUBLISHER, [ORIGIN], ["controls"], "svc", CREATED_AT)
        _, officer = store.create(Role.OFFICER, [ORIGIN], [], "officer", CREATED_AT)
        _, admin = store.create(Role.ADMIN, [ORIGIN], [], "admin", CREATED_AT)
        _, second_admin = store.create(Role.ADMIN, [ORIGIN], [], "admin-2", CREATED_AT)
    finally:
        ledger.recorder.engine.dispose()
    return Keys(publisher, officer, admin, second_admin)


@contextmanager
def running(tmp_path: Path, *, base_url: str = "http://testserver", **overrides: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, **overrides))
    with TestClient(app, base_url=base_url) as client:
        yield client


def event(check_id: str = "c1") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": "controls/iam-01/host-001",
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {
            "control_id": "IAM-01",
            "check_id": check_id,
            "status": "pass",
            "framework_refs": [],
            "evidence": [],
            "observed_at": "2026-11-20T10:00:00Z",
        },
    }


def log_size(client: TestClient) -> int:
    app: Any = client.app
    size: int = app.state.ledger_state.ledger(ORIGIN).head().size
    return size


def assert_security_headers(response: Any, *, csp: str = API_CSP) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Security-Policy"] == csp
    assert "Strict-Transport-Security" not in headers  # plain HTTP


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# --- security headers and request ids ---------------------------------------------------------------------------


def test_security_headers_on_success_and_error_answers(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        answers = [
            client.get("/health"),
            client.post("/v1/events", json=event(), headers={"X-API-Key": keys.publisher}),
            client.get("/v1/entries/0"),  # 401: no key
            client.get("/metrics", headers={"X-API-Key": keys.publisher}),  # 403
            client.get("/no/such/path"),  # 404
            client.delete("/health"),  # 405
        ]
        assert [r.status_code for r in answers] == [200, 201, 401, 403, 404, 405]
        for response in answers:
            assert_security_headers(response)
        for response in answers[1:5]:
            assert response.headers["Cache-Control"] == "no-store"


def test_hsts_only_over_tls(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, base_url="https://testserver") as client:
        for response in (client.get("/health"), client.get("/v1/entries/0")):
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    with running(tmp_path) as client:
        assert "Strict-Transport-Security" not in client.get("/health").headers


def test_docs_get_a_csp_for_their_cdn_and_nothing_else_does(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        csp = docs.headers["Content-Security-Policy"]
        assert "script-src https://cdn.jsdelivr.net 'sha256-" in csp  # the inline bootstrap, by hash
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert "'unsafe-eval'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert docs.headers["X-Frame-Options"] == "DENY"
        redoc = client.get("/redoc")
        assert redoc.status_code == 200
        assert "worker-src blob:" in redoc.headers["Content-Security-Policy"]
        assert_security_headers(client.get("/openapi.json"))


def test_an_unexpected_error_is_a_problem_with_the_headers(tmp_path: Path, keys: Keys) -> None:
    app = create_app(Settings(data_dir=tmp_path))

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("internal detail " + PAYLOAD_MARKER)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/boom")
    body = assert_problem(response, 500)
    assert PAYLOAD_MARKER not in response.text
    assert body["detail"] == "an internal error occurred"
    assert_security_headers(response)


def test_request_id_is_echoed_when_well_formed_and_generated_otherwise(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        sent = "req-1.A_b-" + "x" * 54  # 64 characters
        assert client.get("/health", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent
        generated = set()
        for bad in ("x" * 65, "has space", "semi;colon", "", None):
            headers = {} if bad is None else {"X-Request-ID": bad}
            got = client.get("/health", headers=headers).headers["X-Request-ID"]
            assert got != bad and 1 <= len(got) <= 64
            generated.add(got)
        assert len(generated) == 5  # a fresh id each time
        problem = client.get("/v1/entries/0", headers={"X-Request-ID": "trace-42"})
        assert assert_problem(problem, 401)["request_id"] == "trace-42"


# --- body limit -------------------------------------------------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_anything_is_read(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_max_body_bytes=2048) as client:
        big = event(check_id="x" * 4000)
        response = client.post("/v1/events", json=big, headers={"X-API-Key": keys.publisher})
        body = assert_problem(response, 413)
        assert body["title"] == "Payload too large"
        assert_security_headers(response)
        assert log_size(client) == 0
        assert client.post("/v1/events", json=event(), headers={"X-API-Key": keys.publisher}).status_code == 201


def test_a_chunked_body_is_cut_off_when_it_grows_past_the_limit(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_max_body_bytes=2048) as client:
        raw = json.dumps(event(check_id="x" * 4000)).encode()
        chunks = (raw[i : i + 500] for i in range(0, len(raw), 500))  # a generator: sent chunked, no length
        response = client.post(
            "/v1/events",
            content=chunks,
            headers={"X-API-Key": keys.publisher, "Content-Type": "application/json"},
        )
        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in response.request.headers
        body = assert_problem(response, 413)
        assert body["title"] == "Payload too large"
        assert_security_headers(response)
        assert log_size(client) == 0


def test_a_chunked_body_within_the_limit_is_accepted(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_max_body_bytes=4096) as client:
        raw = json.dumps(event()).encode()
        chunks = (raw[i : i + 100] for i in range(0, len(raw), 100))
        response = client.post(
            "/v1/events", content=chunks, headers={"X-API-Key": keys.publisher, "Content-Type": "application/json"}
        )
        assert response.status_code == 201
        assert log_size(client) == 1


# --- rate limit -------------------------------------------------------------------------------------------------


def test_requests_past_the_burst_get_429_with_retry_after(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_rate_limit_burst=3, api_rate_limit_per_second=0.01) as client:
        statuses = [client.get("/metrics").status_code for _ in range(3)]
        assert statuses == [401, 401, 401]  # no key: charged to the client address
        limited = client.get("/metrics")
        body = assert_problem(limited, 429)
        assert body["title"] == "Too many requests"
        retry_after = limited.headers["Retry-After"]
        assert retry_after.isdigit() and int(retry_after) >= 1
        assert_security_headers(limited)
        # The probes are never limited.
        assert [client.get(path).status_code for path in ("/health", "/live", "/ready")] == [200, 200, 200]


def test_each_key_has_its_own_bucket(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_rate_limit_burst=3, api_rate_limit_per_second=0.01) as client:
        first = {"X-API-Key": keys.admin}
        second = {"X-API-Key": keys.second_admin}
        statuses = [client.get("/metrics", headers=first).status_code for _ in range(10)]
        ok = statuses.index(429)
        assert ok >= 3 and set(statuses[:ok]) == {200} and set(statuses[ok:]) == {429}
        # The other key is not slowed down by the first one running out.
        assert [client.get("/metrics", headers=second).status_code for _ in range(3)] == [200, 200, 200]


def test_a_known_key_id_with_a_wrong_secret_cannot_drain_that_keys_bucket(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path, api_rate_limit_burst=3, api_rate_limit_per_second=0.01) as client:
        genuine = {"X-API-Key": keys.admin}
        assert client.get("/metrics", headers=genuine).status_code == 200
        forged = {"X-API-Key": f"lk_{Keys.key_id(keys.admin)}_not-the-secret"}
        forged_statuses = [client.get("/metrics", headers=forged).status_code for _ in range(4)]
        assert 429 in forged_statuses and set(forged_statuses) <= {401, 429}
        assert [client.get("/metrics", headers=genuine).status_code for _ in range(3)] == [200, 200, 200]


def test_token_buckets_refill_and_forget_idle_names() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, max_buckets=100, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    for i in range(250):  # many one-off callers never hold more than max_buckets
        buckets.take(f"ip:{i}")
        assert len(buckets) <= 100
    now[0] += 10.0  # every bucket is full again: all are forgotten on the next call
    buckets.take("b")
    assert len(buckets) == 1


# --- probes -----------------------------------------------------------------------------------------------------


def test_health_live_and_ready_are_public_and_minimal(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/live").json() == {"status": "alive"}
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}
        for path in ("/health", "/live", "/ready"):
            assert client.get(path).headers["content-type"] == "application/json"


def test_ready_answers_503_fast_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://ledger:x@127.0.0.1:1/ledger")
    with TestClient(create_app(settings)) as client:  # the API comes up anyway
        started = time.monotonic()
        response = client.get("/ready")
        assert time.monotonic() - started < 2.5
        body = assert_problem(response, 503)
        assert body["title"] == "Not ready"
        assert body["detail"] == "the database cannot be reached"
        assert int(response.headers["Retry-After"]) >= 1
        assert_security_headers(response)
        assert client.get("/health").json() == {"status": "ok"}  # health says nothing about the database
        assert client.get("/live").status_code == 200


@contextmanager
def silent_database() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung database)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_ready_gives_up_after_two_seconds_when_the_database_hangs(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path) as client, silent_database() as port:
        # Started on the embedded store, then pointed at the silent port (connecting there blocks for seconds).
        hung = SqlRecorder(make_engine(f"postgresql://ledger:x@127.0.0.1:{port}/ledger"))
        app: Any = client.app
        monkeypatch.setattr(app.state.ledger_state, "recorder", hung)
        started = time.monotonic()
        response = client.get("/ready")
        elapsed = time.monotonic() - started
        assert_problem(response, 503)
        assert 1.5 <= elapsed < 3.5


# --- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_need_an_admin_key(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        assert_problem(client.get("/metrics"), 401)
        assert_problem(client.get("/metrics", headers={"X-API-Key": keys.publisher}), 403)
        assert_problem(client.get("/metrics", headers={"X-API-Key": keys.officer}), 403)
        response = client.get("/metrics", headers={"X-API-Key": keys.admin})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_metrics_expose_every_family_with_route_templates(tmp_path: Path, keys: Keys) -> None:
    with running(tmp_path) as client:
        assert client.post("/v1/events", json=event(), headers={"X-API-Key": keys.publisher}).status_code == 201
        assert client.get("/v1/entries/0", headers={"X-API-Key": keys.officer}).status_code == 200
        client.get("/no/such/path/12345")
        app: Any = client.app
        record_append(app, ORIGIN, created=3, duplicates=1)
        record_audit(app, ORIGIN, ok=False, findings=2)
        text = client.get("/metrics", headers={"X-API-Key": keys.admin}).text
    for family in (
        "ledger_http_requests_total",
        "ledger_http_request_duration_seconds",
        "ledger_appended_entries_total",
        "ledger_append_duplicates_total",
        "ledger_audits_total",
        "ledger_audit_findings_total",
        "ledger_log_size",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    assert 'ledger_http_requests_total{method="GET",route="/v1/entries/{seq}",status="200"} 1.0' in text
    assert 'ledger_http_requests_total{method="POST",route="/v1/events",status="201"} 1.0' in text
    assert 'route="<unmatched>"' in text
    assert "/v1/entries/0" not in text and "12345" not in text  # raw paths never become labels
    assert f'ledger_log_size{{log="{ORIGIN}"}} 1.0' in text  # refreshed on scrape
    assert f'ledger_appended_entries_total{{log="{ORIGIN}"}}' in text
    assert f'ledger_append_duplicates_total{{log="{ORIGIN}"}} 1.0' in text
    assert f'ledger_audits_total{{log="{ORIGIN}",result="failed"}} 1.0' in text
    assert f'ledger_audit_findings_total{{log="{ORIGIN}"}} 2.0' in text


def test_an_admin_sees_only_the_metrics_of_its_own_logs(tmp_path: Path, keys: Keys) -> None:
    other = "u.example/other"
    ledger = Ledger.create(Settings(data_dir=tmp_path), other)
    try:
        _, other_admin = ApiKeyStore(ledger.recorder.engine).create(Role.ADMIN, [other], [], "other", CREATED_AT)
    finally:
        ledger.recorder.engine.dispose()
    with running(tmp_path) as client:
        app: Any = client.app
        record_append(app, ORIGIN, created=1)
        record_append(app, other, created=1)
        record_audit(app, other, ok=True, findings=0)
        client.get("/health")
        mine = client.get("/metrics", headers={"X-API-Key": keys.admin}).text
        theirs = client.get("/metrics", headers={"X-API-Key": other_admin}).text
    assert f'ledger_log_size{{log="{ORIGIN}"}}' in mine and other not in mine
    assert f'ledger_log_size{{log="{other}"}}' in theirs and ORIGIN not in theirs
    assert "# TYPE ledger_audits_total counter" in mine  # the family stays, without the other log's series
    assert "ledger_http_requests_total{" in mine and "ledger_http_requests_total{" in theirs


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    first, second = create_app(Settings(data_dir=tmp_path)), create_app(Settings(data_dir=tmp_path))
    record_append(first, ORIGIN, created=5)
    assert first.state.metrics.registry is not second.state.metrics.registry
    assert first.state.metrics.registry.get_sample_value("ledger_appended_entries_total", {"log": ORIGIN}) == 5
    assert second.state.metrics.registry.get_sample_value("ledger_appended_entries_total", {"log": ORIGIN}) is None
    record_append(first.state.metrics.registry, ORIGIN, created=1)  # the registry itself works as a target
    assert first.state.metrics.registry.get_sample_value("ledger_appended_entries_total", {"log": ORIGIN}) == 6


# --- CORS -------------------------------------------------------------------------------------------------------


def test_cors_headers_only_for_allowed_origins(tmp_path: Path, keys: Keys) -> None:
    allowed, stranger = "https://console.bank.example", "https://evil.example"
    with running(tmp_path, api_cors_origins=[allowed]) as client:
        ok = client.get("/health", headers={"Origin": allowed})
        assert ok.headers["Access-Control-Allow-Origin"] == allowed
        assert "Access-Control-Allow-Credentials" not in ok.headers
        assert "Access-Control-Allow-Origin" not in client.get("/health", headers={"Origin": stranger}).headers
        preflight = client.options(
            "/v1/events",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == allowed
        assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
        refused = client.options("/v1/events", headers={"Origin": stranger, "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in refused.headers
    with running(tmp_path) as client:  # the default: no origin is allowed
        answer = client.get("/health", headers={"Origin": allowed})
        assert not [name for name in answer.headers if name.lower().startswith("access-control-")]


# --- access logs ------------------------------------------------------------------------------------------------


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records written by the server side (the test client's own httpx lines show full URLs by design)."""
    return [r for r in caplog.records if r.name.split(".")[0] not in {"httpx", "httpcore"}]


def test_access_logs_are_json_lines_without_secrets_values_or_queries(
    tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    publisher = {"X-API-Key": keys.publisher}
    with running(tmp_path, api_max_body_bytes=2048) as client:
        query = f"?log={ORIGIN}"
        assert client.post("/v1/events" + query, json=event(PAYLOAD_MARKER), headers=publisher).status_code == 201
        bad = event(PAYLOAD_MARKER)
        bad["payload"]["status"] = PAYLOAD_MARKER  # refused: the value must not reach the logs either
        assert client.post("/v1/events" + query, json=bad, headers=publisher).status_code == 422
        big = event(PAYLOAD_MARKER + "x" * 3000)
        assert client.post("/v1/events" + query, json=big, headers=publisher).status_code == 413
        officer = {"X-API-Key": keys.officer}
        assert client.get(f"/v1/entries{query}&stream={QUERY_MARKER}", headers=officer).status_code == 200
        assert client.get(f"/v1/entries{query}&note={QUERY_MARKER}", headers=officer).status_code == 422
        assert client.get("/v1/entries/0" + query, headers=officer).status_code == 200
        forged = f"lk_{Keys.key_id(keys.admin)}_{PAYLOAD_MARKER}"
        assert client.get("/metrics", headers={"X-API-Key": forged}).status_code == 401

    records = server_records(caplog)
    access = [r for r in records if r.name == "ledger.api.access"]
    assert len(access) >= 7
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in access]
    parsed = [json.loads(line) for line in lines]
    for entry in parsed:
        assert set(entry) >= ACCESS_FIELDS
        assert "\n" not in json.dumps(entry)
        assert "?" not in entry["route"]
    created = parsed[0]
    assert (created["method"], created["route"], created["status"]) == ("POST", "/v1/events", 201)
    assert created["key_id"] == Keys.key_id(keys.publisher)
    assert created["level"] == "INFO" and created["duration_ms"] >= 0
    assert {"/v1/entries/{seq}", "/v1/entries", "/metrics"} <= {e["route"] for e in parsed}
    assert [e["key_id"] for e in parsed if e["status"] == 401] == [None]  # an unproven key id is not logged

    secrets = [keys.publisher, keys.officer, PAYLOAD_MARKER, QUERY_MARKER]
    secrets += [split_token(k)[1] for k in (keys.publisher, keys.officer)]  # type: ignore[index]
    for record in records:
        everything = formatter.format(record) + " " + repr(record.__dict__)
        for secret in secrets:
            assert secret not in everything, (record.name, secret)


def test_json_formatter_keeps_exception_messages_out(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ledger.api.test")
    with caplog.at_level(logging.ERROR, logger="ledger.api.test"):
        try:
            raise ValueError("parameters: " + PAYLOAD_MARKER)
        except ValueError:
            logger.exception("failed", extra={"error": "ValueError"})
    line = JsonFormatter().format(caplog.records[-1])
    parsed = json.loads(line)
    assert parsed["error_type"] == "builtins.ValueError"
    assert parsed["message"] == "failed" and parsed["error"] == "ValueError"
    assert PAYLOAD_MARKER not in line


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_access = logging.getLogger("uvicorn.access")
    saved_access = (list(uvicorn_access.handlers), uvicorn_access.propagate, uvicorn_access.disabled)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    uvicorn_access.handlers[:] = saved_access[0]
    uvicorn_access.propagate, uvicorn_access.disabled = saved_access[1], saved_access[2]


def test_configure_json_logging_installs_one_json_handler(restore_logging: None) -> None:
    configure_json_logging("INFO")
    configure_json_logging(logging.WARNING)  # idempotent: still one handler
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1
    assert root.level == logging.WARNING
    assert logging.getLogger("uvicorn.access").disabled  # it would log query strings


def test_install_middleware_is_all_create_app_needs(tmp_path: Path) -> None:
    app: FastAPI = create_app(Settings(data_dir=tmp_path))
    names = {m.cls.__name__ for m in app.user_middleware}  # type: ignore[attr-defined]
    assert {"RequestContextMiddleware", "RequestLimitsMiddleware"} <= names
    assert "CORSMiddleware" not in names
