"""``LedgerClient`` against the real API, in process: a real log, a real SQLite file, real keys.

Only the retry tests put a failing transport in front of the app; the requests it lets through reach the
same application and database as every other test.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import merkle
from ledger.access import Role
from ledger.client import ApiError, ApiUnreachableError, LedgerClient
from ledger.errors import LedgerError, VerificationError
from ledger.notes import NoteSigner, format_checkpoint, sign_note
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore
from tests.contract.conftest import check_event

ORIGIN = "client.bank.example/ledger"
BASE_URL = "http://testserver"
CREATED_AT = "2026-11-20T00:00:00.000000Z"


@dataclass
class Api:
    """The app running over a real log, with a publisher and an auditor key."""

    settings: Settings
    ledger: Ledger
    http: TestClient
    publisher_token: str
    auditor_token: str

    @property
    def trusted_key(self) -> str:
        return self.ledger.active_key().verifier_key

    def publisher(self, **options: Any) -> LedgerClient:
        return LedgerClient(BASE_URL, self.publisher_token, http_client=self.http, **options)

    def auditor(self, **options: Any) -> LedgerClient:
        return LedgerClient(BASE_URL, self.auditor_token, http_client=self.http, **options)

    def through(self, handler: Callable[[httpx.Request], httpx.Response], token: str, **options: Any) -> LedgerClient:
        """A client whose own httpx.Client sends every request to ``handler`` (see :class:`Flaky`)."""
        return LedgerClient(BASE_URL, token, transport=httpx.MockTransport(handler), **options)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path)
    ledger = Ledger.create(settings, ORIGIN)
    keys = ApiKeyStore(ledger.recorder.engine)
    _, publisher_token = keys.create(Role.PUBLISHER, [ORIGIN], ["controls"], "svc", CREATED_AT)
    _, auditor_token = keys.create(Role.AUDITOR, [ORIGIN], [], "auditor", CREATED_AT)
    try:
        with TestClient(create_app(settings)) as http:
            yield Api(settings, ledger, http, publisher_token, auditor_token)
    finally:
        ledger.recorder.engine.dispose()


class Flaky:
    """A transport handler: the first answers are the given failures, later requests reach the real app.

    A failure is a response to return, an exception to raise, or ``"lost"``: the request reaches the app
    and is processed, but its answer is dropped on the way back (a read timeout).
    """

    def __init__(self, http: TestClient, failures: list[httpx.Response | Exception | str]) -> None:
        self.http = http
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, httpx.Response):
            return failure
        if isinstance(failure, Exception):
            raise failure
        answer = self.http.send(request)
        if failure == "lost":
            raise httpx.ReadTimeout("the answer was lost", request=request)
        hop_by_hop = {"content-encoding", "content-length", "transfer-encoding"}
        headers = [(name, value) for name, value in answer.headers.multi_items() if name.lower() not in hop_by_hop]
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def unavailable(retry_after: str | None = "0") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    problem = {"type": "about:blank", "title": "Storage unavailable", "status": 503, "detail": "try again"}
    return httpx.Response(503, headers=headers, json=problem)


def without_id(event: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name != "id"}


def entries_with_event_id(api: Api, event_id: str) -> list[dict[str, Any]]:
    with api.auditor() as auditor:
        return [entry for entry in auditor.query() if entry["event_id"] == event_id]


# --- publishing -------------------------------------------------------------------------------------


def test_publish_assigns_an_id_and_a_resend_returns_the_stored_entry(api: Api) -> None:
    event = without_id(check_event(1))
    with api.publisher() as client:
        first = client.publish(event)
        assert first.created and first.seq == 0
        assert uuid.UUID(first.entry["event_id"]).version == 4
        assert "id" not in event  # the caller's mapping is left alone
        again = client.publish({**event, "id": first.entry["event_id"]})
    assert not again.created
    assert again.seq == first.seq and again.entry["hash"] == first.entry["hash"]
    assert api.ledger.head().size == 1


def test_publish_with_the_callers_id_is_idempotent(api: Api) -> None:
    with api.publisher() as client:
        results = [client.publish(check_event(7)) for _ in range(3)]
    assert [r.created for r in results] == [True, False, False]
    assert {r.seq for r in results} == {0}
    assert results[0].entry["event_id"] == check_event(7)["id"]


def test_publish_many_in_batches_then_again(api: Api) -> None:
    events = [check_event(n) for n in range(5)]
    with api.publisher() as client:
        first = client.publish_many(events, batch_size=2)
        again = client.publish_many([*events[3:], check_event(5)], batch_size=2)
        unnamed = client.publish_many([without_id(check_event(6)), without_id(check_event(7))])
    assert [r.created for r in first] == [True] * 5 and [r.seq for r in first] == [0, 1, 2, 3, 4]
    assert [(r.created, r.seq) for r in again] == [(False, 3), (False, 4), (True, 5)]
    assert [r.created for r in unnamed] == [True, True]
    assert unnamed[0].entry["event_id"] != unnamed[1].entry["event_id"]
    assert api.ledger.head().size == 8
    with api.publisher() as client:
        assert client.publish_many([]) == []


# --- reading ----------------------------------------------------------------------------------------


def test_query_follows_the_cursor_to_the_last_page(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n, stream=f"controls/s{n % 2}") for n in range(7)])
    with api.auditor() as auditor:
        everything = list(auditor.query(limit=2))
        odd = list(auditor.query(stream="controls/s1", limit=2))
        with pytest.raises(TypeError, match="strem"):
            auditor.query(strem="controls/s1")
    assert [e["seq"] for e in everything] == list(range(7))
    assert [e["seq"] for e in odd] == [1, 3, 5]
    assert all(e["payload_state"] == "hidden" for e in everything)  # an auditor reads no payloads


def test_entry_checkpoint_keys_and_proofs_read_back(api: Api) -> None:
    with api.publisher() as client:
        published = client.publish_many([check_event(n) for n in range(3)])
    with api.auditor() as auditor:
        entry = auditor.entry(1)
        assert entry == published[1].entry
        assert auditor.event(published[2].entry["event_id"])["seq"] == 2
        assert auditor.checkpoint().startswith(f"{ORIGIN}\n3\n")
        assert auditor.checkpoint(2).startswith(f"{ORIGIN}\n2\n")
        keys = auditor.public_keys()
        assert keys[0]["verifier_key"] == api.trusted_key and keys[0]["active"]
        proof = auditor.inclusion_proof(1, size=3)
        assert proof["index"] == 1 and proof["tree_size"] == 3 and proof["leaf_hash"] == entry["hash"]
        assert auditor.consistency_proof(1, 3)["from_size"] == 1
        with pytest.raises(ApiError) as missing:
            auditor.entry(99)
    assert missing.value.status == 404 and missing.value.problem["status"] == 404


# --- verification -----------------------------------------------------------------------------------


def test_verify_entry_included_with_the_trusted_key(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(6)])
    with api.auditor() as auditor:
        verified = [auditor.verify_entry_included(seq, trusted_verifier_key=api.trusted_key) for seq in range(6)]
    assert {v.tree_size for v in verified} == {6}
    assert verified[0].root == api.ledger.root(6)
    assert [v.leaf_hash.hex() for v in verified] == [e.hash.hex() for e in api.ledger.entries()]
    assert verified[3].key_id == api.ledger.active_key().key_id


def test_verify_entry_included_refuses_another_key(api: Api) -> None:
    with api.publisher() as client:
        client.publish(check_event(1))
    stranger = NoteSigner.generate(ORIGIN).verifier_key()
    with api.auditor() as auditor:
        with pytest.raises(VerificationError, match="not signed by a trusted key"):
            auditor.verify_entry_included(0, trusted_verifier_key=stranger)
        with pytest.raises(VerificationError, match="trusted verifier key: malformed"):
            auditor.verify_entry_included(0, trusted_verifier_key="not a key")
        with pytest.raises(VerificationError, match="not covered by the latest checkpoint"):
            auditor.verify_entry_included(1, trusted_verifier_key=api.trusted_key)


def _tamper(
    api: Api, seq: int, change: Callable[[bytes], tuple[bytes, bytes, bytes]], producer: str | None = None
) -> None:
    """Rewrite an entry in the SQLite file the way an attacker with the file can: triggers dropped first.

    ``change`` maps the stored body to a new (body, hash, signature); ``producer`` rewrites that column too.
    """
    connection = sqlite3.connect(api.settings.data_dir / "ledger.db")
    try:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            connection.execute(f'DROP TRIGGER "{name}"')
        (body,) = connection.execute("SELECT body FROM entries WHERE seq = ?", (seq,)).fetchone()
        new_body, new_hash, new_signature = change(bytes(body))
        connection.execute(
            "UPDATE entries SET body = ?, hash = ?, signature = ? WHERE seq = ?",
            (new_body, new_hash, new_signature, seq),
        )
        if producer is not None:
            connection.execute("UPDATE entries SET producer = ? WHERE seq = ?", (producer, seq))
        connection.commit()
    finally:
        connection.close()


def _flip_producer_byte(body: bytes) -> bytes:
    position = body.index(b'"producer":"svc"') + len(b'"producer":"')
    changed = bytearray(body)
    changed[position] ^= 0x01  # "svc" becomes "rvc": still valid JSON, now a lie
    return bytes(changed)


def test_verify_entry_included_detects_a_tampered_body(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(4)])
    with api.auditor() as auditor:
        auditor.verify_entry_included(2, trusted_verifier_key=api.trusted_key)
        stored = api.ledger.entry(2)
        _tamper(api, 2, lambda body: (_flip_producer_byte(body), stored.hash, stored.signature))
        assert auditor.entry(2)["body"] != stored.body.decode()
        with pytest.raises(VerificationError, match="entry 2: the body does not hash to the entry's hash"):
            auditor.verify_entry_included(2, trusted_verifier_key=api.trusted_key)
        auditor.verify_entry_included(1, trusted_verifier_key=api.trusted_key)  # the others still verify


def test_a_body_rewritten_with_its_hash_fails_the_signature(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(4)])
    stored = api.ledger.entry(2)

    def rehash(body: bytes) -> tuple[bytes, bytes, bytes]:
        forged = _flip_producer_byte(body)
        return forged, merkle.leaf_hash(forged), stored.signature

    _tamper(api, 2, rehash)
    with api.auditor() as auditor, pytest.raises(VerificationError, match="signature over the body does not verify"):
        auditor.verify_entry_included(2, trusted_verifier_key=api.trusted_key)


def test_a_body_re_signed_with_the_stolen_key_fails_the_inclusion_proof(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(4)])
    with api.auditor() as auditor:
        auditor.checkpoint()  # the signed checkpoint is stored before the forgery
    signer = api.ledger.signer()

    def forge(body: bytes) -> tuple[bytes, bytes, bytes]:
        forged = _flip_producer_byte(body)
        return forged, merkle.leaf_hash(forged), signer.sign(forged)

    _tamper(api, 2, forge, producer="rvc")
    with api.auditor() as auditor, pytest.raises(VerificationError, match="inclusion proof does not lead"):
        auditor.verify_entry_included(2, trusted_verifier_key=api.trusted_key)


def test_a_column_that_contradicts_the_signed_body_is_caught(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(2)])
    stored = api.ledger.entry(1)
    _tamper(api, 1, lambda body: (body, stored.hash, stored.signature), producer="someone-else")
    with api.auditor() as auditor:
        assert auditor.entry(1)["producer"] == "someone-else"
        with pytest.raises(VerificationError, match="entry 1: producer differs from the signed body"):
            auditor.verify_entry_included(1, trusted_verifier_key=api.trusted_key)


def test_entries_of_an_earlier_key_need_that_key_to_be_trusted(api: Api) -> None:
    with api.publisher() as client:
        client.publish(check_event(1))
    old_key = api.trusted_key
    api.ledger.rotate_key("yearly rotation")
    new_key = api.ledger.active_key().verifier_key
    assert new_key != old_key
    with api.auditor() as auditor:
        with pytest.raises(VerificationError, match=r"entry 0 is signed by key \w+, which is not a trusted key"):
            auditor.verify_entry_included(0, trusted_verifier_key=new_key)
        verified = auditor.verify_entry_included(0, trusted_verifier_key=new_key, extra_trusted_keys=[old_key])
    assert verified.key_id == old_key.split("+")[1]


def test_verify_consistency_of_a_growing_log(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(3)])
        with api.auditor() as auditor:
            old = auditor.checkpoint()
            same = auditor.verify_consistency(old, trusted_verifier_key=api.trusted_key)
            client.publish_many([check_event(n) for n in range(3, 10)])
            grown = auditor.verify_consistency(old, trusted_verifier_key=api.trusted_key)
            onward = auditor.verify_consistency(grown.checkpoint, trusted_verifier_key=api.trusted_key)
    assert (same.old_size, same.new_size) == (3, 3)
    assert (grown.old_size, grown.new_size) == (3, 10) and grown.new_root == api.ledger.root(10)
    assert (onward.old_size, onward.new_size) == (10, 10)


def test_verify_consistency_detects_a_forked_or_shrunk_log(api: Api) -> None:
    with api.publisher() as client:
        client.publish_many([check_event(n) for n in range(5)])
    signer = api.ledger.signer()
    fork = sign_note(format_checkpoint(ORIGIN, 3, merkle.leaf_hash(b"another history")), [signer])
    longer = sign_note(format_checkpoint(ORIGIN, 50, api.ledger.root(5)), [signer])
    stranger = NoteSigner.generate(ORIGIN)
    foreign = sign_note(format_checkpoint(ORIGIN, 3, api.ledger.root(3)), [stranger])
    with api.auditor() as auditor:
        with pytest.raises(VerificationError, match="consistency proof does not lead to the old root"):
            auditor.verify_consistency(fork, trusted_verifier_key=api.trusted_key)
        with pytest.raises(VerificationError, match="the log shrank"):
            auditor.verify_consistency(longer, trusted_verifier_key=api.trusted_key)
        with pytest.raises(VerificationError, match="old checkpoint is not signed by a trusted key"):
            auditor.verify_consistency(foreign, trusted_verifier_key=api.trusted_key)
        with pytest.raises(VerificationError, match="latest checkpoint is not signed by a trusted key"):
            auditor.verify_consistency(foreign, trusted_verifier_key=stranger.verifier_key())


# --- retries ----------------------------------------------------------------------------------------


def test_503_with_retry_after_is_retried_until_it_succeeds(api: Api) -> None:
    flaky = Flaky(api.http, [unavailable("0"), unavailable("0")])
    with api.through(flaky, api.publisher_token, backoff=0) as client:
        result = client.publish(check_event(1))
    assert result.created and flaky.calls == 3
    assert api.ledger.head().size == 1


def test_429_and_connection_errors_are_retried_for_batches_too(api: Api) -> None:
    failures: list[httpx.Response | Exception | str] = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"title": "Too many requests", "status": 429}),
        httpx.ConnectError("connection refused"),
        unavailable(None),  # no Retry-After: exponential backoff (zero here)
    ]
    flaky = Flaky(api.http, failures)
    with api.through(flaky, api.publisher_token, backoff=0) as client:
        results = client.publish_many([check_event(n) for n in range(3)])
    assert [r.created for r in results] == [True] * 3 and flaky.calls == 4


def test_a_lost_answer_is_retried_without_storing_the_event_twice(api: Api) -> None:
    event = without_id(check_event(1))
    flaky = Flaky(api.http, ["lost"])
    with api.through(flaky, api.publisher_token, backoff=0) as client:
        result = client.publish(event)
    assert flaky.calls == 2
    assert not result.created  # the first attempt stored it; the retry found it under the same id
    assert len(entries_with_event_id(api, result.entry["event_id"])) == 1
    assert api.ledger.head().size == 1


def test_retries_stop_after_the_limit(api: Api) -> None:
    always = Flaky(api.http, [unavailable("0")] * 10)
    with api.through(always, api.publisher_token, retries=2) as client, pytest.raises(ApiError) as failed:
        client.publish(check_event(1))
    assert failed.value.status == 503 and always.calls == 3
    refused = Flaky(api.http, [httpx.ConnectError("connection refused")] * 10)
    with (
        api.through(refused, api.publisher_token, retries=1, backoff=0) as client,
        pytest.raises(ApiUnreachableError, match="after 2 attempts"),
    ):
        client.publish(check_event(1))
    assert refused.calls == 2 and api.ledger.head().size == 0


def test_a_long_retry_after_is_capped(api: Api) -> None:
    flaky = Flaky(api.http, [unavailable("86400")])
    with api.through(flaky, api.publisher_token, max_retry_after=0.01) as client:
        assert client.publish(check_event(1)).created
    assert flaky.calls == 2


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (check_event(1, stream="payments/p1"), 403),  # outside the key's stream prefixes
        (without_id(check_event(1)) | {"type": "Not A Type"}, 422),
    ],
)
def test_other_4xx_are_not_retried(api: Api, event: dict[str, Any], status: int) -> None:
    flaky = Flaky(api.http, [])
    with api.through(flaky, api.publisher_token, backoff=0) as client, pytest.raises(ApiError) as refused:
        client.publish(event)
    assert refused.value.status == status and flaky.calls == 1
    assert refused.value.problem["status"] == status and refused.value.detail
    assert api.ledger.head().size == 0


# --- secrets ----------------------------------------------------------------------------------------


def _shows(error: LedgerError, client: LedgerClient) -> str:
    return " ".join([str(error), repr(error), repr(error.args), repr(client)])


def test_the_token_never_appears_in_errors(api: Api) -> None:
    with api.auditor() as auditor, pytest.raises(ApiError) as forbidden:
        auditor.publish(check_event(1))
    assert forbidden.value.status == 403
    assert api.auditor_token not in _shows(forbidden.value, auditor)

    wrong = api.publisher_token[:-4] + "AAAA"
    with LedgerClient(BASE_URL, wrong, http_client=api.http) as stranger, pytest.raises(ApiError) as unknown:
        stranger.entry(0)
    assert unknown.value.status == 401
    assert wrong not in _shows(unknown.value, stranger)


def test_a_token_echoed_by_a_proxy_is_redacted(api: Api) -> None:
    token = api.publisher_token

    def echo(request: httpx.Request) -> httpx.Response:
        sent = request.headers["X-API-Key"]
        return httpx.Response(400, json={"title": f"bad key {sent}", "detail": f"you sent {sent}", "echo": [sent]})

    with api.through(echo, token) as client, pytest.raises(ApiError) as echoed:
        client.publish(check_event(1))
    assert token not in _shows(echoed.value, client) and token not in repr(echoed.value.problem)
    assert "lk_[redacted]" in str(echoed.value)
