"""API key administration.  An admin key manages only keys whose logs are all among its own logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import KeyAdmin, State
from api.errors import ApiProblem
from api.state import AppState
from ledger.access import ApiKey, check_stream_prefixes, parse_role
from ledger.errors import NotFoundError, ValidationError
from schemas.api import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic

router = APIRouter(prefix="/v1", tags=["api-keys"])

KeyId = Annotated[str, Path(min_length=1, max_length=32, description="the key id (the part after lk_)")]


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses={201: {"description": "the key and its token; the token is shown only here and is not stored"}},
)
def create_key(body: ApiKeyCreate, admin: KeyAdmin, state: State, response: Response) -> ApiKeyCreated:
    """Create a key for some of the admin's own logs; publishers need at least one stream prefix."""
    role = parse_role(body.role)
    outside = [log for log in body.logs if log not in admin.logs]
    if outside:
        raise ApiProblem(403, "Forbidden", "an admin key may only create keys for its own logs", kind="forbidden")
    _check_logs_exist(state, body.logs)
    check_stream_prefixes(role, body.stream_prefixes)
    key, token = state.api_keys.create(role, body.logs, body.stream_prefixes, body.name, state.now())
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(key=_public(key), token=token)


@router.get("/api-keys", response_model=list[ApiKeyPublic])
def list_keys(admin: KeyAdmin, state: State) -> list[ApiKeyPublic]:
    """The keys whose logs are all among the admin's logs, revoked ones included (never tokens)."""
    return [_public(key) for key in state.api_keys.list() if _in_scope(admin, key)]


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response)
def revoke_key(key_id: KeyId, admin: KeyAdmin, state: State) -> Response:
    """Revoke a key; it stops working at once here and within seconds in every other server process."""
    try:
        key = state.api_keys.get(key_id)
    except NotFoundError:
        key = None
    if key is None or not _in_scope(admin, key):
        raise NotFoundError("no such API key")
    state.api_keys.revoke(key_id, state.now())
    state.forget_key(key_id)
    return Response(status_code=204)


def _in_scope(admin: ApiKey, key: ApiKey) -> bool:
    return set(key.logs) <= set(admin.logs)


def _public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(key.public())


def _check_logs_exist(state: AppState, logs: list[str]) -> None:
    for origin in logs:
        try:
            state.ledger(origin)
        except NotFoundError:
            raise ValidationError("no such log", field="logs") from None
