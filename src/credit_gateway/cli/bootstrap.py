"""`credit-gateway init`: everything a first run needs, idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.devpki import pki
from credit_gateway.exchange.agreements import create_operator_key
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import utcnow


@dataclass(frozen=True, slots=True)
class InitReport:
    created: tuple[str, ...]


def initialise(settings: Settings) -> InitReport:
    created: list[str] = []
    # An unusable master key is refused before anything is made, so the home stays as it was.
    master = MasterKey.load(settings.master_key_file) if settings.master_key_file.exists() else None
    had_ca = settings.ca_cert.exists()
    pki.init_pki(settings.certs_dir)
    if not had_ca:
        created.append(f"dev PKI in {settings.certs_dir}")
    settings.home.mkdir(parents=True, exist_ok=True)
    if master is None:
        master = MasterKey.create(settings.master_key_file)
        created.append(f"master key {settings.master_key_file}")
    if not settings.operator_key_file.exists():
        create_operator_key(settings.operator_key_file)
        created.append(f"operator key {settings.operator_key_file}")
    db = Database.connect(settings.effective_database_url)
    try:
        migrate.upgrade(db.engine)
        now = utcnow()
        with db.transaction() as session:
            if not key_store.has_signing_key(session):
                key_store.rotate_signing_key(session, master, now)
                created.append("token signing key")
            if not key_store.has_data_key(session):
                key_store.create_data_key(session, master, now)
                created.append("data encryption key")
    finally:
        db.dispose()
    return InitReport(tuple(created))
