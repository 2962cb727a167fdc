"""Security drill: keys and roles under abuse, secrets kept out of logs, private key files.

- Abuse: a publisher passing as another producer or writing where the ledger records its own decisions, a key
  of one log reaching for another log's entries, proofs, packs, audits and holds, revoked keys used again, and
  roles reaching for what they may not do.  Every refusal is a problem+json with the right status, and nothing
  changes: log heads, API keys, audit runs, legal holds and the pack directory are compared before and after.
- Logs: unique markers planted as API tokens, payload values, subject identifiers and the database password
  never reach a log record, in-process at DEBUG, on the stderr of ``ledger serve --log-level debug`` and of
  CLI runs, while the capture demonstrably holds the server's own records (and a body deliberately logged).
- Key files: private keys and the subject secret are mode 0600 in a 0700 directory even under umask 000, and
  are written nowhere else; the embedded database and its data directory, an exported evidence pack and the
  local snapshot store are owner-only as well.

The API runs on PostgreSQL, connected as a role whose password is one of the markers.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy.engine import make_url

from api.app import create_app
from api.middleware import JsonFormatter
from api.routes.packs import PACK_DIRECTORY
from ledger.access import ApiKey, Role, split_token
from ledger.chain import subject_ref
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from ledger.store.database import grant_app_role, make_engine, migrate
from retention.holds import load_holds
from tests import services
from tests.events import check_result

LOG_A = "a.drill.bank.example/ledger"
LOG_B = "b.drill.bank.example/ledger"
LOG_C = "c.drill.bank.example/ledger"
LOG_L = "logs.drill.bank.example/ledger"
B_STREAM = "controls/b-only/host-900"
B_ENTRIES = 40  # log B is longer than log A will ever be in this module
PROBLEM_JSON = "application/problem+json"
REVOCATION_SECONDS = 2.0  # README: a revoked key stops working at once in that process, within 2 s elsewhere
HOLD = {"scope_kind": "stream_prefix", "scope": "controls", "reason": "litigation", "case_id": "CASE-7"}


def marker(kind: str) -> str:
    """A string that occurs nowhere unless this test put it there (letters and digits only)."""
    return f"{kind.upper()}{secrets.token_hex(8).upper()}"


def _parts(token: str) -> tuple[str, str]:
    parts = split_token(token)
    assert parts is not None
    return parts


def _private_key_material(path: Path) -> str:
    """The base64 part of a C2SP private key file (``PRIVATE+KEY+<name>+<id>+<base64>``)."""
    return path.read_text().strip().split("+", 4)[4]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _cli_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(values)
    return env


def _cli(
    *args: str, env: dict[str, str], stdin: str | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ledger.cli", *args]
    if umask is not None:
        argv = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *argv]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False)


def problem(response: httpx.Response, status: int, where: str = "") -> dict[str, Any]:
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
    body: dict[str, Any] = response.json()
    assert body["status"] == status, where
    assert body["type"].startswith("https://") and body["title"] and body["detail"], where
    return body


# --- PostgreSQL, connected as a role whose password is a marker ---------------------------------------------


@dataclass(frozen=True)
class DrillDatabase:
    url: str
    """SQLAlchemy URL of the application role, password included."""
    password: str


@pytest.fixture(scope="module")
def drill_database(postgres_server: services.PostgresServer) -> Iterator[DrillDatabase]:
    password = marker("dbpassword")
    role = f"drill_{secrets.token_hex(4)}"
    admin_dsn = _dsn(postgres_server.superuser_url)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        with postgres_server.database("security_drill") as database:
            admin = make_engine(database.superuser_url)
            try:
                migrate(admin)  # the superuser owns the schema; the role gets the application's rights only
                grant_app_role(admin, role)
            finally:
                admin.dispose()
            url = make_url(database.url).set(username=role, password=password)
            yield DrillDatabase(url.render_as_string(hide_password=False), password)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def drill_settings(data_dir: Path, database: DrillDatabase, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database.url,
        "log_origin": None,
        "signing_key": None,
        "subject_secret": None,
        "api_rate_limit_per_second": 10_000,
        "api_rate_limit_burst": 10_000,
        "api_max_body_bytes": 64 * 1024,
    }
    return Settings(**(values | overrides))


# --- two logs, a key per role on each -------------------------------------------------------------------------


@dataclass
class Site:
    client: TestClient
    settings: Settings
    tokens: dict[str, str]
    keys: dict[str, ApiKey]
    b_event_id: str = ""
    b_pack_id: str = ""
    b_audit_id: str = ""
    a_hold_id: str = ""
    b_hold_id: str = ""

    def headers(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.tokens[who]}

    def call(self, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
        response: httpx.Response = self.client.request(method, path, json=body, headers=self.headers(who))
        return response

    def ledger(self, origin: str) -> Ledger:
        app: Any = self.client.app
        found: Ledger = app.state.ledger_state.ledger(origin)
        return found

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything an abuse could change: heads, keys, audit runs, holds and the pack directory."""
        app: Any = self.client.app
        state = app.state.ledger_state
        heads, audits, holds = [], [], []
        for origin in (LOG_A, LOG_B):
            ledger = self.ledger(origin)
            head = ledger.head()
            heads.append((origin, head.size, head.head_hash.hex()))
            audits.append(tuple(sorted(run["id"] for run in state.audit_runs.latest(ledger.log_id, 10_000))))
            holds.append(tuple((h.hold_id, h.actor, h.active) for h in load_holds(ledger)))
        keys = sorted(
            (k.key_id, k.role.value, k.logs, k.stream_prefixes, k.name, k.revoked_at) for k in state.api_keys.list()
        )
        packs = sorted(p.name for p in (self.settings.data_dir / PACK_DIRECTORY).iterdir())
        return tuple(heads), tuple(audits), tuple(holds), tuple(keys), tuple(packs)


