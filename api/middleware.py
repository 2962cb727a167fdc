"""Request protection as plain ASGI middleware: request ids, security headers, limits, CORS, access logs, metrics.

From the outside in (``install_middleware``):

1. ``RequestContextMiddleware``: gives every request an id, adds the security headers to every response,
   records the request metrics and writes one JSON access log line; it also answers 500 itself when the app
   fails before responding, so even that answer carries the headers.
2. Starlette's ``CORSMiddleware``, only when ``api_cors_origins`` lists origins (so 413/429 answers carry CORS
   headers too and a browser can read them).
3. ``RequestLimitsMiddleware``: the per-key rate limit and the request body limit.

Access log lines hold the request id, method, route template (or the path without its query string when no
route matched), status, duration and public key id: never bodies, query strings, tokens or payload values.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import secrets
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response
from api.metrics import UNMATCHED_ROUTE, ApiMetrics, install_metrics
from ledger.access import split_token
from ledger.randomness import random_hex
from ledger.settings import Settings

access_log = logging.getLogger("ledger.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
EXEMPT_PATHS = frozenset({"/health", "/live", "/ready"})  # probes are never rate limited
MAX_LOGGED_PATH = 200

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The interactive docs load Swagger UI / ReDoc from jsDelivr; their one inline bootstrap script is allowed by hash.
_DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net{script_hashes}; "
    "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_MAX_DOCS_PAGE = 1 << 20
HSTS = "max-age=31536000"

_COMMON_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the protection middleware to ``app`` and create its metrics (``app.state.metrics``)."""
    metrics = install_metrics(app)
    # add_middleware puts each new middleware outside the ones added before it.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.api_max_body_bytes,
        rate_per_second=settings.api_rate_limit_per_second,
        burst=settings.api_rate_limit_burst,
        max_in_flight=settings.api_max_concurrency,
    )
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "Location"],
            allow_credentials=False,  # keys travel in a header, never in cookies
            max_age=600,
        )
    docs_paths = frozenset(path for path in (app.docs_url, app.redoc_url) if path)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, docs_paths=docs_paths)


# --- request id, security headers, access log, metrics ----------------------------------------------------------


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is well formed (<= 64 of ``[A-Za-z0-9._-]``), else a new one."""
    incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if incoming is not None and _REQUEST_ID.match(incoming):
        return incoming
    return random_hex(16)


def route_template(scope: Scope) -> str | None:
    """The path template of the route that answered (``/v1/entries/{seq}``), if one did."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def docs_csp(page: bytes) -> str:
    """The docs CSP, allowing exactly the inline scripts of this page by their SHA-256."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
        for attributes, body in _INLINE_SCRIPT.findall(page)
        if b"src=" not in attributes.lower()
    )
    return _DOCS_CSP.format(script_hashes=hashes)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        is_docs = path in self.docs_paths
        headers_to_add = self._headers_for(path, tls=scope.get("scheme") == "https")
        status = 499  # what the log says if the client goes away before any answer (nginx's convention)
        response_started = False
        held: list[Message] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in headers_to_add:
                    headers.setdefault(name, value)
                headers[REQUEST_ID_HEADER] = request_id
                if is_docs:
                    held.append(message)
                    return
            elif is_docs and message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body", False) and sum(len(m.get("body", b"")) for m in held) < _MAX_DOCS_PAGE:
                    return
                await _send_docs_page(held, send)
                held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not response_started:  # answer here so the 500 carries the headers; errors.py logs the error
                response = problem_response(
                    Request(scope), 500, "Internal error", "an internal error occurred", "server"
                )
                await response(scope, receive, send_with_headers)
            raise
        finally:
            self._finish(scope, status, time.perf_counter() - started, request_id)

    def _headers_for(self, path: str, *, tls: bool) -> list[tuple[str, str]]:
        headers = list(_COMMON_HEADERS)
        if path not in self.docs_paths:
            headers.append(("Content-Security-Policy", API_CSP))
            headers.append(("Cache-Control", "no-store"))
        if tls:
            headers.append(("Strict-Transport-Security", HSTS))
        return headers

    def _finish(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        template = route_template(scope)
        method: str = scope["method"]
        self.metrics.record_request(method, template or UNMATCHED_ROUTE, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            key_id = scope.get("state", {}).get("key_id")
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method[:16],
                    "route": template or scope["path"][:MAX_LOGGED_PATH],  # scope["path"] never holds the query
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "key_id": key_id if isinstance(key_id, str) else None,
                },
            )


async def _send_docs_page(messages: list[Message], send: Send) -> None:
    """Send a held docs page with a CSP naming its inline scripts' hashes."""
    start, bodies = messages[0], messages[1:]
    page = b"".join(m.get("body", b"") for m in bodies)
    MutableHeaders(scope=start)["Content-Security-Policy"] = docs_csp(page)
    await send(start)
    for message in bodies:
        await send(message)


# --- rate limit and body limit -----------------------------------------------------------------------------------


