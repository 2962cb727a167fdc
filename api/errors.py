"""Every error leaves the API as RFC 9457 problem+json with a specific, value-free message."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    LedgerError,
    NotFoundError,
    PublishError,
    StorageUnavailable,
    ValidationError,
    VerificationError,
)
from schemas.api import Problem


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem, "content": {"application/problem+json": {}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Bad request (e.g. a log must be chosen, a bad cursor)"),
    401: _problem("No API key, or an invalid or revoked one"),
    403: _problem("The key's role or stream prefixes do not allow this"),
    404: _problem("Not found (including logs outside the key's scope)"),
    409: _problem("Conflict with stored evidence (reused event id, stale expected_stream_seq)"),
    413: _problem("Request body too large"),
    422: _problem("Invalid input; the problem names the field"),
    429: _problem("Rate limit exceeded; see Retry-After"),
    503: _problem("Storage unavailable; see Retry-After"),
}

PROBLEM_TYPE_BASE = "https://evidence-ledger.example/problems/"
RETRY_AFTER_SECONDS = 5
log = logging.getLogger("ledger.api")


class ApiProblem(Exception):  # noqa: N818 - it is raised as an HTTP problem, not handled as an error family
    """An HTTP problem raised by the API layer itself (authentication, authorisation, limits)."""

    def __init__(
        self, status: int, title: str, detail: str, *, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}


def problem_response(
    request: Request | None,
    status: int,
    title: str,
    detail: str,
    kind: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


_LEDGER_ERRORS: list[tuple[type[LedgerError], int, str, str]] = [
    (ValidationError, 422, "Invalid request", "validation"),
    (ConflictError, 409, "Conflict", "conflict"),
    (NotFoundError, 404, "Not found", "not-found"),
    (VerificationError, 422, "Does not verify", "verification"),
    (IntegrityError, 409, "Evidence integrity problem", "integrity"),
    (StorageUnavailable, 503, "Storage unavailable", "unavailable"),
    (PublishError, 503, "Publishing unavailable", "unavailable"),
]


def ledger_error_response(request: Request, exc: LedgerError) -> JSONResponse:
    for family, status, title, kind in _LEDGER_ERRORS:
        if isinstance(exc, family):
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
            field = getattr(exc, "field", None)
            index = getattr(exc, "index", None)
            return problem_response(request, status, title, str(exc), kind, headers, field=field, index=index)
    if isinstance(exc, ConfigurationError):
        log.error("configuration error", extra={"error": type(exc).__name__})
        return problem_response(
            request, 500, "Server misconfigured", "the server is not configured correctly", "server"
        )
    log.error("unexpected ledger error", extra={"error": type(exc).__name__})
    return problem_response(request, 500, "Internal error", "an internal error occurred", "server")


def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{location or 'request'}: {error.get('type', 'invalid')}")
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ()))
    return problem_response(
        request, 422, "Invalid request", "; ".join(problems) or "invalid request", "validation", field=field or None
    )


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large", 401: "Unauthorized"}
    title = titles.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_methods_for(request))  # every route of the path, not just the first
    return problem_response(request, exc.status_code, title, detail, "http", headers)


def _methods_for(request: Request) -> list[str]:
    """Methods the spec defines for the request's path (every operation of the path, not only the first)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
    return problem_response(request, exc.status, exc.title, exc.detail, exc.kind, exc.headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"error": type(exc).__name__})
    return problem_response(request, 500, "Internal error", "an internal error occurred", "server")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LedgerError, ledger_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(ApiProblem, _api_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
