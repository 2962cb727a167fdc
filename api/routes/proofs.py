"""Signed checkpoints, Merkle proofs (RFC 9162) and the log's public keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from api.deps import Prover
from schemas.api import ConsistencyProofPublic, InclusionProofPublic, PublicKeyPublic

router = APIRouter(prefix="/v1", tags=["proofs"])

MAX_SIZE = 2**53  # sizes and seqs stay integers JSON carries exactly


class NoteResponse(PlainTextResponse):
    """A signed note, exactly as signed (UTF-8 text)."""

    media_type = "text/plain; charset=utf-8"


NOTE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a C2SP tlog-checkpoint in a signed note, byte for byte as signed",
        "content": {NoteResponse.media_type: {"schema": {"type": "string"}}},
    }
}

TreeSize = Annotated[int | None, Query(ge=1, le=MAX_SIZE, description="tree size (default: the current size)")]


@router.get("/checkpoint", response_class=NoteResponse, responses=NOTE_RESPONSE)
def latest_checkpoint(scope: Prover) -> NoteResponse:
    """The signed checkpoint of the log at its current size."""
    _, ledger = scope
    return NoteResponse(ledger.checkpoint())


@router.get("/checkpoints/{size}", response_class=NoteResponse, responses=NOTE_RESPONSE)
def checkpoint_at(scope: Prover, size: Annotated[int, Path(ge=0, le=MAX_SIZE)]) -> NoteResponse:
    """The signed checkpoint of the log at an earlier size (404 beyond the current size)."""
    _, ledger = scope
    return NoteResponse(ledger.checkpoint(size))


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
