"""A small synchronous HTTP client of the ledger API, for the services that publish and the auditors that check.

Publishing is safe to retry: :meth:`LedgerClient.publish` gives every event without an ``id`` a random UUID
before the first attempt, so a resend after a lost response is answered with the stored entry (200) instead
of a second entry.  Connection failures, 429 and 503 are retried with exponential backoff, honouring
``Retry-After`` up to a cap; any other 4xx is the caller's mistake and is raised at once as :class:`ApiError`.

Verification trusts only what the caller brings: the log's verifier key is a parameter, never fetched from
the server being checked.  :meth:`LedgerClient.verify_entry_included` recomputes the leaf hash from the
entry body, checks the Ed25519 signature and the RFC 9162 inclusion proof against a checkpoint signed by that
key; :meth:`LedgerClient.verify_consistency` checks that the log's latest checkpoint extends an older one.

The API key travels in the ``X-API-Key`` header only; it never appears in a message, a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import httpx
import orjson

from ledger import merkle
from ledger.chain import parse_body
from ledger.errors import InfrastructureError, LedgerError, ValidationError, VerificationError
from ledger.notes import Checkpoint, NoteVerifier, open_note, parse_checkpoint, parse_verifier_key

__all__ = [
    "ApiError",
    "ApiUnreachableError",
    "LedgerClient",
    "PublishResult",
    "UnexpectedAnswerError",
    "VerifiedConsistency",
    "VerifiedInclusion",
]

RETRY_STATUSES: Final = frozenset({429, 503})
MAX_RETRY_AFTER_SECONDS: Final = 30.0
MAX_BACKOFF_SECONDS: Final = 30.0
QUERY_FILTERS: Final = frozenset(
    {
        "stream",
        "stream_prefix",
        "type",
        "producer",
        "subject",
        "occurred_since",
        "occurred_until",
        "recorded_since",
        "recorded_until",
        "limit",
    }
)
_REDACTED: Final = "lk_[redacted]"
_RETRYABLE_TRANSPORT_ERRORS: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Fields shown beside the body that must say what the signed body says (body field -> entry field).
_BODY_FIELDS_SHOWN: Final = (
    ("seq", "seq"),
    ("id", "event_id"),
    ("stream", "stream"),
    ("stream_seq", "stream_seq"),
    ("type", "type"),
    ("producer", "producer"),
    ("occurred_at", "occurred_at"),
    ("recorded_at", "recorded_at"),
)

logger = logging.getLogger("ledger.client")


# --- errors -----------------------------------------------------------------------------------------


class ApiError(LedgerError):
    """The API answered with a non-2xx status; ``problem`` is its RFC 9457 problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        title = problem.get("title") or "HTTP error"
        detail = problem.get("detail")
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")

    @property
    def title(self) -> str | None:
        value = self.problem.get("title")
        return value if isinstance(value, str) else None

    @property
    def detail(self) -> str | None:
        value = self.problem.get("detail")
        return value if isinstance(value, str) else None

    @property
    def request_id(self) -> str | None:
        value = self.problem.get("request_id")
        return value if isinstance(value, str) else None

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, title={self.title!r}, detail={self.detail!r})"


class ApiUnreachableError(InfrastructureError):
    """The API could not be reached (connection refused, timeout, broken response) after every retry."""


class UnexpectedAnswerError(InfrastructureError):
    """The API answered with success but in a shape this client does not understand."""


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The stored entry for one published event; ``created`` is False when it was stored before."""

    created: bool
    entry: dict[str, Any]

    @property
    def seq(self) -> int:
        seq: int = self.entry["seq"]
        return seq


@dataclass(frozen=True, slots=True)
class VerifiedInclusion:
    """What :meth:`LedgerClient.verify_entry_included` established: this entry is in this signed tree."""

    seq: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    key_id: str
    checkpoint: str = field(repr=False)
    entry: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedConsistency:
    """What :meth:`LedgerClient.verify_consistency` established: the newer signed tree extends the older one."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    checkpoint: str = field(repr=False)
    """The newer signed checkpoint note: keep it as the starting point of the next check."""


# --- the client -------------------------------------------------------------------------------------