class TokenBuckets:
    """Token buckets by name: ``rate`` tokens a second up to ``burst``; idle (full) buckets are dropped.

    Buckets are kept in least-recently-used order, so the oldest is always first: it is dropped when it has been
    idle long enough to be full again (forgetting it changes nothing) or when ``max_buckets`` is reached.
    """

    def __init__(
        self, rate: float, burst: int, *, max_buckets: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self._clock = clock
        self._refill_seconds = self.burst / rate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: str) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be."""
        now = self._clock()
        self._evict(now)
        found = self._buckets.pop(name, None)
        tokens = self.burst if found is None else min(self.burst, found[0] + (now - found[1]) * self.rate)
        if tokens >= 1.0:
            self._buckets[name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, (_, last_used) = next(iter(buckets.items()))
            if len(buckets) < self.max_buckets and now - last_used < self._refill_seconds:
                return
            buckets.popitem(last=False)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body grows past the limit; errors.py turns it into a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class RequestLimitsMiddleware:
    """The per-key rate limit, then the body limit (declared Content-Length, and bytes actually received).

    A request is charged to its API key's bucket once that exact token has authenticated in this process; until
    then (no key, a malformed key, a key id with a wrong secret) it is charged to the client address. So
    inventing key ids does not buy fresh buckets, and knowing a key id does not let anyone drain its bucket.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        rate_per_second: float,
        burst: int,
        *,
        max_buckets: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int | None = None,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.max_body_bytes = max_body_bytes
        self.buckets = TokenBuckets(rate_per_second, burst, max_buckets=max_buckets, clock=clock)
        self._known_tokens: OrderedDict[bytes, str] = OrderedDict()  # token digest -> key id
        self._max_known = max_buckets
        self._salt = secrets.token_bytes(16)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            # overloaded: refusing costs far less than serving, so the server keeps answering instead of timing out
            await _problem(
                scope, receive, send, 503, "Server busy", "the server is at capacity; retry later", "busy",
                {"Retry-After": "1"},
            )  # fmt: skip
            return
        self.in_flight += 1
        try:
            await self._limited(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        digest = self._token_digest(headers.get("x-api-key"))
        wait = self.buckets.take(self._bucket_name(scope, digest))
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            await _problem(
                scope, receive, send, 429, "Too many requests", "the rate limit was exceeded; retry later",
                "rate-limited", {"Retry-After": retry_after},
            )  # fmt: skip
            return
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await _too_large(scope, receive, send, self.max_body_bytes)
            return
        await self._call_with_body_limit(scope, receive, send)
        if digest is not None:
            self._remember(digest, scope.get("state", {}).get("key_id"))

    async def _call_with_body_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            if received > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:  # read outside the app's exception handlers
            if response_started:
                raise
            await _too_large(scope, receive, send, limit)

    def _token_digest(self, token: str | None) -> bytes | None:
        if not token or split_token(token) is None:
            return None
        return hashlib.blake2b(token.encode("latin-1", "replace"), key=self._salt, digest_size=16).digest()

    def _bucket_name(self, scope: Scope, digest: bytes | None) -> str:
        if digest is not None:
            key_id = self._known_tokens.get(digest)
            if key_id is not None:
                self._known_tokens.move_to_end(digest)
                return "key:" + key_id
        client = scope.get("client")
        return "ip:" + (str(client[0]) if client else "unknown")

    def _remember(self, digest: bytes, key_id: Any) -> None:
        if not isinstance(key_id, str) or digest in self._known_tokens:
            return
        self._known_tokens[digest] = key_id
        while len(self._known_tokens) > self._max_known:
            self._known_tokens.popitem(last=False)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    detail = f"the request body is larger than {limit} bytes"
    await _problem(scope, receive, send, 413, "Payload too large", detail, "http")


async def _problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    title: str,
    detail: str,
    kind: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = problem_response(Request(scope), status, title, detail, kind, headers)
    await response(scope, receive, send)


# --- JSON logs ---------------------------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the process id (``ledger serve --workers N`` runs
    several) and the record's ``extra`` fields.

    An exception is reported by its type and stack only: exception messages can quote values (SQL parameters,
    request content), so they are left out.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            error_type, _, trace = record.exc_info
            line["error_type"] = f"{error_type.__module__}.{error_type.__qualname__}"
            line["stack"] = "".join(traceback.format_tb(trace)).rstrip()
        return orjson.dumps(line, default=str).decode()


def _utc_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_HANDLER_NAME = "ledger-json"


def configure_json_logging(level: int | str = logging.INFO) -> None:
    """Send every log record to stderr as one JSON line (call once, before starting the server).

    uvicorn's own access log is switched off, since it writes the raw request line with its query string:
    ``ledger.api.access`` replaces it.  Start uvicorn with ``log_config=None`` (so it keeps this setup) and
    ``access_log=False``.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error"):
        server_log = logging.getLogger(name)
        server_log.handlers.clear()
        server_log.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
