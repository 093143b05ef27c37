"""Migration 0006: participants registered before AuditService may ask for its proofs, as new
ones may; the identity providers (no token of their own) are left as they were. Both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from support.databases import fresh_database

from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import ParticipantRow


def _scopes(engine: sa.Engine) -> dict[str, str]:
    participants = sa.table("participants", sa.column("id"), sa.column("scopes"))
    with engine.begin() as conn:
        return dict(conn.execute(sa.select(participants.c.id, participants.c.scopes)).all())


def test_0006_gives_registered_participants_the_audit_proof_scope(
    backend: str, tmp_path: Path
) -> None:
    # A database of its own: the session's is shared, and this one goes down and up again.
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        row = {
            "org_code": "", "name": "x", "status": "active", "licence_revoked": False,
            "jwks": "[]", "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }  # fmt: skip
        try:
            migrate.downgrade(engine, "0005")
            with engine.begin() as conn:
                conn.execute(
                    ParticipantRow.__table__.insert(),
                    [
                        {**row, "id": "agency", "kind": "credit-agency", "org_code": "A",
                         "scopes": "discovery.read inquiry.open"},
                        {**row, "id": "unit", "kind": "providing-unit", "org_code": "B",
                         "scopes": "audit.proof submission.write"},
                        {**row, "id": "portal", "kind": "identity-provider", "org_code": "C",
                         "scopes": ""},
                    ],
                )  # fmt: skip
            migrate.upgrade(engine, "0006")
            assert _scopes(engine) == {
                "agency": "audit.proof discovery.read inquiry.open",
                "unit": "audit.proof submission.write",  # had it: unchanged
                "portal": "",
            }
            migrate.downgrade(engine, "0005")  # and back: the scope it added is taken away
            assert _scopes(engine) == {
                "agency": "discovery.read inquiry.open",
                "unit": "submission.write",
                "portal": "",
            }
        finally:
            engine.dispose()
