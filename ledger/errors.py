"""Every error the ledger raises.

One base class, two families: the *evidence* is wrong (integrity, verification, invalid input) or the
*infrastructure* failed (storage, publishing).  Driver exceptions are translated at the boundary with
``raise ...Error(...) from exc`` so nothing from SQLAlchemy, Kafka or Azure leaks upward.
Messages never carry payload values or personal identifiers.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every ledger error."""


# --- the evidence or the request is bad ------------------------------------------------------------


class EvidenceError(LedgerError):
    """The data presented is wrong (as opposed to the infrastructure failing)."""


class ValidationError(EvidenceError):
    """An event or request failed validation; ``field`` names the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


class CanonicalizationError(ValidationError):
    """A value cannot be expressed as RFC 8785 canonical JSON under the ledger's rules."""


class ConflictError(EvidenceError):
    """The request conflicts with stored state (stale writer, reused event id with other content)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class NotFoundError(EvidenceError):
    """The requested log, entry, checkpoint or key does not exist."""


class IntegrityError(EvidenceError):
    """Stored evidence is inconsistent: a broken chain, a bad signature, a wrong root."""


class VerificationError(EvidenceError):
    """A proof, note, signature or encoded object does not verify or cannot be parsed."""


# --- the infrastructure failed ---------------------------------------------------------------------


class InfrastructureError(LedgerError):
    """An outside service failed; retrying later may succeed."""


class StorageUnavailable(InfrastructureError):  # noqa: N818 - name fixed by the design
    """The database (or another store) cannot be reached or refused the operation."""


class PublishError(InfrastructureError):
    """Publishing to the message bus failed."""


class ConfigurationError(LedgerError):
    """Settings or key material are missing or inconsistent."""
