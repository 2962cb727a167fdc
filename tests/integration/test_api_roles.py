"""The role matrix: every route, every kind of caller; exactly the allowed calls succeed.

Callers: each role on log A, keys of log B addressing log A, a revoked key, a well-formed but unknown key,
a malformed key and no key at all.  A log outside a key's scope answers exactly like a log that does not
exist.  The matrix must list every route the app serves, so a new route cannot slip in untested.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import PERMISSION_ACTIONS
from ledger.access import Permission, Role
from ledger.notes import Cosigner, parse_note
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from retention.holds import set_hold
from tests.events import check_result

LOG_A = "a.bank.example/ledger"
LOG_B = "b.bank.example/ledger"
NOW = "2026-11-20T00:00:00.000000Z"
PUBLIC = {"GET /health", "GET /live", "GET /ready"}
WITNESS = Cosigner.generate("witness.example/roles")
COSIGNATURES: dict[str, str] = {}  # the witness's cosignature of log A's checkpoint of size 1, made by the fixture


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]
    event_id: str
    audit_id: str
    spare_key_ids: list[str]
    hold_id: str
    pack_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = Path(tmp_path_factory.mktemp("roles"))
    settings = Settings(
        data_dir=data,
        api_rate_limit_per_second=10_000,
        api_rate_limit_burst=10_000,
        witness_keys=[WITNESS.verifier().verifier_key()],
    )
    ledger_a = Ledger.create(settings, LOG_A)
    Ledger.create(settings, LOG_B)
    first = ledger_a.append(check_result(), producer="seed").entry
    ledger_a.append(check_result(), producer="seed")
    COSIGNATURES[LOG_A] = WITNESS.cosign(parse_note(ledger_a.checkpoint(1)).text, int(time.time()))
    store = ApiKeyStore(ledger_a.recorder.engine)
    tokens = {}
    for role in Role:
        prefixes = ["controls"] if role is Role.PUBLISHER else []
        tokens[role.value] = store.create(role, [LOG_A], prefixes, f"{role.value}-a", NOW)[1]
        tokens[f"{role.value}@B"] = store.create(role, [LOG_B], prefixes, f"{role.value}-b", NOW)[1]
    revoked, tokens["revoked"] = store.create(Role.OFFICER, [LOG_A], [], "gone", NOW)
    store.revoke(revoked.key_id, NOW)
    tokens["unknown"] = "lk_0123456789abcdef_" + "x" * 43
    tokens["malformed"] = "not-a-key"
    spare = [store.create(Role.OFFICER, [LOG_A], [], f"spare-{n}", NOW)[0].key_id for n in range(3)]
    hold = set_hold(ledger_a, scope_kind="stream", scope="controls/iam-01/host-001", reason="matter", actor="seed")
    ledger_a.append(_incident_classified(), producer="seed")
    with TestClient(create_app(settings)) as client:
        made = client.post("/v1/audits", headers={"X-API-Key": tokens["auditor"]})
        assert made.status_code == 201, made.text
        pack = client.post("/v1/packs", json=_body("pack"), headers={"X-API-Key": tokens["officer"]})
        assert pack.status_code == 201, pack.text
        yield World(
            client, tokens, first.event_id, made.json()["id"], spare, hold.hold_id, pack_id=pack.json()["pack_id"]
        )


def _calls(world: World) -> list[tuple[str, str, str | None, int, set[str]]]:
    """(method, path, json body, success status, roles allowed) for every route."""
    readers = {"officer", "auditor"}
    return [
        ("GET", "/health", None, 200, set()),
        ("GET", "/live", None, 200, set()),
        ("GET", "/ready", None, 200, set()),
        ("GET", "/metrics", None, 200, {"admin"}),
        ("POST", "/v1/events", "event", 201, {"publisher"}),
        ("POST", "/v1/events:batch", "batch", 201, {"publisher"}),
        ("GET", "/v1/entries/0", None, 200, readers),
        ("GET", f"/v1/events/{world.event_id}", None, 200, readers),
        ("GET", "/v1/entries", None, 200, readers),
        ("GET", "/v1/stream?name=controls/iam-01/host-001", None, 200, readers),
        ("GET", "/v1/checkpoint", None, 200, readers),
        ("GET", "/v1/checkpoints/1", None, 200, readers),
        ("POST", "/v1/checkpoints/1/cosignatures", "cosignature", 201, {"auditor"}),  # only the auditor's call stores
        ("GET", "/v1/proofs/inclusion?seq=0", None, 200, readers),
        ("GET", "/v1/proofs/consistency?from_size=1&to_size=2", None, 200, readers),
        ("GET", "/v1/public-keys", None, 200, readers),
        ("POST", "/v1/audits", None, 201, {"auditor"}),
        ("GET", "/v1/audits", None, 200, {"auditor"}),
        ("GET", f"/v1/audits/{world.audit_id}", None, 200, {"auditor"}),
        ("GET", "/v1/reconciliations/kafka", None, 404, {"auditor"}),  # no broker configured in this app
        ("POST", "/v1/holds", "hold", 201, {"officer"}),
        ("GET", "/v1/holds", None, 200, readers),
        ("POST", f"/v1/holds/{world.hold_id}/release", "release", 200, {"officer"}),  # only the officer's call
        ("GET", "/v1/retention/status", None, 200, readers),
        ("POST", "/v1/api-keys", "key", 201, {"admin"}),
        ("GET", "/v1/api-keys", None, 200, {"admin"}),
        ("DELETE", "/v1/api-keys/{spare}", None, 204, {"admin"}),
        ("POST", "/v1/dora/classify", "classify", 200, readers | {"publisher"}),
        ("POST", "/v1/dora/threats/assess", "threat", 200, readers | {"publisher"}),
        ("GET", "/v1/dora/incidents", None, 200, readers),
        ("GET", f"/v1/dora/incidents/{INCIDENT}", None, 200, {"officer"}),
        ("GET", "/v1/dora/due?within=4h", None, 200, readers),
        ("GET", f"/v1/dora/incidents/{INCIDENT}/report?stage=initial", None, 200, {"officer"}),
        ("POST", "/v1/packs", "pack", 201, {"officer"}),
        ("GET", f"/v1/packs/{world.pack_id}", None, 200, {"officer"}),
    ]


def _body(kind: Any) -> Any:
    if kind == "event":
        return check_result()
    if kind == "batch":
        return {"events": [check_result(), check_result()]}
    if kind == "hold":
        return {"scope_kind": "stream_prefix", "scope": "controls", "reason": "litigation", "case_id": "CASE-1"}
    if kind == "pack":
        return {"stream_prefixes": ["controls/iam-01"], "incidents": [INCIDENT]}
    if kind == "release":
        return {"reason": "matter closed"}
    if kind == "cosignature":
        return {"cosignature": COSIGNATURES[LOG_A]}
    if kind == "classify":
        return _classification_inputs()
    if kind == "threat":
        return {
            "threat_id": "THR-1",
            "classified_at": NOW,
            "classified_by": "intel",
            **{name: _input(True) for name in THREAT_INPUTS},
        }
    if kind == "key":
        return {"role": "officer", "logs": [LOG_A], "stream_prefixes": [], "name": f"made-{uuid.uuid4().hex[:6]}"}
    return None


INCIDENT = "INC-1"
THREAT_INPUTS = (
    "could_affect_critical_functions_or_others",
    "high_probability",
    "would_meet_critical_services",
    "would_meet_clients",
    "would_meet_geography",
)


def _input(value: Any) -> dict[str, Any]:
    return {"value": value, "estimated": False}


def _classification_inputs() -> dict[str, Any]:
    return {
        "incident_id": INCIDENT,
        "classified_at": NOW,
        "classified_by": "desk",
        "affects_critical_functions": _input(True),
        "affects_authorised_financial_services": _input(False),
        "malicious_unauthorised_access": _input(True),
        "malicious_access_may_cause_data_loss": _input(True),
    }


def _incident_classified() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "stream": f"incident/{INCIDENT}",
        "type": "incident.classified",
        "occurred_at": NOW,
        "payload": _classification_inputs(),
    }


def _template(path: str) -> str:
    return path.split("?")[0]


def test_the_matrix_lists_every_route(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    served = {f"{method.upper()} {path}" for path, operations in spec["paths"].items() for method in operations}
    listed = set()
    for method, path, *_ in _calls(world):
        concrete = _template(path)
        for template in spec["paths"]:
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, concrete) and method.lower() in spec["paths"][template]:
                listed.add(f"{method} {template}")
    assert len(served) >= 20
    assert served == listed


CALLERS = [
    "publisher", "officer", "auditor", "admin",
    "publisher@B", "officer@B", "auditor@B", "admin@B",
    "revoked", "unknown", "malformed", None,
]  # fmt: skip


@pytest.mark.parametrize("caller", CALLERS)
def test_exactly_the_allowed_calls_succeed(world: World, caller: str | None) -> None:
    spare = iter(world.spare_key_ids)
    for method, path, body, success, allowed in _calls(world):
        if "{spare}" in path:
            path = path.replace("{spare}", next(spare) if caller == "admin" else world.spare_key_ids[-1])
        headers = {} if caller is None else {"X-API-Key": world.tokens[caller]}
        unscoped = _template(path) in ("/health", "/live", "/ready", "/metrics") or "/api-keys" in path
        addressed = path if unscoped else _with_log(path)
        response = world.client.request(method, addressed, json=_body(body), headers=headers)
        where = f"{caller} {method} {path}: {response.status_code} {response.text[:200]}"
        if f"{method} {_template(path)}" in PUBLIC:
            assert response.status_code == 200, where
        elif caller in ("revoked", "unknown", "malformed", None):
            assert response.status_code == 401, where
        elif caller == "admin@B" and method == "GET" and path in ("/metrics", "/v1/api-keys"):
            assert response.status_code == 200, where  # its own log's keys and metrics, nothing of log A
            assert LOG_A not in response.text, where
        elif caller.endswith("@B") and allowed and caller.removesuffix("@B") in allowed and "/api-keys" not in path:
            assert response.status_code == 404, where  # log A does not exist for a key of log B
            assert response.json()["detail"] == "no such log", where
        elif caller in allowed:
            assert response.status_code == success, where
        else:
            assert response.status_code in (403, 404), where
            if response.status_code == 403:
                assert "_" not in response.json()["detail"], where  # words, not an enum value
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), where


def _with_log(path: str) -> str:
    return path + ("&" if "?" in path else "?") + f"log={LOG_A}"


def test_another_logs_key_cannot_tell_a_log_exists(world: World) -> None:
    headers = {"X-API-Key": world.tokens["officer@B"]}
    existing = world.client.get(f"/v1/entries?log={LOG_A}", headers=headers)
    missing = world.client.get("/v1/entries?log=nowhere.example/none", headers=headers)
    assert existing.status_code == missing.status_code == 404
    strip = ("instance", "request_id")
    assert {k: v for k, v in existing.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }


def test_payloads_are_shown_to_officers_only(world: World) -> None:
    officer = world.client.get("/v1/entries/0", headers={"X-API-Key": world.tokens["officer"]}).json()
    auditor = world.client.get("/v1/entries/0", headers={"X-API-Key": world.tokens["auditor"]}).json()
    assert officer["payload"]["control_id"] == "IAM-01" and officer["payload_state"] == "present"
    assert auditor["payload"] is None and auditor["payload_state"] == "hidden"
    assert auditor["body"] == officer["body"]


def test_publishers_append_only_under_their_prefixes(world: World) -> None:
    headers = {"X-API-Key": world.tokens["publisher"]}
    outside = world.client.post("/v1/events", json=check_result(stream="incident/INC-1"), headers=headers)
    assert outside.status_code == 403
    batch = {"events": [check_result(), check_result(stream="approvals/x")]}
    assert world.client.post("/v1/events:batch", json=batch, headers=headers).status_code == 403


def test_the_producer_comes_from_the_key_never_from_the_body(world: World) -> None:
    event = check_result() | {"producer": "someone-else"}
    made = world.client.post("/v1/events", json=event, headers={"X-API-Key": world.tokens["publisher"]})
    assert made.status_code == 201, made.text
    assert made.json()["entry"]["producer"] == "publisher-a"
    assert '"producer":"publisher-a"' in made.json()["entry"]["body"]


def test_every_permission_has_words_for_its_refusal(world: World) -> None:
    assert set(PERMISSION_ACTIONS) == set(Permission)
    response = world.client.get(_with_log("/v1/checkpoint"), headers={"X-API-Key": world.tokens["publisher"]})
    assert response.status_code == 403
    assert response.json()["detail"] == "a publisher key may not read checkpoints or proofs"
    response = world.client.get("/v1/api-keys", headers={"X-API-Key": world.tokens["auditor"]})
    assert response.status_code == 403
    assert response.json()["detail"] == "an auditor key may not manage API keys"
