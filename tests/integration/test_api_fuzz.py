"""Property-based fuzzing of the OpenAPI spec, plus hand-written hostile input.

Schemathesis generates valid and invalid requests for every operation from /openapi.json, sent with a
key whose role may call the operation, and checks that no response is a 5xx, that every status code and
body conforms to the spec, and that invalid input is refused with 4xx.  Hostile input must change
nothing in the store.
"""

from __future__ import annotations

import atexit
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from ledger.access import Role
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from tests.events import check_result

ORIGIN = "fuzz.bank.example/ledger"
NOW = "2026-11-20T00:00:00.000000Z"


class Fuzzed:
    def __init__(self, data: Path) -> None:
        self.settings = Settings(
            data_dir=data, api_rate_limit_per_second=100_000, api_rate_limit_burst=100_000, api_max_body_bytes=64 * 1024
        )
        self.ledger = Ledger.create(self.settings, ORIGIN)
        for _ in range(3):
            self.ledger.append(check_result(), producer="seed")
        store = ApiKeyStore(self.ledger.recorder.engine)
        self.tokens = {
            role: store.create(role, [ORIGIN], ["controls"] if role is Role.PUBLISHER else [], f"{role.value}", NOW)[1]
            for role in Role
        }
        self.app = create_app(self.settings)

    def token_for(self, method: str, path: str) -> str:
        if path.startswith("/v1/events") and method == "POST":
            return self.tokens[Role.PUBLISHER]
        if path.startswith("/v1/audits") or path.endswith("/cosignatures"):
            return self.tokens[Role.AUDITOR]
        if path.startswith("/v1/api-keys") or path == "/metrics":
            return self.tokens[Role.ADMIN]
        return self.tokens[Role.OFFICER]


# Schemathesis reads the spec when this module is imported, so the app is built then (embedded store in a
# temporary directory, removed at exit).
_WORKDIR = tempfile.TemporaryDirectory(prefix="ledger-fuzz-")
atexit.register(_WORKDIR.cleanup)
FUZZED = Fuzzed(Path(_WORKDIR.name))
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZED.app)


@pytest.fixture(scope="module")
def fuzzed() -> Fuzzed:
    return FUZZED


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_generated_requests_never_break_the_api(case: Any, fuzzed: Fuzzed) -> None:
    token = fuzzed.token_for(case.method.upper(), case.path)
    # Not checked: that every schema-valid request is accepted.  A few rules cannot be said in the spec in a
    # form generators honour (the nil UUID, timestamps before 1970, typed payloads chosen by the event type,
    # cross-field rules); such requests are refused with a 422 naming the field, which is what is wanted.
    # A generated negative case may leave out the key header on purpose; putting a valid key back would turn it
    # into a valid request that is rightly accepted.  Only a header the generator produced gets a real token.
    generated = {name.lower() for name in (case.headers or {})}
    headers = {"X-API-Key": token} if "x-api-key" in generated else {}
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


@pytest.fixture
def client(fuzzed: Fuzzed) -> Iterator[TestClient]:
    with TestClient(fuzzed.app) as test_client:
        yield test_client


HOSTILE_STRINGS = [
    "'; DROP TABLE entries; --",
    '" OR 1=1 --',
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "\u0000",
    "\ud800",
    "A" * 5000,
]


def _store_fingerprint(fuzzed: Fuzzed) -> tuple[int, str]:
    head = fuzzed.ledger.head()
    return head.size, head.head_hash.hex()


@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_injection_strings_in_every_field_are_refused_and_change_nothing(
    client: TestClient, fuzzed: Fuzzed, hostile: str
) -> None:
    before = _store_fingerprint(fuzzed)
    headers = {"X-API-Key": fuzzed.tokens[Role.PUBLISHER], "Content-Type": "application/json"}
    for field in ("id", "stream", "type", "occurred_at"):
        event = check_result() | {field: hostile}
        body = _dumps(event)
        response = client.post("/v1/events", content=body, headers=headers)
        assert 400 <= response.status_code < 500, (field, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert hostile not in response.text or len(hostile) < 3  # errors never echo the input back
    officer = {"X-API-Key": fuzzed.tokens[Role.OFFICER]}
    raw = quote(hostile.encode("utf-8", "surrogatepass")[:150])
    for path in (f"/v1/entries?stream={raw}", f"/v1/events/{raw[:36]}", f"/v1/stream?name={raw}"):
        response = client.get(path, headers=officer)
        assert response.status_code < 500, (path, response.status_code)
    assert _store_fingerprint(fuzzed) == before


def _dumps(value: Any) -> bytes:
    import json

    return json.dumps(value).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{", 422),
        (b"[]", 422),
        (b"null", 422),
        (b'{"id": 1}', 422),
        (b"\xff\xfe", 422),
        (b'{"events": "x"}', 422),
    ],
)
def test_invalid_json_and_wrong_types_get_problem_json(
    client: TestClient, fuzzed: Fuzzed, body: bytes, expected: int
) -> None:
    before = _store_fingerprint(fuzzed)
    headers = {"X-API-Key": fuzzed.tokens[Role.PUBLISHER], "Content-Type": "application/json"}
    for path in ("/v1/events", "/v1/events:batch"):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == expected, (path, response.text)
        assert response.json()["status"] == expected
    assert _store_fingerprint(fuzzed) == before


def test_oversize_bodies_and_huge_batches_are_refused(client: TestClient, fuzzed: Fuzzed) -> None:
    before = _store_fingerprint(fuzzed)
    headers = {"X-API-Key": fuzzed.tokens[Role.PUBLISHER]}
    big = check_result() | {"payload": {"blob": "x" * (200 * 1024)}}
    response = client.post("/v1/events", json=big, headers=headers)
    assert response.status_code == 413 and response.json()["status"] == 413
    many = {"events": [check_result() for _ in range(fuzzed.settings.api_max_batch_events + 1)]}
    response = client.post("/v1/events:batch", content=_dumps(many)[: 60 * 1024] + b"]}", headers=headers)
    assert 400 <= response.status_code < 500
    small_many = {"events": [{"id": str(uuid.uuid4())} for _ in range(fuzzed.settings.api_max_batch_events + 1)]}
    response = client.post("/v1/events:batch", json=small_many, headers=headers)
    assert response.status_code == 422 and "1 to" in response.json()["detail"]
    assert _store_fingerprint(fuzzed) == before
