"""The proof, audit and API key routes of the HTTP API, and the ``ledger serve`` and ``ledger api-keys`` commands.

Everything runs on the embedded store (SQLite in a temporary data directory) through the real application:
``TestClient`` is used as a context manager, so the lifespan opens the store as it does in production.
Proofs and checkpoints are checked the way an outside verifier would: signed notes with the verifier keys that
``GET /v1/public-keys`` publishes, Merkle proofs against the roots of those signed checkpoints.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import merkle
from ledger.access import ApiKey, Role
from ledger.notes import Checkpoint, open_note, parse_checkpoint, parse_verifier_key
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore

ORIGIN = "api.bank.example/evidence"
OTHER = "other.bank.example/evidence"
ENTRIES = 7
PROBLEM_JSON = "application/problem+json"


def check_result(number: int = 0, stream: str = "controls/iam-01/host-001") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": stream,
        "type": "check.result",
        "occurred_at": "2026-11-20T10:00:00Z",
        "payload": {
            "control_id": "IAM-01",
            "check_id": f"c{number}",
            "status": "pass",
            "framework_refs": [],
            "evidence": [],
            "observed_at": "2026-11-20T10:00:00Z",
        },
    }


def embedded_settings(data_dir: Path) -> Settings:
    """Settings for the embedded store in ``data_dir``, whatever ``LEDGER_*`` variables the shell has."""
    return Settings(data_dir=data_dir, database_url=None, log_origin=None, signing_key=None, subject_secret=None)


def new_key(
    settings: Settings, role: Role, logs: list[str], prefixes: list[str] | None = None, name: str | None = None
) -> tuple[ApiKey, str]:
    store = ApiKeyStore(Ledger.open_recorder(settings).engine)
    try:
        return store.create(role, logs, prefixes or [], name or f"{role.value}-test", utc_now())
    finally:
        store.engine.dispose()


@dataclass
class Api:
    """The app over one data directory, one key per role for ``ORIGIN`` (publisher: under ``controls``)."""

    client: TestClient
    settings: Settings
    ledger: Ledger
    tokens: dict[Role, str]
    keys: dict[Role, ApiKey]

    def call(self, method: str, path: str, token: str | Role | None = Role.AUDITOR, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["X-API-Key"] = self.tokens[token] if isinstance(token, Role) else token
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, path: str, token: str | Role | None = Role.AUDITOR, **params: Any) -> httpx.Response:
        return self.call("GET", path, token, params=params or None)  # None keeps a query written in the path

    def checkpoint(self, size: int | None = None, token: str | Role = Role.AUDITOR) -> Checkpoint:
        """A signed checkpoint from the API, opened with the active key the API publishes."""
        response = self.get("/v1/checkpoint" if size is None else f"/v1/checkpoints/{size}", token)
        assert response.status_code == 200, response.text
        verifier = parse_verifier_key(self.get("/v1/public-keys", token).json()[0]["verifier_key"])
        return parse_checkpoint(open_note(response.text, [verifier]).text)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = embedded_settings(tmp_path / "data")
    ledger = Ledger.create(settings, ORIGIN)
    for number in range(ENTRIES):
        ledger.append(check_result(number), producer="svc")
    created = {
        role: new_key(settings, role, [ORIGIN], ["controls"] if role is Role.PUBLISHER else None) for role in Role
    }
    with TestClient(create_app(settings)) as client:
        yield Api(
            client,
            settings,
            ledger,
            {role: token for role, (_, token) in created.items()},
            {role: key for role, (key, _) in created.items()},
        )
    ledger.recorder.engine.dispose()


# --- checkpoints -----------------------------------------------------------------------------------------


def test_latest_checkpoint_is_the_exact_signed_note_and_verifies_with_the_published_key(api: Api) -> None:
    response = api.get("/v1/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == api.ledger.checkpoint()

    keys = api.get("/v1/public-keys").json()
    opened = open_note(response.text, [parse_verifier_key(keys[0]["verifier_key"])])
    assert len(opened.verified) == 1
    checkpoint = parse_checkpoint(opened.text)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, ENTRIES)
    assert checkpoint.root == api.ledger.root(ENTRIES)


def test_checkpoint_of_an_earlier_size_and_404_beyond_the_log(api: Api) -> None:
    for size in (0, 1, 3, ENTRIES):
        checkpoint = api.checkpoint(size)
        assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, size, api.ledger.root(size))
    assert api.get(f"/v1/checkpoints/{ENTRIES}").text == api.get("/v1/checkpoint").text

    body = problem(api.get(f"/v1/checkpoints/{ENTRIES + 1}"), 404)
    assert body["type"].endswith("/not-found")
    problem(api.get("/v1/checkpoints/-1"), 422)
    problem(api.get("/v1/checkpoints/two"), 422)


def test_the_latest_checkpoint_follows_appends(api: Api) -> None:
    before = api.checkpoint()
    api.ledger.append(check_result(99), producer="svc")
    after = api.checkpoint()
    assert after.size == before.size + 1
    proof = api.get("/v1/proofs/consistency", from_size=before.size, to_size=after.size).json()
    merkle.verify_consistency(
        before.size, after.size, before.root, after.root, [bytes.fromhex(h) for h in proof["hashes"]]
    )


# --- Merkle proofs ---------------------------------------------------------------------------------------


def test_inclusion_proofs_verify_against_signed_checkpoint_roots(api: Api) -> None:
    latest = api.checkpoint()
    for seq in range(ENTRIES):
        proof = api.get("/v1/proofs/inclusion", seq=seq).json()
        assert (proof["index"], proof["tree_size"]) == (seq, latest.size)
        leaf = bytes.fromhex(proof["leaf_hash"])
        assert leaf == merkle.leaf_hash(api.ledger.entry(seq).body)
        merkle.verify_inclusion(leaf, seq, latest.size, [bytes.fromhex(h) for h in proof["hashes"]], latest.root)

    earlier = api.checkpoint(4)
    proof = api.get("/v1/proofs/inclusion", seq=2, size=4).json()
    assert proof["tree_size"] == 4
    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
    merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 2, 4, hashes, earlier.root)


def test_inclusion_proof_rejects_seqs_and_sizes_outside_the_log(api: Api) -> None:
    assert problem(api.get("/v1/proofs/inclusion", seq=ENTRIES), 422)["field"] == "seq"
    assert problem(api.get("/v1/proofs/inclusion", seq=3, size=3), 422)["field"] == "seq"
    assert problem(api.get("/v1/proofs/inclusion", seq=0, size=ENTRIES + 1), 422)["field"] == "size"
    problem(api.get("/v1/proofs/inclusion", seq=-1), 422)
    problem(api.get("/v1/proofs/inclusion", seq=0, size=0), 422)
    problem(api.get("/v1/proofs/inclusion"), 422)


def test_consistency_proofs_verify_between_signed_checkpoints(api: Api) -> None:
    latest = api.checkpoint()
    for old_size in range(1, ENTRIES + 1):
        old = api.checkpoint(old_size)
        proof = api.get("/v1/proofs/consistency", from_size=old_size).json()
        assert (proof["from_size"], proof["to_size"]) == (old_size, latest.size)
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        merkle.verify_consistency(old_size, latest.size, old.root, latest.root, hashes)

    two, five = api.checkpoint(2), api.checkpoint(5)
    proof = api.get("/v1/proofs/consistency", from_size=2, to_size=5).json()
    merkle.verify_consistency(2, 5, two.root, five.root, [bytes.fromhex(h) for h in proof["hashes"]])


def test_consistency_proof_rejects_sizes_outside_the_log(api: Api) -> None:
    assert problem(api.get("/v1/proofs/consistency", from_size=5, to_size=3), 422)["field"] == "from_size"
    assert problem(api.get("/v1/proofs/consistency", from_size=1, to_size=ENTRIES + 1), 422)["field"] == "size"
    problem(api.get("/v1/proofs/consistency", from_size=0), 422)
    problem(api.get("/v1/proofs/consistency"), 422)


# --- public keys -----------------------------------------------------------------------------------------


def test_public_keys_list_the_active_key_first_with_validity_periods(api: Api) -> None:
    [only] = api.get("/v1/public-keys").json()
    assert only["active"] is True
    assert (only["valid_from_seq"], only["valid_until_seq"], only["valid_until"]) == (0, None, None)
    before_rotation = api.get("/v1/checkpoint").text

    new = api.ledger.rotate_key("scheduled")
    api.ledger.append(check_result(50), producer="svc")
    keys = api.get("/v1/public-keys", Role.OFFICER).json()
    assert [k["key_id"] for k in keys] == [new.key_id, only["key_id"]]
    active, old = keys
    assert active["active"] is True and active["valid_until_seq"] is None
    assert active["valid_from_seq"] == new.valid_from_seq
    assert old["active"] is False
    assert old["valid_until_seq"] == new.valid_from_seq and old["valid_until"] is not None
    assert old["valid_from"] == only["valid_from"]

    old_verifier, new_verifier = parse_verifier_key(old["verifier_key"]), parse_verifier_key(active["verifier_key"])
    open_note(before_rotation, [old_verifier])
    latest = api.get("/v1/checkpoint").text
    open_note(latest, [new_verifier])
    with pytest.raises(Exception, match="known key"):
        open_note(latest, [old_verifier])


# --- who may ask -----------------------------------------------------------------------------------------

PROOF_PATHS = [
    "/v1/checkpoint",
    "/v1/checkpoints/1",
    "/v1/proofs/inclusion?seq=0",
    "/v1/proofs/consistency?from_size=1",
    "/v1/public-keys",
]


@pytest.mark.parametrize("path", PROOF_PATHS)
def test_proof_routes_need_the_proofs_permission(api: Api, path: str) -> None:
    for role in (Role.OFFICER, Role.AUDITOR):
        assert api.get(path, role).status_code == 200, (role, path)
    for role in (Role.PUBLISHER, Role.ADMIN):
        assert problem(api.get(path, role), 403)["type"].endswith("/forbidden")
    response = api.get(path, None)
    problem(response, 401)
    assert response.headers["www-authenticate"] == "X-API-Key"
    problem(api.get(path, "lk_0123456789abcdef_not-a-real-secret"), 401)


def test_a_log_outside_the_key_is_not_found_like_a_log_that_does_not_exist(api: Api) -> None:
    Ledger.create(api.settings, OTHER).recorder.engine.dispose()
    for log in (OTHER, "missing.example/log"):
        body = problem(api.get("/v1/checkpoint", log=log), 404)
        assert body["detail"] == "no such log"
        problem(api.call("POST", "/v1/audits", params={"log": log}), 404)

    _, both = new_key(api.settings, Role.AUDITOR, [ORIGIN, OTHER])
    assert problem(api.get("/v1/checkpoint", both), 400)["type"].endswith("/log-required")
    other = api.get("/v1/checkpoint", both, log=OTHER)
    assert other.status_code == 200 and other.text.startswith(OTHER + "\n0\n")
    assert api.get("/v1/checkpoint", both, log=ORIGIN).text == api.get("/v1/checkpoint").text


def test_appends_address_the_log_as_every_other_route_does(api: Api) -> None:
    """The append routes resolve key, role and log in one call of their own: the same answers as elsewhere."""
    Ledger.create(api.settings, OTHER).recorder.engine.dispose()
    _, both = new_key(api.settings, Role.PUBLISHER, [ORIGIN, OTHER], ["controls/"])
    _, reader = new_key(api.settings, Role.AUDITOR, [ORIGIN])
    origin_before = api.get("/v1/checkpoint").text
    batch = {"events": [check_result(7)]}
    for path, body in (("/v1/events", check_result(6)), ("/v1/events:batch", batch)):
        assert problem(api.call("POST", path, both, json=body), 400)["type"].endswith("/log-required")
        assert (
            problem(api.call("POST", path, json=body, params={"log": "missing.example/log"}, token=both), 404)["detail"]
            == "no such log"
        )
        problem(api.call("POST", path, reader, json=body), 403)
        problem(api.call("POST", path, None, json=body), 401)
        problem(api.call("POST", path, both, json=body, params={"log": "x" * 256}), 422)
        problem(api.call("POST", path, both, json=body, params={"log": OTHER, "lgo": OTHER}), 422)
    event = check_result(6)
    made = api.call("POST", "/v1/events", both, json=event, params={"log": OTHER})
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/v1/entries/0"
    assert made.json()["created"] is True and made.json()["entry"]["seq"] == 0
    again = api.call("POST", "/v1/events", both, json=event, params={"log": OTHER})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["entry"] == made.json()["entry"]
    assert api.call("POST", "/v1/events:batch", both, json=batch, params={"log": OTHER}).status_code == 201
    _, auditor = new_key(api.settings, Role.AUDITOR, [ORIGIN, OTHER])
    assert api.get("/v1/checkpoint", auditor, log=OTHER).text.startswith(OTHER + "\n2\n")
    assert api.get("/v1/checkpoint", auditor, log=ORIGIN).text == origin_before  # nothing went astray


# --- audits ----------------------------------------------------------------------------------------------


def test_an_audit_runs_now_is_kept_and_can_be_read_again(api: Api) -> None:
    response = api.call("POST", "/v1/audits")
    assert response.status_code == 201, response.text
    run = response.json()
    assert response.headers["location"] == f"/v1/audits/{run['id']}"
    assert run["status"] == "passed"
    assert run["requested_by"] == api.keys[Role.AUDITOR].key_id
    assert run["started_at"] <= run["finished_at"]
    report = run["report"]
    assert report["ok"] is True and report["findings"] == []
    assert (report["origin"], report["entries_checked"]) == (ORIGIN, ENTRIES)
    assert report["root"] == api.ledger.root(ENTRIES).hex()

    assert api.get(response.headers["location"]).json() == run

    second = api.call("POST", "/v1/audits").json()
    runs = api.get("/v1/audits").json()
    assert [r["id"] for r in runs] == [second["id"], run["id"]]
    assert runs[1] == run
    assert [r["id"] for r in api.get("/v1/audits", limit=1).json()] == [second["id"]]


def test_audits_need_the_audit_permission(api: Api) -> None:
    run_id = api.call("POST", "/v1/audits").json()["id"]
    for role in (Role.OFFICER, Role.PUBLISHER, Role.ADMIN):
        problem(api.call("POST", "/v1/audits", role), 403)
        problem(api.get("/v1/audits", role), 403)
        problem(api.get(f"/v1/audits/{run_id}", role), 403)
    problem(api.call("POST", "/v1/audits", None), 401)
    assert len(api.get("/v1/audits").json()) == 1


def test_an_audit_run_of_another_log_is_not_found(api: Api) -> None:
    Ledger.create(api.settings, OTHER).recorder.engine.dispose()
    _, both = new_key(api.settings, Role.AUDITOR, [ORIGIN, OTHER])
    created = api.call("POST", "/v1/audits", both, params={"log": OTHER})
    assert created.status_code == 201
    run = created.json()
    assert run["report"]["origin"] == OTHER and run["report"]["entries_checked"] == 0

    assert api.get(f"/v1/audits/{run['id']}", both, log=OTHER).json() == run
    assert problem(api.get(f"/v1/audits/{run['id']}", both, log=ORIGIN), 404)["detail"] == "no such audit run"
    problem(api.get(f"/v1/audits/{run['id']}"), 404)  # the ORIGIN-only auditor
    assert api.get("/v1/audits").json() == []
    problem(api.get(f"/v1/audits/{uuid.uuid4()}"), 404)


def _tamper_payload(database: Path, seq: int) -> None:
    """What an attacker with the file can do: drop the append-only triggers, then change a payload byte."""
    connection = sqlite3.connect(database)
    try:
        with connection:
            triggers = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
            assert triggers
            for name in triggers:
                connection.execute(f'DROP TRIGGER "{name}"')
            (payload,) = connection.execute("SELECT payload FROM payloads WHERE seq = ?", (seq,)).fetchone()
            tampered = bytearray(payload)
            position = bytes(payload).index(b'"pass"') + 1
            tampered[position] ^= 0x01  # "pass" becomes "qass": still JSON, no longer the signed digest
            connection.execute("UPDATE payloads SET payload = ? WHERE seq = ?", (bytes(tampered), seq))
    finally:
        connection.close()


def test_an_audit_after_tampering_fails_and_names_the_seq(api: Api) -> None:
    assert api.call("POST", "/v1/audits").json()["status"] == "passed"
    _tamper_payload(api.settings.data_dir / "ledger.db", seq=4)

    response = api.call("POST", "/v1/audits")
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "failed"
    assert run["report"]["ok"] is False
    findings = run["report"]["findings"]
    assert findings and {f["seq"] for f in findings} == {4}, findings
    assert all(f["code"] and f["message"] for f in findings)

    stored = api.get(f"/v1/audits/{run['id']}").json()
    assert stored == run
    assert [r["status"] for r in api.get("/v1/audits").json()] == ["failed", "passed"]

    metrics = api.get("/metrics", Role.ADMIN).text
    assert f'ledger_audits_total{{log="{ORIGIN}",result="ok"}} 1.0' in metrics
    assert f'ledger_audits_total{{log="{ORIGIN}",result="failed"}} 1.0' in metrics
    assert f'ledger_audit_findings_total{{log="{ORIGIN}"}} {float(len(findings))}' in metrics


def test_an_audit_that_cannot_finish_answers_the_error_and_is_kept_as_error(api: Api) -> None:
    connection = sqlite3.connect(api.settings.data_dir / "ledger.db")
    with connection:
        connection.execute("UPDATE log_keys SET verifier_key = 'not a key'")
    connection.close()

    body = problem(api.call("POST", "/v1/audits"), 409)
    assert body["type"].endswith("/integrity") and "does not parse" in body["detail"]
    [run] = api.get("/v1/audits").json()
    assert run["status"] == "error" and run["finished_at"] is not None
    assert run["report"]["error"] == "IntegrityError" and "does not parse" in run["report"]["message"]
    assert api.get(f"/v1/audits/{run['id']}").json() == run


# --- API keys --------------------------------------------------------------------------------------------


def test_key_create_list_revoke_flow(api: Api) -> None:
    body = {"role": "officer", "logs": [ORIGIN], "name": "officer.jane@bank.example"}
    response = api.call("POST", "/v1/api-keys", Role.ADMIN, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    token, key = created["token"], created["key"]
    assert token.startswith(f"lk_{key['key_id']}_")
    assert key == {
        "key_id": key["key_id"],
        "role": "officer",
        "logs": [ORIGIN],
        "stream_prefixes": [],
        "name": "officer.jane@bank.example",
        "created_at": key["created_at"],
        "revoked_at": None,
    }
    assert api.get("/v1/checkpoint", token).status_code == 200

    listing = api.get("/v1/api-keys", Role.ADMIN)
    assert listing.status_code == 200
    assert key in listing.json()
    assert {k["key_id"] for k in listing.json()} == {k.key_id for k in api.keys.values()} | {key["key_id"]}
    secret = token.split("_", 2)[2]
    assert secret not in listing.text and "token" not in listing.text and "hash" not in listing.text

    revoked = api.call("DELETE", f"/v1/api-keys/{key['key_id']}", Role.ADMIN)
    assert revoked.status_code == 204 and revoked.content == b""
    problem(api.get("/v1/checkpoint", token), 401)  # at once: this process forgot the cached key
    [after] = [k for k in api.get("/v1/api-keys", Role.ADMIN).json() if k["key_id"] == key["key_id"]]
    assert after["revoked_at"] is not None

    assert api.call("DELETE", f"/v1/api-keys/{key['key_id']}", Role.ADMIN).status_code == 204  # idempotent
    problem(api.call("DELETE", "/v1/api-keys/0123456789abcdef", Role.ADMIN), 404)


def test_a_publisher_key_needs_stream_prefixes_and_appends_only_under_them(api: Api) -> None:
    body: dict[str, Any] = {"role": "publisher", "logs": [ORIGIN], "name": "scanner"}
    assert problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=body), 422)["field"] == "stream_prefixes"
    for bad in (["/controls"], ["controls//iam"], [""], ["controls iam"]):
        bad_body = body | {"stream_prefixes": bad}
        problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=bad_body), 422)
    officer = {"role": "officer", "logs": [ORIGIN], "name": "o", "stream_prefixes": ["controls"]}
    problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=officer), 422)

    response = api.call("POST", "/v1/api-keys", Role.ADMIN, json=body | {"stream_prefixes": ["controls/iam-01/"]})
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert response.json()["key"]["stream_prefixes"] == ["controls/iam-01/"]
    appended = api.call("POST", "/v1/events", token, json=check_result(1))
    assert appended.status_code == 201, appended.text
    assert appended.json()["entry"]["producer"] == "scanner"
    problem(api.call("POST", "/v1/events", token, json=check_result(2, stream="controls/bck-01/host-001")), 403)


def test_invalid_key_requests_are_refused(api: Api) -> None:
    good: dict[str, Any] = {"role": "auditor", "logs": [ORIGIN], "name": "auditor-2"}
    changes: list[dict[str, Any]] = [
        {"role": "root"},
        {"logs": []},
        {"name": ""},
        {"name": "has space"},
        {"extra": True},
        {"logs": ORIGIN},
    ]
    for change in changes:
        problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=good | change), 422)
    problem(api.call("POST", "/v1/api-keys", Role.ADMIN, content=b"not json"), 422)
    for role in (Role.OFFICER, Role.AUDITOR, Role.PUBLISHER):
        problem(api.call("POST", "/v1/api-keys", role, json=good), 403)
        problem(api.get("/v1/api-keys", role), 403)
        problem(api.call("DELETE", f"/v1/api-keys/{api.keys[Role.OFFICER].key_id}", role), 403)
    problem(api.get("/v1/api-keys", None), 401)


def test_an_admin_manages_only_keys_within_its_own_logs(api: Api) -> None:
    Ledger.create(api.settings, OTHER).recorder.engine.dispose()
    other_key, other_token = new_key(api.settings, Role.OFFICER, [OTHER])
    both_key, _ = new_key(api.settings, Role.AUDITOR, [ORIGIN, OTHER])
    _, both_admin = new_key(api.settings, Role.ADMIN, [ORIGIN, OTHER])

    for logs in ([OTHER], [ORIGIN, OTHER]):
        body = {"role": "officer", "logs": logs, "name": "x"}
        assert problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=body), 403)["type"].endswith("/forbidden")
    missing = {"role": "officer", "logs": ["missing.example/log"], "name": "x"}
    problem(api.call("POST", "/v1/api-keys", Role.ADMIN, json=missing), 403)  # outside its logs, existing or not

    seen = {k["key_id"] for k in api.get("/v1/api-keys", Role.ADMIN).json()}
    assert seen == {k.key_id for k in api.keys.values()}
    assert other_key.key_id not in seen and both_key.key_id not in seen
    seen_by_both = {k["key_id"] for k in api.get("/v1/api-keys", both_admin).json()}
    assert {other_key.key_id, both_key.key_id} <= seen_by_both

    for key_id in (other_key.key_id, both_key.key_id):
        problem(api.call("DELETE", f"/v1/api-keys/{key_id}", Role.ADMIN), 404)
    assert api.get("/v1/checkpoint", other_token, log=OTHER).status_code == 200  # still works

    created = api.call("POST", "/v1/api-keys", both_admin, json={"role": "officer", "logs": [OTHER], "name": "y"})
    assert created.status_code == 201, created.text
    assert api.call("DELETE", f"/v1/api-keys/{other_key.key_id}", both_admin).status_code == 204
    problem(api.get("/v1/checkpoint", other_token, log=OTHER), 401)

    own_logs = {"role": "admin", "logs": [ORIGIN, "missing.example/log"], "name": "z"}
    assert api.call("POST", "/v1/api-keys", both_admin, json=own_logs).status_code == 403
    _, wide_admin = new_key(api.settings, Role.ADMIN, [ORIGIN, "missing.example/log"])
    assert problem(api.call("POST", "/v1/api-keys", wide_admin, json=own_logs), 422)["field"] == "logs"


# --- the command line ------------------------------------------------------------------------------------


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _cli_fails(data_dir: Path, *args: str, code: int = 2) -> str:
    done = _cli(data_dir, *args)
    assert done.returncode == code, done
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_answers_health_and_authenticated_requests(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data")
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()
    _, token = new_key(settings, Role.AUDITOR, [ORIGIN])
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "--data-dir", str(settings.data_dir), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_cli_env(),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        checkpoint = httpx.get(f"{base}/v1/checkpoint", headers={"X-API-Key": token}, timeout=10)
        assert checkpoint.status_code == 200
        assert checkpoint.text.startswith(f"{ORIGIN}\n0\n")
        assert httpx.get(f"{base}/v1/checkpoint", timeout=10).status_code == 401
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert token.split("_", 2)[2] not in output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(r["logger"].startswith("uvicorn") for r in records), output  # uvicorn logs as JSON too
    [access] = [r for r in records if r.get("route") == "/v1/checkpoint" and r.get("status") == 200]
    assert access["key_id"] and access["logger"] == "ledger.api.access"


def test_serve_refuses_an_unknown_log_level(tmp_path: Path) -> None:
    assert "log level" in _cli_fails(tmp_path / "data", "serve", "--log-level", "loud")


def test_api_keys_commands_create_list_and_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    settings = embedded_settings(data_dir)
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()

    done = _cli(data_dir, "api-keys", "create", "--role", "auditor", "--name", "ext-auditor", "--json")
    assert done.returncode == 0, done
    assert "not stored" in done.stderr
    created = json.loads(done.stdout)
    token, key_id = created["token"], created["key"]["key_id"]
    assert created["key"]["logs"] == [ORIGIN] and created["key"]["role"] == "auditor"

    text = _cli(data_dir, "api-keys", "create", "--role", "publisher", "--stream-prefix", "controls", "--log", ORIGIN)
    assert text.returncode == 0, text
    [token_line] = [line for line in text.stdout.splitlines() if line.startswith("token: ")]
    publisher_token = token_line.removeprefix("token: ")
    assert text.stdout.count(publisher_token) == 1
    assert "not stored" in text.stderr

    listed = _cli(data_dir, "api-keys", "list", "--json")
    assert listed.returncode == 0, listed
    keys = json.loads(listed.stdout)
    assert [(k["role"], k["name"], k["revoked_at"]) for k in keys] == [
        ("auditor", "ext-auditor", None),
        ("publisher", "publisher", None),
    ]
    assert keys[1]["stream_prefixes"] == ["controls"]
    plain = _cli(data_dir, "api-keys", "list")
    for output in (listed.stdout, plain.stdout):
        for secret in (token, publisher_token):
            assert secret.split("_", 2)[2] not in output
    assert key_id in plain.stdout and "active" in plain.stdout

    monkeypatch.setattr("api.state.KEY_CACHE_SECONDS", 0.0)  # see another process's revocation at once
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": token}
        assert client.get("/v1/checkpoint", headers=headers).status_code == 200
        assert client.post("/v1/events", json=check_result(), headers={"X-API-Key": publisher_token}).status_code == 201

        revoked = _cli(data_dir, "api-keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked
        assert key_id in revoked.stdout
        assert client.get("/v1/checkpoint", headers=headers).status_code == 401

    [after] = [k for k in json.loads(_cli(data_dir, "api-keys", "list", "--json").stdout) if k["key_id"] == key_id]
    assert after["revoked_at"] is not None


def test_api_keys_commands_report_errors_on_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert "no log exists" in _cli_fails(data_dir, "api-keys", "create", "--role", "officer", code=2)
    settings = embedded_settings(data_dir)
    Ledger.create(settings, ORIGIN).recorder.engine.dispose()
    Ledger.create(settings, OTHER).recorder.engine.dispose()

    assert "several logs" in _cli_fails(data_dir, "api-keys", "create", "--role", "officer")
    assert "no such log" in _cli_fails(data_dir, "api-keys", "create", "--role", "officer", "--log", "nope.example/x")
    assert "unknown role" in _cli_fails(data_dir, "api-keys", "create", "--role", "root", "--log", ORIGIN)
    assert "stream prefix" in _cli_fails(data_dir, "api-keys", "create", "--role", "publisher", "--log", ORIGIN)
    assert "name" in _cli_fails(data_dir, "api-keys", "create", "--role", "officer", "--log", ORIGIN, "--name", "a b")
    assert "no such API key" in _cli_fails(data_dir, "api-keys", "revoke", "0123456789abcdef")
    assert _cli(data_dir, "api-keys", "list").stdout.startswith("no API keys yet")

    both = _cli(data_dir, "api-keys", "create", "--role", "officer", "--log", ORIGIN, "--log", OTHER, "--json")
    assert both.returncode == 0, both
    assert json.loads(both.stdout)["key"]["logs"] == sorted([ORIGIN, OTHER])