class LedgerClient:
    """Talks to one ledger API with one API key; use it as a context manager or call :meth:`close`.

    ``log`` is the log origin to address (needed only when the key covers several logs).  ``transport``
    replaces the HTTP transport of the client's own ``httpx.Client``; ``http_client`` hands in a ready
    ``httpx.Client`` instead (a FastAPI ``TestClient``, a client with a proxy), which the caller configures
    (its own timeout applies), keeps and closes.  ``retries`` is the number of retries after the first attempt.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        log: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if retries < 0 or backoff < 0 or max_retry_after < 0 or timeout <= 0:
            raise ValidationError("retries, backoff and max_retry_after must be >= 0 and timeout > 0")
        if transport is not None and http_client is not None:
            raise ValidationError("pass either transport or http_client, not both")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.log = log
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"LedgerClient(base_url={self._base_url!r}, log={self.log!r})"

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # --- publishing -------------------------------------------------------------------------------

    def publish(self, event: Mapping[str, Any]) -> PublishResult:
        """Append one event (``POST /v1/events``); safe to call again with the same event id."""
        response = self._request("POST", "/v1/events", body=_with_id(event))
        data = _json_object(response)
        return PublishResult(created=bool(data["created"]), entry=data["entry"])

    def publish_many(self, events: Iterable[Mapping[str, Any]], batch_size: int = 500) -> list[PublishResult]:
        """Append events in batches of ``batch_size`` (``POST /v1/events:batch``), one result per event, in order.

        Each batch is stored whole or not at all.  If a later batch fails, earlier ones stay stored: give
        the events ids of your own to make calling again with the same events harmless.
        """
        if batch_size < 1:
            raise ValidationError("batch_size must be at least 1", field="batch_size")
        prepared = [_with_id(event) for event in events]
        results: list[PublishResult] = []
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            data = _json_object(self._request("POST", "/v1/events:batch", body={"events": batch}))
            answered = data["results"]
            if len(answered) != len(batch):
                raise UnexpectedAnswerError(f"the batch answer has {len(answered)} results for {len(batch)} events")
            results.extend(PublishResult(created=bool(r["created"]), entry=r["entry"]) for r in answered)
        return results

    # --- reading ----------------------------------------------------------------------------------

    def entry(self, seq: int) -> dict[str, Any]:
        """The entry at ``seq`` (``GET /v1/entries/{seq}``)."""
        return _json_object(self._request("GET", f"/v1/entries/{int(seq)}"))

    def event(self, event_id: str) -> dict[str, Any]:
        """The entry holding the event with this id (``GET /v1/events/{event_id}``)."""
        try:
            canonical_id = uuid.UUID(str(event_id))
        except ValueError:
            raise ValidationError("an event id is a UUID", field="event_id") from None
        return _json_object(self._request("GET", f"/v1/events/{canonical_id}"))

    def query(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every entry matching the filters, in seq order, fetching page after page (``GET /v1/entries``).

        Filters: stream, stream_prefix, type, producer, subject, occurred_since, occurred_until,
        recorded_since, recorded_until, and limit (the page size).  An unknown filter raises TypeError
        at once rather than silently matching everything.
        """
        unknown = sorted(set(filters) - QUERY_FILTERS)
        if unknown:
            raise TypeError(f"unknown query filter(s): {', '.join(unknown)}")
        params = {name: value for name, value in filters.items() if value is not None}
        return self._pages(params)

    def _pages(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page = _json_object(self._request("GET", "/v1/entries", params={**params, "cursor": cursor}))
            yield from page["entries"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- checkpoints, keys and proofs -------------------------------------------------------------

    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint note, latest or at ``size`` (text/plain, C2SP tlog-checkpoint)."""
        path = "/v1/checkpoint" if size is None else f"/v1/checkpoints/{int(size)}"
        return self._request("GET", path).text

    def public_keys(self) -> list[dict[str, Any]]:
        """The log's published keys as the server states them (for display: verification never uses them)."""
        response = self._request("GET", "/v1/public-keys")
        try:
            keys = response.json()
        except ValueError:
            keys = None
        if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
            raise UnexpectedAnswerError("the public-keys answer is not a list of keys")
        return keys

    def inclusion_proof(self, seq: int, size: int | None = None) -> dict[str, Any]:
        """``GET /v1/proofs/inclusion``: the audit path of ``seq`` in the tree of ``size`` (default: latest)."""
        return _json_object(self._request("GET", "/v1/proofs/inclusion", params={"seq": seq, "size": size}))

    def consistency_proof(self, from_size: int, to_size: int | None = None) -> dict[str, Any]:
        """``GET /v1/proofs/consistency``: the proof that tree ``to_size`` (default: latest) extends ``from_size``."""
        params = {"from_size": from_size, "to_size": to_size}
        return _json_object(self._request("GET", "/v1/proofs/consistency", params=params))

    def submit_cosignature(self, size: int, line: str) -> dict[str, Any]:
        """``POST /v1/checkpoints/{size}/cosignatures``: hand the ledger a witness's cosignature line.

        The answer is the stored cosignature, with ``created`` false when this witness key had cosigned
        that checkpoint before.  Safe to retry: the ledger keeps one cosignature per size and witness key.
        """
        body = {"cosignature": line.rstrip("\n")}
        return _json_object(self._request("POST", f"/v1/checkpoints/{int(size)}/cosignatures", body=body))

    # --- verification -----------------------------------------------------------------------------

    def verify_entry_included(
        self, seq: int, *, trusted_verifier_key: str, extra_trusted_keys: Sequence[str] = ()
    ) -> VerifiedInclusion:
        """Prove that the entry at ``seq`` is in the log's latest checkpoint, trusting only the given keys.

        The checkpoint must be signed by ``trusted_verifier_key``; the entry must be signed by that key or
        by one of ``extra_trusted_keys`` (earlier keys of the log the caller also trusts).  Raises
        :class:`VerificationError` naming the first check that fails, :class:`ApiError` when the server
        refuses a request.
        """
        trusted = _verifier(trusted_verifier_key, "trusted verifier key")
        signers = [trusted, *(_verifier(text, "extra trusted key") for text in extra_trusted_keys)]
        note = self.checkpoint()
        checkpoint = self._open_checkpoint(note, [trusted], "latest checkpoint")
        if not 0 <= seq < checkpoint.size:
            raise VerificationError(f"entry {seq} is not covered by the latest checkpoint (size {checkpoint.size})")

        entry = self.entry(seq)
        body = _field(entry, "body", str).encode("utf-8")
        leaf = merkle.leaf_hash(body)  # RFC 9162 2.1.1: the leaf hash of the body as served
        if leaf != _hex(_field(entry, "hash", str), f"hash of entry {seq}"):
            raise VerificationError(f"entry {seq}: the body does not hash to the entry's hash")
        key_id = _field(entry, "key_id", str)
        _check_entry_signature(seq, body, _b64(_field(entry, "signature", str), seq), key_id, signers)
        _check_body_matches_entry(body, entry, checkpoint.origin)

        proof = self.inclusion_proof(seq, size=checkpoint.size)
        if proof.get("index") != seq or proof.get("tree_size") != checkpoint.size:
            raise VerificationError(f"the inclusion proof is for another leaf or tree than entry {seq}")
        path = [_hex(value, "inclusion proof hash") for value in _field(proof, "hashes", list)]
        merkle.verify_inclusion(leaf, seq, checkpoint.size, path, checkpoint.root)
        return VerifiedInclusion(seq, checkpoint.size, checkpoint.root, leaf, key_id, note, entry)

    def verify_consistency(
        self, old_checkpoint_note: str, *, trusted_verifier_key: str, extra_trusted_keys: Sequence[str] = ()
    ) -> VerifiedConsistency:
        """Prove that the log's latest checkpoint extends ``old_checkpoint_note`` (nothing removed or changed).

        The latest checkpoint must be signed by ``trusted_verifier_key``; the old one by that key or one of
        ``extra_trusted_keys``.  A smaller latest tree, another origin or a bad proof raise
        :class:`VerificationError`.
        """
        trusted = _verifier(trusted_verifier_key, "trusted verifier key")
        older_keys = [trusted, *(_verifier(text, "extra trusted key") for text in extra_trusted_keys)]
        old = self._open_checkpoint(old_checkpoint_note, older_keys, "old checkpoint")
        note = self.checkpoint()
        new = self._open_checkpoint(note, [trusted], "latest checkpoint")
        if new.origin != old.origin:
            raise VerificationError("the latest checkpoint is of another log than the old checkpoint")
        if new.size < old.size:
            raise VerificationError(f"the log shrank: latest size {new.size} is below the old size {old.size}")
        if old.size == 0:  # every tree extends the empty tree; RFC 9162 2.1.4 defines no proof for it
            return VerifiedConsistency(0, new.size, old.root, new.root, note)
        path: list[bytes] = []
        if new.size > old.size:
            proof = self.consistency_proof(old.size, new.size)
            if proof.get("from_size") != old.size or proof.get("to_size") != new.size:
                raise VerificationError("the consistency proof is for other tree sizes than the checkpoints")
            path = [_hex(value, "consistency proof hash") for value in _field(proof, "hashes", list)]
        merkle.verify_consistency(old.size, new.size, old.root, new.root, path)
        return VerifiedConsistency(old.size, new.size, old.root, new.root, note)

    def _open_checkpoint(self, note: str, verifiers: Sequence[NoteVerifier], what: str) -> Checkpoint:
        try:
            opened = open_note(note, list(verifiers))
        except VerificationError as exc:
            raise VerificationError(f"{what} is not signed by a trusted key: {exc}") from None
        checkpoint = parse_checkpoint(opened.text)
        if self.log is not None and checkpoint.origin != self.log:
            raise VerificationError(f"{what} is of another log than {self.log}")
        return checkpoint

    # --- HTTP -------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise :class:`ApiError` / :class:`ApiUnreachableError`."""
        query = {name: value for name, value in (params or {}).items() if value is not None}
        if self.log is not None:
            query["log"] = self.log
        content = None if body is None else orjson.dumps(body)
        headers = {"X-API-Key": self._api_key, "Accept": "application/json, application/problem+json, text/plain"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    self._base_url + path,
                    params=query,
                    content=content,
                    headers=headers,
                )
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                if attempt >= self._retries:
                    raise ApiUnreachableError(
                        f"{method} {path}: the API could not be reached after {attempt + 1} attempts "
                        f"({type(exc).__name__})"
                    ) from exc
                delay = self._backoff_delay(attempt)
                logger.warning("retrying after a connection error", extra={"path": path, "error": type(exc).__name__})
            else:
                if response.is_success:
                    return response
                if response.status_code not in RETRY_STATUSES or attempt >= self._retries:
                    raise self._api_error(response)
                retry_after = self._retry_after(response)
                delay = self._backoff_delay(attempt) if retry_after is None else retry_after
                logger.warning("retrying after HTTP %s", response.status_code, extra={"path": path})
            time.sleep(delay)
            attempt += 1

    def _backoff_delay(self, attempt: int) -> float:
        return float(min(self._backoff * 2**attempt, MAX_BACKOFF_SECONDS))

    def _retry_after(self, response: httpx.Response) -> float | None:
        """RFC 9110 10.2.3: delay-seconds or an HTTP-date, capped at ``max_retry_after``; None when absent."""
        value = response.headers.get("Retry-After", "").strip()
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                return None
        if math.isnan(seconds):
            return None
        return min(max(seconds, 0.0), self._max_retry_after)

    def _api_error(self, response: httpx.Response) -> ApiError:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            problem = {"status": response.status_code, "title": response.reason_phrase or "HTTP error"}
        return ApiError(response.status_code, self._redacted(problem))

    def _redacted(self, value: Any) -> Any:
        """``value`` with the API key cut out of every string, should a server or proxy ever echo it."""
        if isinstance(value, str):
            return value.replace(self._api_key, _REDACTED) if self._api_key else value
        if isinstance(value, dict):
            return {self._redacted(k): self._redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(item) for item in value]
        return value


# --- helpers ----------------------------------------------------------------------------------------


def _with_id(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with an ``id``: a random UUID when it has none, so that a resend is recognised."""
    prepared = dict(event)
    if not prepared.get("id"):
        prepared["id"] = str(uuid.uuid4())
    return prepared


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise UnexpectedAnswerError(f"the answer to {response.request.url.path} is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedAnswerError(f"the answer to {response.request.url.path} is not a JSON object")
    return data


def _field(data: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise VerificationError(f"malformed answer: {name} is missing or not a {kind.__name__}")
    return value


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * merkle.HASH_SIZE:
        raise VerificationError(f"malformed {what}: expected {2 * merkle.HASH_SIZE} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise VerificationError(f"malformed {what}: not hex") from None


def _b64(value: str, seq: int) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"entry {seq}: the signature is not base64") from None


def _verifier(text: str, what: str) -> NoteVerifier:
    try:
        return parse_verifier_key(text)
    except VerificationError as exc:
        raise VerificationError(f"{what}: {exc}") from None


def _check_body_matches_entry(body: bytes, entry: Mapping[str, Any], origin: str) -> None:
    """The signed body must be of this log and say what the entry's fields beside it say."""
    seq = entry.get("seq")
    fields = parse_body(body)
    if fields["log"] != origin:
        raise VerificationError(f"entry {seq}: the body is of another log than the checkpoint")
    for body_name, entry_name in _BODY_FIELDS_SHOWN:
        if fields[body_name] != entry.get(entry_name):
            raise VerificationError(f"entry {seq}: {entry_name} differs from the signed body")


def _check_entry_signature(
    seq: int, body: bytes, signature: bytes, key_id: str, verifiers: Sequence[NoteVerifier]
) -> None:
    """The Ed25519 signature over the body, by the trusted key whose C2SP key id the entry names."""
    for verifier in verifiers:
        if verifier.key_id.hex() == key_id.lower():
            if not verifier.verify(body, signature):
                raise VerificationError(f"entry {seq}: the Ed25519 signature over the body does not verify")
            return
    raise VerificationError(f"entry {seq} is signed by key {key_id}, which is not a trusted key")
