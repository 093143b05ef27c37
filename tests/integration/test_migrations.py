"""Migrations: upgrade from empty on every backend, and no drift between tables and migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine
from support.databases import fresh_database

from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import ParticipantRow


def test_upgrade_from_empty_leaves_no_drift(database_url: str) -> None:
    # database_url is migrated from empty by the fixture; `alembic check` is this comparison.
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)  # a second upgrade at head is a no-op
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_0004_gives_registered_participants_the_discovery_scope(
    backend: str, tmp_path: Path
) -> None:
    # A database of its own: the session's is shared, and this one goes down and up again.
    with fresh_database(backend, tmp_path) as url:
        _discovery_scope_migrates_both_ways(make_engine(url))


def _discovery_scope_migrates_both_ways(engine: Engine) -> None:
    participants = sa.table(
        "participants", *(sa.column(c) for c in ("id", "kind", "scopes")),
    )  # fmt: skip
    row = {
        "org_code": "", "name": "x", "status": "active", "licence_revoked": False, "jwks": "[]",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    try:
        migrate.downgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(
                ParticipantRow.__table__.insert(),
                [
                    {**row, "id": "agency", "kind": "credit-agency", "scopes": "inquiry.open",
                     "org_code": "A"},
                    {**row, "id": "portal", "kind": "identity-provider", "scopes": "",
                     "org_code": "B"},
                ],
            )  # fmt: skip
        migrate.upgrade(engine, "0004")
        with engine.begin() as conn:
            scopes = dict(conn.execute(sa.select(participants.c.id, participants.c.scopes)).all())
        assert scopes == {"agency": "discovery.read inquiry.open", "portal": ""}
        migrate.downgrade(engine, "0003")  # and back: the scope it added is taken away again
        with engine.begin() as conn:
            scopes = dict(conn.execute(sa.select(participants.c.id, participants.c.scopes)).all())
        assert scopes == {"agency": "inquiry.open", "portal": ""}
    finally:
        engine.dispose()
