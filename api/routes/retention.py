"""Legal holds (set, list, release) and the retention status of the default object store.

Holds are ledger events (retention/holds.py); the actor recorded is the API key's name.  After a hold is set
or released, the sealed store's legal holds are brought in line as ``ledger hold set|release`` does, after
the response, in a worker thread: a store that cannot be reached leaves the hold recorded, logs a warning,
and the sealer applies the holds in its next cycle.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path
from starlette.concurrency import run_in_threadpool

from api.deps import HoldManager, RetentionReader
from ledger.errors import ConfigurationError, ConflictError, NotFoundError
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.retention import last_entry_seq
from retention.holds import load_holds, release_hold, set_hold
from retention.policy import LegalHold, RetentionPolicy, load_policy
from retention.sealing import SEALED_TYPE, SealConfig, Sealer, snapshot_stream
from retention.status import store_status
from retention.stores.select import describe_spec, open_store
from schemas.api import LegalHoldCreate, LegalHoldPublic, LegalHoldRelease, RetentionStatusPublic
from schemas.timestamps import format_timestamp

router = APIRouter(prefix="/v1", tags=["retention"])
log = logging.getLogger("ledger.api")

HoldId = Annotated[
    str,
    Path(
        min_length=36,
        max_length=36,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="the hold_id POST /v1/holds returned",
    ),
]


@router.post(
    "/holds",
    status_code=201,
    response_model=LegalHoldPublic,
    responses={201: {"description": "the hold is recorded as a legal_hold.set event on ledger/holds"}},
)
def set_legal_hold(body: LegalHoldCreate, scope: HoldManager, background: BackgroundTasks) -> LegalHoldPublic:
    """Set a legal hold: expiry (and erasure) of what it covers is suspended until it is released."""
    key, ledger = scope
    hold = set_hold(
        ledger, scope_kind=body.scope_kind, scope=body.scope, reason=body.reason, actor=key.name, case_id=body.case_id
    )
    background.add_task(catch_up_store, ledger)
    return _public(hold)


@router.get("/holds", response_model=list[LegalHoldPublic])
def list_legal_holds(scope: RetentionReader) -> list[LegalHoldPublic]:
    """Every legal hold of the log, in the order set, released ones included."""
    _, ledger = scope
    return [_public(hold) for hold in load_holds(ledger)]


@router.post(
    "/holds/{hold_id}/release",
    response_model=LegalHoldPublic,
    responses={200: {"description": "the release is recorded as a legal_hold.released event"}},
)
def release_legal_hold(
    hold_id: HoldId, body: LegalHoldRelease, scope: HoldManager, background: BackgroundTasks
) -> LegalHoldPublic:
    """Release an active legal hold (404 for an unknown hold, 409 for one already released)."""
    key, ledger = scope
    try:
        hold = release_hold(ledger, hold_id.lower(), reason=body.reason, actor=key.name)
    except NotFoundError:
        raise NotFoundError("no such legal hold") from None  # the messages below never repeat the id sent
    except ConflictError:
        raise ConflictError("the legal hold is already released") from None
    background.add_task(catch_up_store, ledger)
    return _public(hold)


@router.get(
    "/retention/status",
    response_model=RetentionStatusPublic,
    responses={200: {"description": "the check ran; ok is false when findings name objects that no longer match"}},
)
async def retention_status(scope: RetentionReader) -> RetentionStatusPublic:
    """What the default object store holds for the log, whether it enforces immutability (WORM), and every
    sealed object that is missing, altered, unrecorded or whose checkpoint does not verify.

    Every recorded object is read back (a worker thread does it); 503 when the store cannot be reached.
    """
    _, ledger = scope
    report = await run_in_threadpool(_default_store_status, ledger)
    return RetentionStatusPublic.model_validate(report)


def _default_store_status(ledger: Ledger) -> dict[str, object]:
    settings = ledger.settings
    store = open_store(None, settings)
    status = store_status(ledger, store, settings.seal_store_name, description=describe_spec(None, settings))
    return status.as_dict()


def _public(hold: LegalHold) -> LegalHoldPublic:
    return LegalHoldPublic(
        hold_id=hold.hold_id,
        scope_kind=hold.scope_kind,
        scope=hold.scope,
        actor=hold.actor,
        reason=hold.reason,
        case_id=hold.case_id,
        set_at=format_timestamp(hold.set_at),
        released_at=None if hold.released_at is None else format_timestamp(hold.released_at),
        active=hold.active,
    )


# --- the default store's sealer (also run by ``ledger serve``, see api/app.py) ---------------------------


def retention_policy(settings: Settings) -> RetentionPolicy:
    """LEDGER_RETENTION_POLICY_FILE, or the built-in policy."""
    path = settings.retention_policy_file
    if path is None:
        return load_policy(None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the retention policy {path}: {exc.strerror}") from None
    return load_policy(text)


def default_sealer(ledger: Ledger) -> Sealer:
    """The sealer of the default store (Blob when configured, else the snapshot directory), as `ledger seal`."""
    settings = ledger.settings
    config = SealConfig(
        every_entries=settings.seal_every_entries,
        every_seconds=settings.seal_every_seconds,
        worm=settings.seal_worm,
        policy=retention_policy(settings),
    )
    return Sealer(ledger, open_store(None, settings), settings.seal_store_name, config)


def catch_up_store(ledger: Ledger) -> None:
    """Bring the default store's legal holds (and erased payloads) in line, if anything was ever sealed there.

    Never raises: the hold is recorded already, and the sealer applies it in its next cycle.
    """
    try:
        stream = snapshot_stream(ledger.settings.seal_store_name)
        if last_entry_seq(ledger.recorder.engine, ledger.log_id, stream, SEALED_TYPE) is None:
            return
        report = default_sealer(ledger).catch_up()
    except Exception as exc:
        log.warning(
            "legal holds not yet applied to the sealed store; the sealer will retry",
            extra={"error": type(exc).__name__},
        )
        return
    if report.busy:
        log.info("the sealer is busy; it applies the legal holds in its current cycle")
    if report.holds_changed:
        log.info("legal hold updated on %d sealed objects", len(report.holds_changed))
