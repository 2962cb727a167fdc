"""FastAPI dependencies: the app state, the caller's key, permission checks and the log in scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from api.errors import ApiProblem
from api.state import AppState
from ledger.access import ApiKey, Permission, Role
from ledger.service import Ledger

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (lk_...)")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.ledger_state
    return state


State = Annotated[AppState, Depends(get_state)]


async def current_key(request: Request, state: State, token: Annotated[str | None, Depends(api_key_header)]) -> ApiKey:
    """The caller's key; the database is asked only when the short-lived key cache has no answer.

    Dependencies are ``async`` so that a request does not hop to a worker thread for each of them.
    """
    if not token:
        raise ApiProblem(
            401,
            "Unauthorized",
            "send an API key in the X-API-Key header",
            kind="unauthorized",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    cached = state.authenticate_if_cached(token)
    key = await run_in_threadpool(state.authenticate, token) if cached is False else cached
    if not isinstance(key, ApiKey):
        raise ApiProblem(
            401,
            "Unauthorized",
            "the API key is not valid or was revoked",
            kind="unauthorized",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    request.state.key_id = key.key_id
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


PERMISSION_ACTIONS: dict[Permission, str] = {
    Permission.APPEND: "append events",
    Permission.READ: "read entries",
    Permission.READ_PAYLOAD: "read payloads",
    Permission.PROOFS: "read checkpoints or proofs",
    Permission.AUDIT: "run or read audits",
    Permission.METRICS: "read metrics",
    Permission.MANAGE_KEYS: "manage API keys",
}
"""What each permission lets a key do, for the ``detail`` of a 403 (every permission has an entry)."""


def _a_key_of(role: Role) -> str:
    return f"{'an' if role.value[0] in 'aeiou' else 'a'} {role.value} key"


def requires(permission: Permission) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    async def check(key: CurrentKey) -> ApiKey:
        if not key.may(permission):
            raise ApiProblem(
                403,
                "Forbidden",
                f"{_a_key_of(key.role)} may not {PERMISSION_ACTIONS[permission]}",
                kind="forbidden",
            )
        return key

    return check


def requires_role(action: str, roles: frozenset[Role]) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A check by role, for operations that only some roles perform (legal holds, retention status)."""

    async def check(key: CurrentKey) -> ApiKey:
        if key.role not in roles or key.revoked_at is not None:
            raise ApiProblem(403, "Forbidden", f"{_a_key_of(key.role)} may not {action}", kind="forbidden")
        return key

    return check


LogParam = Annotated[
    str | None,
    Query(description="log origin; needed only when the key covers several logs", max_length=255),
]


def ledger_for(permission: Permission) -> Callable[..., Awaitable[tuple[ApiKey, Ledger]]]:
    """The caller's key (checked for ``permission``) and the ledger of the log it addresses."""
    return _ledger_checked_by(requires(permission))


def ledger_for_roles(action: str, roles: frozenset[Role]) -> Callable[..., Awaitable[tuple[ApiKey, Ledger]]]:
    """The caller's key (one of ``roles``) and the ledger of the log it addresses."""
    return _ledger_checked_by(requires_role(action, roles))


def _ledger_checked_by(
    check: Callable[[ApiKey], Awaitable[ApiKey]],
) -> Callable[..., Awaitable[tuple[ApiKey, Ledger]]]:
    checked_key = Depends(check)  # a default, not an annotation: it closes over the check

    async def resolve(state: State, log: LogParam = None, key: ApiKey = checked_key) -> tuple[ApiKey, Ledger]:
        return key, await ledger_in_scope(state, log, key)

    return resolve


async def ledger_in_scope(state: AppState, log: str | None, key: ApiKey) -> Ledger:
    """The ledger of the log a request addresses (``?log=``, or the key's only log), if the key sees it."""
    if log is None:
        if len(key.logs) != 1:
            raise ApiProblem(
                400, "Log required", "this key covers several logs: choose one with ?log=", kind="log-required"
            )
        log = key.logs[0]
    if not key.sees_log(log):
        raise ApiProblem(404, "Not found", "no such log", kind="not-found")
    ledger = state.cached_ledger(log)
    if ledger is None:
        ledger = await run_in_threadpool(state.existing_log, log)
    return ledger


ApiKeyToken = Annotated[str | None, Depends(api_key_header)]
"""The ``X-API-Key`` header as a route parameter (documented in OpenAPI as the API's security scheme)."""

_may_append = requires(Permission.APPEND)


async def append_scope(request: Request, token: str | None, log: str | None) -> tuple[AppState, ApiKey, Ledger]:
    """The app state, the caller's key (checked for ``append``) and the log's ledger, in one plain call.

    The append routes are the ingest hot path: resolved as a tree of FastAPI dependencies, these steps cost
    about a tenth of a request's CPU; the routes take ``token`` and ``log`` as parameters (so OpenAPI still
    documents both) and call this instead.  The checks and their errors are those of the other routes.
    """
    state = await get_state(request)
    key = await _may_append(await current_key(request, state, token))
    return state, key, await ledger_in_scope(state, log, key)


Reader = Annotated[tuple[ApiKey, Ledger], Depends(ledger_for(Permission.READ))]
Prover = Annotated[tuple[ApiKey, Ledger], Depends(ledger_for(Permission.PROOFS))]
Auditor = Annotated[tuple[ApiKey, Ledger], Depends(ledger_for(Permission.AUDIT))]
HoldManager = Annotated[
    tuple[ApiKey, Ledger], Depends(ledger_for_roles("set or release legal holds", frozenset({Role.OFFICER})))
]
RetentionReader = Annotated[
    tuple[ApiKey, Ledger],
    Depends(ledger_for_roles("read legal holds or retention status", frozenset({Role.OFFICER, Role.AUDITOR}))),
]
DoraClassifier = Annotated[
    tuple[ApiKey, Ledger],
    Depends(
        ledger_for_roles(
            "classify incidents or assess threats", frozenset({Role.OFFICER, Role.AUDITOR, Role.PUBLISHER})
        )
    ),
]
DoraReader = Annotated[
    tuple[ApiKey, Ledger],
    Depends(ledger_for_roles("read incidents or reporting deadlines", frozenset({Role.OFFICER, Role.AUDITOR}))),
]
DoraExporter = Annotated[
    tuple[ApiKey, Ledger], Depends(ledger_for_roles("export incident reports", frozenset({Role.OFFICER})))
]
CosignatureSubmitter = Annotated[
    tuple[ApiKey, Ledger],
    Depends(ledger_for_roles("submit witness cosignatures", frozenset({Role.AUDITOR}))),
]
KeyAdmin = Annotated[ApiKey, Depends(requires(Permission.MANAGE_KEYS))]
MetricsReader = Annotated[ApiKey, Depends(requires(Permission.METRICS))]


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _declared_query_names(route: Any) -> frozenset[str]:
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = frozenset(_query_aliases(getattr(route, "dependant", None)))
        _QUERY_NAMES[id(route)] = names
    return names


def _query_aliases(dependant: Any) -> set[str]:
    """Names of every query parameter of a route, its dependencies' included."""
    if dependant is None:
        return set()
    names = {param.alias for param in dependant.query_params}
    for sub_dependant in dependant.dependencies:
        names |= _query_aliases(sub_dependant)
    return names


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the operation does not define is an error, not something silently ignored."""
    allowed = _declared_query_names(request.scope.get("route"))
    if any(name not in allowed for name in request.query_params):
        raise ApiProblem(
            422,
            "Invalid request",
            "the request has a query parameter this operation does not define",
            kind="validation",
        )
