"""Evidence packs for compliance officers: export one (``POST /v1/packs``) and download it (``GET /v1/packs/{id}``).

The pack is built by :func:`ledger.packs.build.export_pack` in a worker thread, written under
``<LEDGER_DATA_DIR>/packs/<pack id>.zip``, and its export is recorded as a ``pack.exported`` event (exporter =
the API key's name, the scope, the seq range and the SHA-256 of the ZIP).  The pack id is chosen by the builder,
so the ZIP is written under a temporary name in the same directory and renamed once the builder returns.

A download is served only for a pack whose ``pack.exported`` event is in the caller's log, and only while the
file still has the SHA-256 that event recorded (409 otherwise): the packs of every log share one directory.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ledger_for_roles
from api.routes.retention import retention_policy
from ledger.access import ApiKey, Role
from ledger.errors import IntegrityError, NotFoundError, ValidationError
from ledger.packs.build import PACK_EXPORTED, PACK_STREAM, PackResult, PackScope, export_pack
from ledger.service import Ledger
from ledger.store.records import EntryFilter
from schemas.api import PackCreate, PackCreatedPublic
from schemas.timestamps import parse_timestamp

router = APIRouter(prefix="/v1", tags=["packs"])

PACK_DIRECTORY = "packs"
ZIP_MEDIA_TYPE = "application/zip"

PackOfficer = Annotated[
    tuple[ApiKey, Ledger], Depends(ledger_for_roles("export or download evidence packs", frozenset({Role.OFFICER})))
]
PackId = Annotated[
    str,
    Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$", description="the pack_id POST /v1/packs returned"),
]


def pack_directory(ledger: Ledger) -> FilePath:
    return ledger.settings.data_dir / PACK_DIRECTORY


@router.post(
    "/packs",
    status_code=201,
    response_model=PackCreatedPublic,
    responses={201: {"description": "the pack is written and its export recorded as a pack.exported event"}},
)
async def create_pack(body: PackCreate, scope: PackOfficer, response: Response) -> PackCreatedPublic:
    """Export an evidence pack: the entries in scope disclosed, the rest of their seq range as leaf hashes, the
    range and inclusion proofs, the signed checkpoint (and the consistency proof from ``auditor_checkpoint``),
    keys, incident dossiers, retention state, a PDF report and the offline verifier.

    422 for a bad or empty scope (naming the field), 404 when no entry of the log is in scope."""
    key, ledger = scope
    pack_scope = _scope(body)
    result = await run_in_threadpool(_export, ledger, pack_scope, key.name, body.auditor_checkpoint)
    download = f"/v1/packs/{result.pack_id}"
    response.headers["Location"] = download
    return PackCreatedPublic(
        pack_id=result.pack_id,
        sha256=result.sha256,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        tree_size=result.tree_size,
        disclosed=result.disclosed,
        hidden=result.hidden,
        export_event_seq=result.export_event_seq,
        download=download,
    )


@router.get(
    "/packs/{pack_id}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the pack (a ZIP file); verify it offline with its verify.py and the log's public key",
            "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def download_pack(pack_id: PackId, scope: PackOfficer) -> FileResponse:
    """The ZIP of a pack exported from this log (404 for a pack of another log or one never exported)."""
    _, ledger = scope
    path, digest = await run_in_threadpool(_stored_pack, ledger, pack_id)
    return FileResponse(
        path,
        media_type=ZIP_MEDIA_TYPE,
        filename=f"evidence-pack-{pack_id}.zip",
        headers={"ETag": f'"{digest}"'},
    )


def _scope(body: PackCreate) -> PackScope:
    if body.occurred_since is not None and body.occurred_until is not None:
        since = parse_timestamp(body.occurred_since, field="occurred_since")
        if parse_timestamp(body.occurred_until, field="occurred_until") <= since:
            raise ValidationError("occurred_until must be later than occurred_since", field="occurred_until")
    return PackScope(
        streams=tuple(body.streams),
        stream_prefixes=tuple(body.stream_prefixes),
        types=tuple(body.types),
        incidents=tuple(body.incidents),
        subject=body.subject,
        occurred_since=body.occurred_since,
        occurred_until=body.occurred_until,
    )


def _export(ledger: Ledger, scope: PackScope, exporter: str, auditor_checkpoint: str | None) -> PackResult:
    directory = pack_directory(ledger)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".export-{uuid.uuid4().hex}.zip.part"
    try:
        result = export_pack(
            ledger,
            staging,
            scope,
            exporter=exporter,
            auditor_checkpoint=auditor_checkpoint,
            policy=retention_policy(ledger.settings),
        )
    except ValidationError as exc:
        staging.unlink(missing_ok=True)
        if auditor_checkpoint is not None and exc.field is None and "auditor's checkpoint" in str(exc):
            raise ValidationError(str(exc), field="auditor_checkpoint") from None
        raise
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    final = directory / f"{result.pack_id}.zip"
    os.replace(staging, final)  # same directory: atomic; the bytes (and so the recorded SHA-256) are unchanged
    result.path = final
    return result


def _stored_pack(ledger: Ledger, pack_id: str) -> tuple[FilePath, str]:
    recorded = _recorded_digest(ledger, pack_id)
    path = pack_directory(ledger) / f"{pack_id}.zip"
    if recorded is None or not path.is_file():
        raise NotFoundError("no such pack")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != recorded:
        raise IntegrityError("the stored pack no longer has the SHA-256 its pack.exported event records")
    return path, recorded


def _recorded_digest(ledger: Ledger, pack_id: str) -> str | None:
    """The ``pack_sha256`` of the pack's ``pack.exported`` event in this log, if there is one."""
    seqs = [entry.seq for entry in ledger.entries(EntryFilter(stream=PACK_STREAM, type=PACK_EXPORTED))]
    payloads = ledger.recorder.payloads(ledger.log_id, seqs) if seqs else {}
    for seq in seqs:
        record = payloads.get(seq)
        if record is None or record.payload is None:
            continue
        data: Any = orjson.loads(record.payload)
        if isinstance(data, dict) and data.get("pack_id") == pack_id and isinstance(data.get("pack_sha256"), str):
            return str(data["pack_sha256"])
    return None
