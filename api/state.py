"""What the running API holds: settings, the store, one ``Ledger`` per log, the key store."""

from __future__ import annotations

import threading
import time

from api.appender import AsyncAppender
from ledger.access import ApiKey, secret_matches, split_token
from ledger.errors import NotFoundError
from ledger.service import Ledger, utc_now
from ledger.settings import Settings
from ledger.store.api_keys import ApiKeyStore, AuditRunStore
from ledger.store.database import migrate
from ledger.store.recorder import SqlRecorder

KEY_CACHE_SECONDS = 2.0  # a key revoked by another process stops working within this time


class AppState:
    def __init__(self, settings: Settings, recorder: SqlRecorder) -> None:
        self.settings = settings
        self.recorder = recorder
        self.api_keys = ApiKeyStore(recorder.engine)
        self.audit_runs = AuditRunStore(recorder.engine)
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()
        self._migrated = False
        self._appenders: dict[str, AsyncAppender] = {}
        self._key_cache: dict[str, tuple[float, ApiKey, bytes] | tuple[float, None, None]] = {}

    def ensure_schema(self) -> None:
        """Migrate once the database answers (it may have been down when the server started)."""
        if not self._migrated:
            migrate(self.recorder.engine)
            self._migrated = True

    def ledger(self, origin: str) -> Ledger:
        """The ledger of a log (opened once); NotFoundError if the log does not exist."""
        self.ensure_schema()
        with self._lock:
            found = self._ledgers.get(origin)
            if found is None:
                found = Ledger(self.recorder, self.settings, origin)
                self._ledgers[origin] = found
            return found

    def appender(self, ledger: Ledger) -> AsyncAppender:
        """The event-loop side of group commit for one log (created on first use)."""
        found = self._appenders.get(ledger.origin)
        if found is None:
            found = self._appenders[ledger.origin] = AsyncAppender(ledger, self.settings.api_max_queued_appends)
        return found

    def cached_ledger(self, origin: str) -> Ledger | None:
        """The ledger of a log if it is already open (no I/O: safe on the event loop)."""
        return self._ledgers.get(origin)

    def authenticate_if_cached(self, token: str) -> ApiKey | bool | None:
        """Like :meth:`authenticate` without I/O: False when the key must be looked up in the database."""
        parts = split_token(token)
        if parts is None:
            return None
        cached = self._key_cache.get(parts[0])
        if cached is None or cached[0] < time.monotonic():
            return False
        _, key, stored_hash = cached
        if key is None or stored_hash is None or key.revoked_at is not None:
            return None
        return key if secret_matches(parts[1], stored_hash) else None

    def authenticate(self, token: str) -> ApiKey | None:
        """The key a token belongs to, if the token is genuine and the key not revoked."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        now = time.monotonic()
        cached = self._key_cache.get(key_id)
        if cached is None or cached[0] < now:
            self.ensure_schema()
            found = self.api_keys.lookup(key_id)
            cached = (now + KEY_CACHE_SECONDS, *found) if found else (now + KEY_CACHE_SECONDS, None, None)
            self._key_cache[key_id] = cached
        _, key, stored_hash = cached
        if key is None or stored_hash is None or key.revoked_at is not None:
            return None
        return key if secret_matches(secret, stored_hash) else None

    def forget_key(self, key_id: str) -> None:
        self._key_cache.pop(key_id, None)

    def existing_log(self, origin: str) -> Ledger:
        try:
            return self.ledger(origin)
        except NotFoundError:
            raise NotFoundError("no such log") from None

    @staticmethod
    def now() -> str:
        return utc_now()
