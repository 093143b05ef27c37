"""The gateway's parts, built once from settings: what servicers and the CLI share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.auth.keyring import KeyRing
from credit_gateway.auth.tokens import TokenIssuer, TokenVerifier
from credit_gateway.consent.tokens import ConsentTokenVerifier
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.crypto.master import MasterKey, SubjectLookup
from credit_gateway.crypto.pseudonyms import SubjectPseudonyms
from credit_gateway.domain.catalog import Catalog
from credit_gateway.errors import FailedPrecondition
from credit_gateway.runtime.config import Settings
from credit_gateway.services.audit import AuditLog

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class CatalogCache:
    """The current catalog, re-read when another process loads a new version (checked at most
    every `ttl` seconds, so a replica follows `catalog load` within that time)."""

    db: Database
    ttl: float = 5.0
    _catalog: Catalog | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Catalog:
        now = time.monotonic()
        if self._catalog is None or now - self._checked > self.ttl:
            with self._lock, self.db.transaction(write=False) as session:
                version = catalog_store.current_version(session)
                if version is None:
                    raise FailedPrecondition(
                        "no catalog loaded (run `credit-gateway catalog load`)", reason="NO_CATALOG"
                    )
                if self._catalog is None or self._catalog.version != version:
                    self._catalog = catalog_store.current_catalog(session)
                self._checked = now
        assert self._catalog is not None
        return self._catalog


class Gateway:
    KEY_REFRESH_SECONDS = 10.0  # how soon a replica follows `credit-gateway keys rotate`

    def __init__(
        self, settings: Settings, db: Database | None = None, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db or Database.connect(settings.effective_database_url)
        self.master = MasterKey.load(settings.master_key_file)
        self.subject_lookup = SubjectLookup(self.master)
        self.subject_pseudonyms = SubjectPseudonyms(self.master)
        self.catalog = CatalogCache(self.db)
        self._keys_lock = threading.Lock()
        # The CLI reads keys as it goes; the server refreshes them from a task of its own
        # (`refresh_keys`), so that no call on its event loop waits on the database for them.
        self.inline_key_refresh = True
        self._load_keys()
        # Built once: each reads the keyring through `current_keyring` whenever it signs or
        # verifies, the one way anything here follows a rotation (the OAuth server included).
        s = settings
        self.token_issuer = TokenIssuer(
            self.current_keyring,
            s.effective_issuer,
            s.audience,
            timedelta(seconds=s.access_token_ttl_seconds),
            self.subject_pseudonyms,
        )
        self.token_verifier = TokenVerifier(
            self.current_keyring,
            s.effective_issuer,
            s.audience,
            timedelta(seconds=s.clock_skew_seconds),
            self.subject_pseudonyms,
        )
        self.consent_verifier = ConsentTokenVerifier(self.current_keyring, s.effective_issuer)
        self.audit = AuditLog(
            self.db,
            self.master,
            s.effective_audit_origin,
            clock,
            batch=s.audit_batch,
            retention=timedelta(days=s.audit_retention_days),
        )

    def _load_keys(self) -> None:
        with self.db.transaction(write=False) as session:
            keyring = key_store.load_keyring(session, self.master)
            self.envelope: Envelope = key_store.load_envelope(session, self.master)
        self._keyring = keyring
        self._kids = key_store.live_kids_of(keyring)
        self._keys_checked = time.monotonic()

    def _refresh_keys(self) -> None:
        if self.inline_key_refresh:
            self.refresh_keys()

    def refresh_keys(self) -> None:
        """Follow a rotation made by the CLI or another replica, checking at most every few
        seconds (one small query)."""
        if time.monotonic() - self._keys_checked < self.KEY_REFRESH_SECONDS:
            return
        with self._keys_lock:
            if time.monotonic() - self._keys_checked < self.KEY_REFRESH_SECONDS:
                return
            with self.db.transaction(write=False) as session:
                kids = key_store.live_kids(session)
            if kids != self._kids:
                self._load_keys()
            self._keys_checked = time.monotonic()

    def current_keyring(self) -> KeyRing:
        """The keyring as of now: everything that signs or verifies with the gateway's keys
        reads it through here, on every use."""
        self._refresh_keys()
        return self._keyring

    @property
    def keyring(self) -> KeyRing:
        return self.current_keyring()

    def reload_keys(self) -> None:
        with self._keys_lock:
            self._load_keys()

    def close(self) -> None:
        self.db.dispose()
