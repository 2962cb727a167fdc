"""API keys and roles: who may do what, on which logs and streams.  Pure: the SQL lives in store/.

A key is ``lk_<key id>_<secret>``: the key id is public (it appears in logs and metrics), the secret is
32 random bytes shown once and stored only as its SHA-256 (a random 256-bit secret needs no slow hash).
Every key is scoped to a list of logs; a log outside that list does not exist for the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import ValidationError

LEDGER_NAMESPACE = "ledger"  # ledger/keys, ledger/holds, ledger/packs, ledger/snapshots/..: written by the ledger only


def is_ledger_stream(stream: str) -> bool:
    """Streams under ``ledger/`` hold the ledger's own records (keys, holds, packs, seals, retention decisions),
    which its modules trust; no producer from outside may append to them."""
    return stream == LEDGER_NAMESPACE or stream.startswith(LEDGER_NAMESPACE + "/")


_STREAM_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
TOKEN_PREFIX = "lk_"  # noqa: S105 - a prefix, not a secret


class Role(StrEnum):
    PUBLISHER = "publisher"
    OFFICER = "officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    APPEND = "append"
    READ = "read"  # entries, queries, streams (bodies, hashes, signatures)
    READ_PAYLOAD = "read_payload"  # payloads beside the entries (may hold personal data)
    PROOFS = "proofs"  # checkpoints, inclusion and consistency proofs
    AUDIT = "audit"  # run and read server-side audits
    METRICS = "metrics"
    MANAGE_KEYS = "manage_keys"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PUBLISHER: frozenset({Permission.APPEND}),
    Role.OFFICER: frozenset({Permission.READ, Permission.READ_PAYLOAD, Permission.PROOFS}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.PROOFS, Permission.AUDIT}),
    Role.ADMIN: frozenset({Permission.MANAGE_KEYS, Permission.METRICS}),
}


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    role: Role
    logs: tuple[str, ...]
    stream_prefixes: tuple[str, ...]
    name: str
    created_at: str
    revoked_at: str | None = None

    def may(self, permission: Permission) -> bool:
        return self.revoked_at is None and permission in ROLE_PERMISSIONS[self.role]

    def sees_log(self, origin: str) -> bool:
        return self.revoked_at is None and origin in self.logs

    def may_append_to(self, stream: str) -> bool:
        """Publishers append only under their stream prefixes (a prefix ends at a segment boundary), and never to
        the ledger's own streams."""
        return not is_ledger_stream(stream) and any(
            stream == prefix.rstrip("/") or stream.startswith(prefix.rstrip("/") + "/")
            for prefix in self.stream_prefixes
        )

    def public(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "role": str(self.role),
            "logs": list(self.logs),
            "stream_prefixes": list(self.stream_prefixes),
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def new_token() -> tuple[str, str, bytes]:
    """A fresh ``(key id, token, secret hash)``."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secret}", secret_hash(secret)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii", "replace")).digest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed token, else None (never raises on junk)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(key_id) != 16 or not secret or not key_id.isalnum():
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


def check_stream_prefixes(role: Role, prefixes: list[str]) -> None:
    """Publishers append only under their prefixes, so they need one; other roles append nowhere.

    Both ``POST /v1/api-keys`` and ``ledger api-keys create`` apply this rule.
    """
    if role is Role.PUBLISHER and not prefixes:
        raise ValidationError("a publisher key needs at least one stream prefix", field="stream_prefixes")
    if role is not Role.PUBLISHER and prefixes:
        raise ValidationError("only publisher keys take stream prefixes", field="stream_prefixes")
    for prefix in prefixes:
        if len(prefix) > 200 or not _STREAM_PREFIX.fullmatch(prefix.rstrip("/")):
            raise ValidationError(
                "a stream prefix is one or more stream segments such as controls/iam", field="stream_prefixes"
            )
        if is_ledger_stream(prefix.rstrip("/")):
            raise ValidationError(
                "streams under ledger/ are written by the ledger itself; choose another prefix", field="stream_prefixes"
            )


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValidationError(f"unknown role; use one of {', '.join(r.value for r in Role)}", field="role") from None
