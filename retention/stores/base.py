"""The one interface every object store behind the retention layer implements.

An object store keeps sealed evidence snapshots: immutable named blobs, each with the SHA-256 digest computed
when it was written, an optional retention date and a legal hold.  Whether the backing service actually
*enforces* immutability differs per store, so each store reports it honestly through :meth:`worm_report`
rather than the caller assuming it (DORA.md section 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ledger.errors import ValidationError


@dataclass(frozen=True)
class StoredObject:
    """What a store knows about one object, as read back from the store itself."""

    name: str
    size: int
    sha256_hex: str
    retain_until: datetime | None
    legal_hold: bool
    immutability_mode: str | None


@dataclass(frozen=True)
class WormReport:
    """Whether the store enforces write-once-read-many, and why the store believes so."""

    enforced: bool
    detail: str


@runtime_checkable
class ObjectStore(Protocol):
    """Named, write-once objects with digests, retention dates and legal holds."""

    def put(
        self, name: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> StoredObject:
        """Store ``data`` under a new ``name``; raise ``ConflictError`` if the name is taken."""
        ...

    def get(self, name: str) -> bytes:
        """Return the bytes of ``name``; raise ``NotFoundError`` if absent."""
        ...

    def stat(self, name: str) -> StoredObject:
        """Return the object's description as read back from the store; raise ``NotFoundError`` if absent."""
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the objects whose names start with ``prefix``, in name order."""
        ...

    def set_legal_hold(self, name: str, on: bool) -> None:
        """Set or clear the legal hold on ``name``."""
        ...

    def extend_retention(self, name: str, retain_until: datetime) -> None:
        """Move the object's retain-until later (never earlier: ``ConflictError``)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name`` (tests and disposal of unprotected objects); raise ``NotFoundError`` if absent."""
        ...

    def worm_report(self) -> WormReport:
        """Say whether this store enforces immutability, from what it observed."""
        ...


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe relative ``/``-separated path, else raise ``ValidationError``."""
    if not name:
        raise ValidationError("object name is empty", field="name")
    if "\\" in name:
        raise ValidationError("object name must not contain a backslash", field="name")
    if name.startswith("/"):
        raise ValidationError("object name must be relative, not absolute", field="name")
    if "\x00" in name:
        raise ValidationError("object name must not contain NUL", field="name")
    for segment in name.split("/"):
        if segment == "":
            raise ValidationError("object name has an empty path segment", field="name")
        if segment in (".", ".."):
            raise ValidationError("object name must not contain '.' or '..' segments", field="name")
    return name
