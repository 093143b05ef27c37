"""The gateway's parts, built once from settings: what servicers and the CLI share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from credit_gateway.auth.keyring import KeyRing
from credit_gateway.auth.tokens import TokenIssuer, TokenVerifier
from credit_gateway.config import Settings
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.crypto.master import MasterKey, SubjectLookup
from credit_gateway.domain.catalog import Catalog
from credit_gateway.errors import FailedPrecondition
from credit_gateway.storage import catalog as catalog_store
from credit_gateway.storage import keys as key_store
from credit_gateway.storage.db import Database

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
    def __init__(
        self, settings: Settings, db: Database | None = None, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db or Database.connect(settings.effective_database_url)
        self.master = MasterKey.load(settings.master_key_file)
        self.subject_lookup = SubjectLookup(self.master)
        self.catalog = CatalogCache(self.db)
        self.reload_keys()

    def reload_keys(self) -> None:
        with self.db.transaction(write=False) as session:
            self.keyring: KeyRing = key_store.load_keyring(session, self.master)
            self.envelope: Envelope = key_store.load_envelope(session, self.master)
        s = self.settings
        self.token_issuer = TokenIssuer(
            self.keyring,
            s.effective_issuer,
            s.audience,
            timedelta(seconds=s.access_token_ttl_seconds),
        )
        self.token_verifier = TokenVerifier(
            self.keyring, s.effective_issuer, s.audience, timedelta(seconds=s.clock_skew_seconds)
        )

    def close(self) -> None:
        self.db.dispose()
