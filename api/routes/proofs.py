"""Signed checkpoints (with their witness cosignatures), Merkle proofs (RFC 9162) and the log's public keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse

from api.deps import CosignatureSubmitter, Prover
from ledger.witnessing import accept_cosignature
from schemas.api import (
    ConsistencyProofPublic,
    CosignatureCreate,
    CosignaturePublic,
    InclusionProofPublic,
    PublicKeyPublic,
)

router = APIRouter(prefix="/v1", tags=["proofs"])

MAX_SIZE = 2**53  # sizes and seqs stay integers JSON carries exactly


class NoteResponse(PlainTextResponse):
    """A signed note, exactly as signed (UTF-8 text)."""

    media_type = "text/plain; charset=utf-8"


NOTE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a C2SP tlog-checkpoint in a signed note, byte for byte as signed, followed by the "
        "stored witness cosignatures (C2SP tlog-cosignature lines)",
        "content": {NoteResponse.media_type: {"schema": {"type": "string"}}},
    }
}

TreeSize = Annotated[int | None, Query(ge=1, le=MAX_SIZE, description="tree size (default: the current size)")]


@router.get("/checkpoint", response_class=NoteResponse, responses=NOTE_RESPONSE)
def latest_checkpoint(scope: Prover) -> NoteResponse:
    """The signed checkpoint of the log at its current size, with its witness cosignatures."""
    _, ledger = scope
    return NoteResponse(ledger.cosigned_checkpoint())


@router.get("/checkpoints/{size}", response_class=NoteResponse, responses=NOTE_RESPONSE)
def checkpoint_at(scope: Prover, size: Annotated[int, Path(ge=0, le=MAX_SIZE)]) -> NoteResponse:
    """The signed checkpoint of the log at an earlier size, with its witness cosignatures (404 beyond the log)."""
    _, ledger = scope
    return NoteResponse(ledger.cosigned_checkpoint(size))


@router.post(
    "/checkpoints/{size}/cosignatures",
    status_code=201,
    response_model=CosignaturePublic,
    responses={
        200: {"description": "this witness key had already cosigned the checkpoint: the stored cosignature"},
        201: {"description": "the cosignature verified and is stored; it is published with the checkpoint"},
    },
)
def add_cosignature(
    scope: CosignatureSubmitter,
    size: Annotated[int, Path(ge=0, le=MAX_SIZE)],
    body: CosignatureCreate,
    response: Response,
) -> CosignaturePublic:
    """Store a witness's C2SP tlog-cosignature of the checkpoint of ``size``.

    Accepted only from a witness key in LEDGER_WITNESS_KEYS, verifying over the checkpoint the log signed at
    that size, and timestamped at most a few minutes ahead of the ledger's clock (else 422).
    """
    _, ledger = scope
    record, created = accept_cosignature(ledger, size, body.cosignature)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/checkpoints/{size}"
    return CosignaturePublic(
        size=record.size,
        witness_name=record.witness_name,
        witness_key_id=record.witness_key_id,
        cosignature=record.signature_line,
        created_at=record.created_at,
        created=created,
    )


@router.get("/proofs/inclusion", response_model=InclusionProofPublic)
def inclusion_proof(
    scope: Prover,
    seq: Annotated[int, Query(ge=0, le=MAX_SIZE, description="entry seq (= leaf index)")],
    size: TreeSize = None,
) -> InclusionProofPublic:
    """Audit path of an entry in the tree of the given size (RFC 9162 2.1.3), hashes in hex."""
    _, ledger = scope
    return InclusionProofPublic.model_validate(ledger.inclusion_proof(seq, size).as_dict())


@router.get("/proofs/consistency", response_model=ConsistencyProofPublic)
def consistency_proof(
    scope: Prover,
    from_size: Annotated[int, Query(ge=1, le=MAX_SIZE, description="earlier tree size")],
    to_size: TreeSize = None,
) -> ConsistencyProofPublic:
    """Proof that the tree of ``to_size`` extends the tree of ``from_size`` (RFC 9162 2.1.4), hashes in hex."""
    _, ledger = scope
    return ConsistencyProofPublic.model_validate(ledger.consistency_proof(from_size, to_size).as_dict())


@router.get("/public-keys", response_model=list[PublicKeyPublic])
def public_keys(scope: Prover) -> list[PublicKeyPublic]:
    """Every key that has signed the log, the active key first, each with the seqs and times it covered."""
    _, ledger = scope
    published = ledger.keys()
    return [
        PublicKeyPublic(
            key_id=key.key_id,
            verifier_key=key.verifier_key,
            valid_from_seq=key.valid_from_seq,
            valid_until_seq=key.valid_until_seq,
            valid_from=key.valid_from,
            valid_until=key.valid_until,
            active=key.valid_until_seq is None,
        )
        for key in published
    ]