ROLE_PREFIXES = {Role.PUBLISHER: ["controls"]}


@pytest.fixture(scope="module")
def site(drill_database: DrillDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = drill_settings(tmp_path_factory.mktemp("drill"), drill_database)
    tokens: dict[str, str] = {}
    keys: dict[str, ApiKey] = {}
    b_event_id = ""
    for origin, suffix in ((LOG_A, "a"), (LOG_B, "b")):
        ledger = Ledger.create(settings, origin)
        try:
            if origin == LOG_A:
                for _ in range(2):
                    ledger.append(check_result(), producer="seed")
            else:
                first = ledger.append_batch([check_result(stream=B_STREAM) for _ in range(B_ENTRIES)], producer="seed")
                b_event_id = first[0].entry.event_id
            store = ApiKeyStore(ledger.recorder.engine)
            for role in Role:
                name = f"{role.value}-{suffix}"
                keys[name], tokens[name] = store.create(role, [origin], ROLE_PREFIXES.get(role, []), name, utc_now())
        finally:
            ledger.recorder.engine.dispose()
    with TestClient(create_app(settings)) as client:
        site = Site(client, settings, tokens, keys, b_event_id=b_event_id)
        held = site.call("officer-a", "POST", "/v1/holds", HOLD)
        assert held.status_code == 201, held.text
        site.a_hold_id = held.json()["hold_id"]
        held = site.call("officer-b", "POST", "/v1/holds", HOLD)
        assert held.status_code == 201, held.text
        site.b_hold_id = held.json()["hold_id"]
        pack = site.call("officer-b", "POST", "/v1/packs", {"stream_prefixes": ["controls/b-only"]})
        assert pack.status_code == 201, pack.text
        site.b_pack_id = pack.json()["pack_id"]
        audit = site.call("auditor-b", "POST", "/v1/audits")
        assert audit.status_code == 201, audit.text
        site.b_audit_id = audit.json()["id"]
        yield site


# --- producer spoofing ------------------------------------------------------------------------------------------


def test_a_publisher_cannot_pass_as_another_producer(site: Site) -> None:
    """Whatever producer a body claims (another key, the ledger's own DORA engine, the Kafka ingest), the entry
    is recorded, signed and found under the publisher key's name only (the single-event case with one claim is
    in test_api_roles.py)."""
    claims = ["officer-a", "publisher-b", "ledger:dora", "kafka:ledger-ingest", "admin-a", "seed"]
    events = [check_result() | {"producer": claim} for claim in claims]
    single = site.call("publisher-a", "POST", "/v1/events", events[0])
    assert single.status_code == 201, single.text
    batch = site.call("publisher-a", "POST", "/v1/events:batch", {"events": events[1:]})
    assert batch.status_code == 201, batch.text
    recorded = [single.json()["entry"]] + [result["entry"] for result in batch.json()["results"]]
    assert len(recorded) == len(claims)
    for entry in recorded:
        assert entry["producer"] == "publisher-a"
        assert json.loads(entry["body"])["producer"] == "publisher-a"  # the signed body says so too
    published = {entry["event_id"] for entry in recorded}
    for claim in claims:
        found = site.client.get("/v1/entries", params={"producer": claim}, headers=site.headers("officer-a"))
        assert found.status_code == 200, found.text
        assert published.isdisjoint(e["event_id"] for e in found.json()["entries"]), claim
    mine = site.client.get("/v1/entries", params={"producer": "publisher-a"}, headers=site.headers("officer-a"))
    assert published <= {e["event_id"] for e in mine.json()["entries"]}


def _ledger_stream_events(hold_id: str) -> list[dict[str, Any]]:
    """Events forged on the streams where the ledger records its own decisions."""
    now = "2026-11-20T10:00:00Z"

    def event(stream: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "stream": stream, "type": event_type, "occurred_at": now, "payload": payload}

    return [
        event("ledger/holds", "legal_hold.released", {"hold_id": hold_id, "actor": "chief officer", "reason": "done"}),
        event(
            "ledger/holds",
            "legal_hold.set",
            {**HOLD, "hold_id": str(uuid.uuid4()), "actor": "chief officer"},
        ),
        event("ledger/keys", "key.rotated", {"reason": "forged"}),
        event("ledger/packs", "pack.exported", {"pack_id": "0" * 32, "pack_sha256": "0" * 64}),
        event("ledger/snapshots/primary", "snapshot.sealed", {"first": 0, "last": 1}),
    ]


def test_a_publisher_cannot_write_where_the_ledger_records_its_own_decisions(site: Site) -> None:
    before = site.fingerprint()
    for forged in _ledger_stream_events(site.a_hold_id):
        body = problem(site.call("publisher-a", "POST", "/v1/events", forged), 403, forged["type"])
        assert "chief officer" not in body["detail"]
        problem(site.call("publisher-a", "POST", "/v1/events:batch", {"events": [check_result(), forged]}), 403)
    assert site.fingerprint() == before
    [hold] = [h for h in load_holds(site.ledger(LOG_A)) if h.hold_id == site.a_hold_id]
    assert hold.active and hold.actor == "officer-a"


def test_no_publisher_key_can_write_the_ledgers_own_streams(site: Site) -> None:
    ledger = Ledger.create(site.settings, LOG_C)
    try:
        store = ApiKeyStore(ledger.recorder.engine)
        _, admin = store.create(Role.ADMIN, [LOG_C], [], "admin-c", utc_now())
        _, officer = store.create(Role.OFFICER, [LOG_C], [], "officer-c", utc_now())
    finally:
        ledger.recorder.engine.dispose()
    held = site.client.post("/v1/holds", json=HOLD, headers={"X-API-Key": officer})
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    size = site.ledger(LOG_C).head().size
    body = {"role": "publisher", "logs": [LOG_C], "stream_prefixes": ["ledger"], "name": "svc-ledger"}
    made = site.client.post("/v1/api-keys", json=body, headers={"X-API-Key": admin})
    if made.status_code == 201:  # the key may exist, as long as it cannot write the ledger's own streams
        publisher = {"X-API-Key": made.json()["token"]}
        for forged in _ledger_stream_events(hold_id):
            response = site.client.post("/v1/events", json=forged, headers=publisher)
            problem(response, 403, forged["type"])
    else:
        assert problem(made, 422)["field"] == "stream_prefixes"
    holds = load_holds(site.ledger(LOG_C))
    assert [(h.hold_id, h.actor, h.active) for h in holds] == [(hold_id, "officer-c", True)]
    assert site.ledger(LOG_C).head().size == size


# --- another log's entries, proofs, packs, audits and holds ------------------------------------------------------


def test_a_key_of_log_a_reaches_nothing_of_log_b(site: Site) -> None:
    """Log B's objects addressed from log A's scope, log B named in the query, and both logs named at once.

    Keys of log B naming log A on every route are in the role matrix (test_api_roles.py); here the ids are
    log B's own, and the pack's ZIP lies in the data directory both logs share.
    """
    assert (site.settings.data_dir / PACK_DIRECTORY / f"{site.b_pack_id}.zip").is_file()
    before = site.fingerprint()
    b_size = site.ledger(LOG_B).head().size
    a_size = site.ledger(LOG_A).head().size
    assert a_size < b_size - 1
    reads = [
        ("officer-a", f"/v1/events/{site.b_event_id}", 404),
        ("auditor-a", f"/v1/events/{site.b_event_id}", 404),
        ("officer-a", f"/v1/packs/{site.b_pack_id}", 404),
        ("auditor-a", f"/v1/audits/{site.b_audit_id}", 404),
        ("officer-a", f"/v1/entries/{b_size - 1}", 404),
        ("auditor-a", f"/v1/checkpoints/{b_size}", 404),
    ]
    for who, path, status in reads:
        body = problem(site.call(who, "GET", path), status, f"{who} {path}")
        assert LOG_B not in json.dumps(body)
    proof = site.call("auditor-a", "GET", f"/v1/proofs/inclusion?seq={b_size - 1}")
    assert 400 <= proof.status_code < 500 and proof.headers["content-type"].startswith(PROBLEM_JSON)
    for who in ("officer-a", "auditor-a"):
        stream = site.call(who, "GET", f"/v1/stream?name={B_STREAM}")
        assert stream.status_code == 200 and stream.json()["entries"] == []
        queried = site.call(who, "GET", f"/v1/entries?stream={B_STREAM}")
        assert queried.status_code == 200 and queried.json()["entries"] == []

    for query in (f"log={LOG_A}&log={LOG_B}", f"log={LOG_B}&log={LOG_A}"):  # a repeated parameter
        for path in ("/v1/entries", "/v1/checkpoint", "/v1/holds"):
            response = site.call("officer-a", "GET", f"{path}?{query}")
            assert response.status_code in (200, 404), (query, path, response.text)
            assert LOG_B not in response.text and site.b_event_id not in response.text
            assert site.b_hold_id not in response.text

    writes: list[tuple[str, str, str, Any]] = [
        ("publisher-a", "POST", f"/v1/events?log={LOG_B}", check_result(stream=B_STREAM)),
        ("publisher-a", "POST", f"/v1/events:batch?log={LOG_B}", {"events": [check_result()]}),
        ("officer-a", "POST", f"/v1/holds?log={LOG_B}", HOLD),
        ("officer-a", "POST", f"/v1/holds/{site.b_hold_id}/release?log={LOG_B}", {"reason": "closed"}),
        ("officer-a", "POST", f"/v1/holds/{site.b_hold_id}/release", {"reason": "closed"}),  # B's hold, in A
        ("officer-a", "POST", f"/v1/packs?log={LOG_B}", {"stream_prefixes": ["controls"]}),
        ("auditor-a", "POST", f"/v1/audits?log={LOG_B}", None),
    ]
    for who, method, path, body in writes:
        problem(site.call(who, method, path, body), 404, f"{who} {method} {path}")
    assert site.fingerprint() == before


# --- revoked keys -------------------------------------------------------------------------------------------------


def _unauthorized(response: httpx.Response, where: str) -> None:
    problem(response, 401, where)
    assert response.headers["WWW-Authenticate"] == "X-API-Key"


def test_a_key_revoked_through_the_api_is_refused_at_once_and_changes_nothing(site: Site) -> None:
    made = site.call(
        "admin-a",
        "POST",
        "/v1/api-keys",
        {"role": "publisher", "logs": [LOG_A], "stream_prefixes": ["controls"], "name": "svc-soon-gone"},
    )
    assert made.status_code == 201, made.text
    publisher, publisher_id = made.json()["token"], made.json()["key"]["key_id"]
    assert site.client.post("/v1/events", json=check_result(), headers={"X-API-Key": publisher}).status_code == 201
    store = ApiKeyStore(make_engine(site.settings.resolved_database_url()))
    try:
        _, admin = store.create(Role.ADMIN, [LOG_A], [], "admin-soon-gone", utc_now())
    finally:
        store.engine.dispose()
    assert site.client.get("/v1/api-keys", headers={"X-API-Key": admin}).status_code == 200  # now in the key cache
    for key_id in (publisher_id, _parts(admin)[0]):
        assert site.call("admin-a", "DELETE", f"/v1/api-keys/{key_id}").status_code == 204

    before = site.fingerprint()
    revoked_publisher, revoked_admin = {"X-API-Key": publisher}, {"X-API-Key": admin}
    _unauthorized(site.client.post("/v1/events", json=check_result(), headers=revoked_publisher), "append")
    batch = {"events": [check_result(), check_result()]}
    _unauthorized(site.client.post("/v1/events:batch", json=batch, headers=revoked_publisher), "batch")
    new_key = {"role": "admin", "logs": [LOG_A], "name": "revived"}
    _unauthorized(site.client.post("/v1/api-keys", json=new_key, headers=revoked_admin), "create key")
    officer_id = site.keys["officer-a"].key_id
    _unauthorized(site.client.delete(f"/v1/api-keys/{officer_id}", headers=revoked_admin), "revoke")
    _unauthorized(site.client.get("/v1/api-keys", headers=revoked_admin), "list keys")
    assert site.fingerprint() == before
    assert site.call("officer-a", "GET", "/v1/checkpoint").status_code == 200


def test_a_key_revoked_by_another_process_stops_within_the_cache_time(
    site: Site, drill_database: DrillDatabase
) -> None:
    """``ledger api-keys revoke`` in its own process; the server's key cache keeps its real lifetime."""
    store = ApiKeyStore(make_engine(site.settings.resolved_database_url()))
    try:
        key, token = store.create(Role.PUBLISHER, [LOG_A], ["controls"], "svc-elsewhere", utc_now())
    finally:
        store.engine.dispose()
    headers = {"X-API-Key": token}
    assert site.client.post("/v1/events", json=check_result(), headers=headers).status_code == 201
    # A publisher may not read checkpoints: 403 while the key is valid, 401 once it is revoked.
    problem(site.client.get("/v1/checkpoint", headers=headers), 403)
    env = _cli_env(LEDGER_DATA_DIR=str(site.settings.data_dir), LEDGER_DATABASE_URL=drill_database.url)
    revoked = _cli("api-keys", "revoke", key.key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert drill_database.password not in revoked.stdout + revoked.stderr
    done = time.monotonic()
    while (status := site.client.get("/v1/checkpoint", headers=headers).status_code) == 403:
        assert time.monotonic() - done < REVOCATION_SECONDS + 0.5, "the revoked key still works"
        time.sleep(0.05)
    assert status == 401
    before = site.fingerprint()
    _unauthorized(site.client.post("/v1/events", json=check_result(), headers=headers), "append")
    _unauthorized(site.client.post("/v1/events:batch", json={"events": [check_result()]}, headers=headers), "batch")
    assert site.fingerprint() == before


# --- roles reaching for what they may not do -------------------------------------------------------------------


def test_no_role_escalates_and_refusals_change_nothing(site: Site) -> None:
    """Statuses per route and role are in the role matrix; here every refused write is shown to change nothing."""
    pack = {"stream_prefixes": ["controls"]}
    release = {"reason": "closed"}
    escalated = {"role": "admin", "logs": [LOG_A], "name": "escalated"}
    officer_id, publisher_id = site.keys["officer-a"].key_id, site.keys["publisher-a"].key_id
    attempts: list[tuple[str, str, str, Any, int]] = [
        ("publisher-a", "POST", "/v1/api-keys", escalated, 403),
        ("publisher-a", "DELETE", f"/v1/api-keys/{officer_id}", None, 403),
        ("publisher-a", "POST", "/v1/packs", pack, 403),
        ("publisher-a", "POST", "/v1/audits", None, 403),
        ("publisher-a", "POST", "/v1/holds", HOLD, 403),
        ("publisher-a", "POST", f"/v1/holds/{site.a_hold_id}/release", release, 403),
        ("auditor-a", "POST", "/v1/events", check_result(), 403),
        ("auditor-a", "POST", "/v1/events:batch", {"events": [check_result()]}, 403),
        ("auditor-a", "POST", "/v1/packs", pack, 403),
        ("auditor-a", "POST", "/v1/holds", HOLD, 403),
        ("auditor-a", "POST", f"/v1/holds/{site.a_hold_id}/release", release, 403),
        ("auditor-a", "POST", "/v1/api-keys", escalated, 403),
        ("officer-a", "POST", "/v1/events", check_result(), 403),
        ("officer-a", "POST", "/v1/api-keys", escalated, 403),
        ("officer-a", "DELETE", f"/v1/api-keys/{publisher_id}", None, 403),
        ("officer-a", "POST", "/v1/audits", None, 403),
        ("admin-a", "POST", "/v1/events", check_result(), 403),
        ("admin-a", "POST", "/v1/packs", pack, 403),
        ("admin-a", "POST", "/v1/holds", HOLD, 403),
        ("admin-a", "POST", "/v1/audits", None, 403),
        ("admin-a", "GET", "/v1/entries/0", None, 403),
        ("admin-a", "POST", "/v1/api-keys", escalated | {"logs": [LOG_A, LOG_B]}, 403),
        ("admin-a", "DELETE", f"/v1/api-keys/{site.keys['admin-b'].key_id}", None, 404),
        ("publisher-b", "POST", f"/v1/events?log={LOG_A}", check_result(), 404),
    ]
    before = site.fingerprint()
    for who, method, path, body, status in attempts:
        refused = problem(site.call(who, method, path, body), status, f"{who} {method} {path}")
        assert "escalated" not in refused["detail"]
    assert site.fingerprint() == before
    assert site.call("officer-a", "GET", "/v1/checkpoint").status_code == 200  # the keys named above still work
    assert site.call("publisher-a", "POST", "/v1/events", check_result()).status_code == 201


# --- secrets and values never reach the logs ----------------------------------------------------------------------


@dataclass
class LogDrill:
    """Log L with a key per role, and every value that must never reach a log."""

    settings: Settings
    database: DrillDatabase
    tokens: dict[Role, str]
    payload: str = field(default_factory=lambda: marker("payloadvalue"))
    refused: str = field(default_factory=lambda: marker("refusedvalue"))
    subject: str = field(default_factory=lambda: marker("subjectid"))
    wrong_token: str = field(default_factory=lambda: marker("wrongtoken"))

    def forbidden(self) -> dict[str, str]:
        """Name -> value of everything that must stay out of logs."""
        values = {
            "payload value": self.payload,
            "refused value": self.refused,
            "subject identifier": self.subject,
            "wrong token": self.wrong_token,
            "database password": self.database.password,
        }
        for role, token in self.tokens.items():
            values[f"{role.value} token"] = token
            values[f"{role.value} secret"] = _parts(token)[1]
        keys = self.settings.key_dir
        for number, path in enumerate(sorted(keys.glob("*.key"))):
            values[f"private key {number}"] = _private_key_material(path)
        values["subject secret"] = (keys / "subject.secret").read_text().strip()
        return values

    def headers(self, role: Role) -> dict[str, str]:
        return {"X-API-Key": self.tokens[role]}

    def event(self, value: str | None = None, **changes: Any) -> dict[str, Any]:
        """A check result carrying ``value`` in every free-text place and the subject identifier."""
        value = value or self.payload
        event = check_result()
        event["payload"] |= {"check_id": f"chk-{value}", "summary": f"owner {value}", "details": {"owner": value}}
        event["payload"]["framework_refs"] = [f"REF {value}"]
        event["subjects"] = [f"employee:{self.subject}"]
        for name, changed in changes.items():
            if name in event:
                event[name] = changed
            else:
                event["payload"][name] = changed
        return event


@pytest.fixture(scope="module")
def log_drill(drill_database: DrillDatabase, tmp_path_factory: pytest.TempPathFactory) -> LogDrill:
    settings = drill_settings(tmp_path_factory.mktemp("logs"), drill_database, api_max_body_bytes=16 * 1024)
    ledger = Ledger.create(settings, LOG_L)
    try:
        store = ApiKeyStore(ledger.recorder.engine)
        tokens = {
            role: store.create(role, [LOG_L], ROLE_PREFIXES.get(role, []), f"{role.value}-l", utc_now())[1]
            for role in Role
        }
    finally:
        ledger.recorder.engine.dispose()
    return LogDrill(settings, drill_database, tokens)


def _exercise(drill: LogDrill, client: httpx.Client | TestClient) -> list[httpx.Response]:
    """Appends that succeed and fail, failed authentication, reads, an audit and a pack; returns the answers."""
    publisher, officer, auditor = (drill.headers(r) for r in (Role.PUBLISHER, Role.OFFICER, Role.AUDITOR))
    refused = drill.refused
    publisher_id = _parts(drill.tokens[Role.PUBLISHER])[0]
    stored = drill.event()
    sent: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("POST", "/v1/events", publisher, stored, 201),
        ("POST", "/v1/events", publisher, stored, 200),  # again: the stored entry
        ("POST", "/v1/events:batch", publisher, {"events": [drill.event(), drill.event()]}, 201),
        ("POST", "/v1/events", publisher, drill.event(refused, status=refused), 422),
        ("POST", "/v1/events", publisher, drill.event(refused, details={"owner": refused, "ratio": 1.5}), 422),
        ("POST", "/v1/events", publisher, drill.event(refused, unknown_field=refused), 422),
        ("POST", "/v1/events", publisher, drill.event(refused, subjects=[f" {drill.subject}"]), 422),
        ("POST", "/v1/events", publisher, drill.event(refused, occurred_at=refused), 422),
        ("POST", "/v1/events:batch", publisher, {"events": [drill.event(), drill.event(refused, status=refused)]}, 422),
        ("POST", "/v1/events", publisher, drill.event(refused, stream=f"approvals/{refused}"), 403),
        ("POST", "/v1/events", publisher, drill.event(refused) | {"id": stored["id"]}, 409),
        ("POST", "/v1/events", publisher, drill.event(refused, summary=refused * 900), 413),
        ("POST", "/v1/events", {"X-API-Key": f"lk_{publisher_id}_{drill.wrong_token}"}, drill.event(refused), 401),
        ("POST", "/v1/events", {"X-API-Key": f"lk_0123456789abcdef_{drill.wrong_token}"}, drill.event(refused), 401),
        ("POST", "/v1/events", {"X-API-Key": drill.wrong_token}, drill.event(refused), 401),
        ("GET", "/v1/entries/0", officer, None, 200),
        ("GET", "/v1/entries", officer, None, 200),
        ("POST", "/v1/audits", auditor, None, 201),
        ("POST", "/v1/packs", officer, {"stream_prefixes": ["controls"]}, 201),
    ]
    answers = []
    for method, path, headers, body, status in sent:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (path, status, response.text[:300])
        answers.append(response)
    broken = b'{"id": "' + refused.encode() + b'", "payload": {"owner": "' + refused.encode()
    response = client.post("/v1/events", content=broken, headers=publisher | {"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    answers.append(response)
    secret = (drill.settings.key_dir / "subject.secret").read_text().strip()
    ref = subject_ref(bytes.fromhex(secret), f"employee:{drill.subject}")
    found = client.get("/v1/entries", params={"subject": ref}, headers=officer)
    assert found.status_code == 200 and stored["id"] in {e["event_id"] for e in found.json()["entries"]}
    assert found.json()["entries"][0]["payload"]["summary"] == f"owner {drill.payload}"  # the values were stored
    [audit] = [r.json() for r in answers if r.request.url.path == "/v1/audits"]
    assert audit["status"] == "passed" and audit["report"]["ok"], audit
    return answers


def _record_text(records: list[logging.LogRecord]) -> str:
    """Every way a record can be rendered: plain (with exception text), JSON, its arguments and attributes."""
    plain, as_json = logging.Formatter("%(name)s %(levelname)s %(message)s"), JsonFormatter()
    parts = []
    for record in records:
        parts += [plain.format(record), as_json.format(record), repr(record.args), repr(record.__dict__)]
    return "\n".join(parts)


def _assert_absent(text: str, drill: LogDrill, where: str) -> None:
    for name, value in drill.forbidden().items():
        assert value not in text, f"{where}: the {name} appears"


def test_secrets_and_values_never_reach_the_logs_in_process(
    log_drill: LogDrill, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("ledger", "api", "fastapi", "starlette", "uvicorn", "uvicorn.error", "psycopg", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    canary = marker("canary")
    app = create_app(log_drill.settings)

    @app.post("/v1/drill-canary")
    async def log_the_body(request: Request) -> dict[str, str]:
        logging.getLogger("ledger.api").debug("request body %s", await request.body())  # what must never happen
        return {}

    with TestClient(app) as client:
        answers = _exercise(log_drill, client)
        assert client.post("/v1/drill-canary", json={"owner": canary}).status_code == 200
    for response in answers:
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
            for value in (log_drill.refused, log_drill.payload, log_drill.subject, log_drill.wrong_token):
                assert value not in response.text  # nor in the answers

    records = list(caplog.records)
    text = _record_text(records)
    assert canary in text  # the capture holds what the api logs, at DEBUG, body and all
    access = [
        (getattr(r, "method", None), getattr(r, "route", None), getattr(r, "status", None))
        for r in records
        if r.name == "ledger.api.access"
    ]
    for status in (201, 200, 422, 403, 409, 413, 401):
        assert ("POST", "/v1/events", status) in access, status
    assert {("POST", "/v1/audits", 201), ("POST", "/v1/packs", 201), ("GET", "/v1/entries/{seq}", 200)} <= set(access)
    _assert_absent(text, log_drill, "in-process log")


def test_ledger_serve_at_debug_writes_no_secret_to_stderr(log_drill: LogDrill, tmp_path: Path) -> None:
    port = services.free_port()
    stderr_path, stdout_path = tmp_path / "serve.stderr", tmp_path / "serve.stdout"
    env = _cli_env(LEDGER_DATA_DIR=str(log_drill.settings.data_dir), LEDGER_DATABASE_URL=log_drill.database.url)
    env["LEDGER_API_MAX_BODY_BYTES"] = str(log_drill.settings.api_max_body_bytes)
    env["LEDGER_LOG_ORIGIN"] = LOG_L  # the log the background sealer works on
    argv = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--log-level", "debug"]
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        server = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, stderr_path.read_text()
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "ledger serve did not answer"
                time.sleep(0.1)
            _exercise(log_drill, client)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = stderr_path.read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line["logger"].startswith("uvicorn") for line in lines), text[:2000]  # uvicorn's records too
    access = {(line.get("method"), line.get("route"), line.get("status")) for line in lines}
    assert {("POST", "/v1/events", 201), ("POST", "/v1/events", 422), ("POST", "/v1/events", 401)} <= access
    assert ("POST", "/v1/audits", 201) in access
    _assert_absent(text + stdout_path.read_text(errors="replace"), log_drill, "ledger serve output")


def test_cli_errors_keep_values_and_the_database_password_off_stderr(log_drill: LogDrill) -> None:
    env = _cli_env(
        LEDGER_DATA_DIR=str(log_drill.settings.data_dir),
        LEDGER_DATABASE_URL=log_drill.database.url,
        LEDGER_LOG_ORIGIN=LOG_L,
    )
    appended = _cli("append", "-", env=env, stdin=json.dumps(log_drill.event()))
    assert appended.returncode == 0, appended.stderr
    bad = log_drill.event(log_drill.refused, status=log_drill.refused)
    refused = _cli("append", "-", env=env, stdin=json.dumps(bad))
    assert refused.returncode == 2 and "status" in refused.stderr, refused.stderr
    lines = json.dumps([bad, log_drill.event(log_drill.refused) | {"id": "not-a-uuid"}])
    batch = _cli("append", "-", env=env, stdin=lines)
    assert batch.returncode == 2, batch.stderr
    verified = _cli("verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    dead = make_url(log_drill.database.url).set(host="127.0.0.1", port=services.free_port())
    unreachable = _cli("events", env=env | {"LEDGER_DATABASE_URL": dead.render_as_string(hide_password=False)})
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
    for run in (appended, refused, batch, verified, unreachable):
        assert "Traceback" not in run.stderr
        _assert_absent(run.stderr, log_drill, f"stderr of {run.args}")
    for run in (appended, refused, batch, verified, unreachable):  # stdout shows seqs and hashes, never values
        _assert_absent(run.stdout, log_drill, f"stdout of {run.args}")


# --- key files ----------------------------------------------------------------------------------------------------


def test_key_files_are_0600_in_a_private_directory_even_under_umask_000(tmp_path: Path) -> None:
    """``ledger init``, ``ledger keys rotate`` and ``ledger witness keygen`` with umask 000; the default umask is
    covered by test_keys.py, test_cli.py and test_witness.py."""
    data = tmp_path / "data"
    env = _cli_env(LEDGER_DATA_DIR=str(data))
    for args in (
        ("init", "--origin", "keys.drill.bank.example/ledger"),
        ("keys", "rotate", "--reason", "drill"),
        ("witness", "keygen", "--name", "witness.drill.example/w", "--out", str(tmp_path / "witness.key")),
    ):
        done = _cli(*args, env=env, umask=0o000)
        assert done.returncode == 0, (args, done.stderr)

    keys = data / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    secret_files = [*sorted(keys.glob("*.key")), keys / "subject.secret", tmp_path / "witness.key"]
    assert len(secret_files) == 4  # two signing keys (initial and rotated), the subject secret, the witness key
    for path in secret_files:
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode), path
        assert stat.S_IMODE(info.st_mode) == 0o600, (path, oct(info.st_mode))
        assert info.st_uid == os.getuid(), path
        assert not stat.S_IMODE(path.parent.stat().st_mode) & stat.S_IWOTH, path.parent

    # The embedded database (with SQLite's -wal and -shm beside it) and the data directory are owner-only too.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    database_files = sorted(data.glob("ledger.db*"))
    assert data / "ledger.db" in database_files, database_files
    for path in database_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))

    # What the ledger writes from its entries is owner-only as well: an evidence pack (it holds payloads) and the
    # local snapshot store, whose directories others could otherwise use to replace sealed objects.
    event = check_result()
    pack = tmp_path / "exports" / "pack.zip"
    pack.parent.mkdir()
    for args, stdin in (
        (("append", "-"), json.dumps(event)),
        (("seal", "--all"), None),
        (("pack", "export", "--out", str(pack), "--stream", "controls/iam-01/host-001"), None),
    ):
        done = _cli(*args, env=env, stdin=stdin, umask=0o000)
        assert done.returncode == 0, (args, done.stderr)
    assert stat.S_IMODE(pack.stat().st_mode) == 0o600
    snapshots = data / "snapshots"
    sealed = [path for path in snapshots.rglob("*") if path.is_file()]
    assert sealed, "nothing was sealed"
    for path in [snapshots, *snapshots.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    secret_files.append(pack)  # searched below like the key files: the pack is not expected to hold key material

    # The private key material is in those files and nowhere else under the data directory.
    material = [_private_key_material(path).encode() for path in secret_files[:2]]
    material.append((keys / "subject.secret").read_text().strip().encode())
    for path in data.rglob("*"):
        if path.is_file() and path not in secret_files:
            content = path.read_bytes()
            assert b"PRIVATE+KEY" not in content, path
            for value in material:
                assert value not in content, path
