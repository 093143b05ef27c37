"""Migrations: upgrade from empty on every backend, and no drift between tables and migrations."""

from __future__ import annotations

from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import make_engine


def test_upgrade_from_empty_leaves_no_drift(database_url: str) -> None:
    # database_url is migrated from empty by the fixture; `alembic check` is this comparison.
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)  # a second upgrade at head is a no-op
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()
