"""Keys callers choose compare byte for byte on MariaDB; registered participants may discover

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:30:00

records.provider_record_id and idempotency_keys.idem_key were utf8mb4_general_ci on MariaDB, so
record ids differing in case, accents or a trailing space were one record (the second came back
CONFLICTING_RESUBMISSION) and two idempotency keys could be one. SQLite and PostgreSQL already
compare bytes.

DiscoveryService's scope (discovery.read) is granted to every participant kind but the
identity providers; participants registered before it existed get it here, as new ones do.
"""

from collections.abc import Callable
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_EXACT = "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL"
_GENERAL = "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL"
DISCOVERY = "discovery.read"


def _collations(definition: str) -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute(f"ALTER TABLE records MODIFY provider_record_id {definition}")
        op.execute(f"ALTER TABLE idempotency_keys MODIFY idem_key {definition}")


def _scopes(change: Callable[[list[str]], list[str]]) -> None:
    participants = sa.table(
        "participants", sa.column("id", sa.String), sa.column("kind", sa.String),
        sa.column("scopes", sa.Text),
    )  # fmt: skip
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(participants.c.id, participants.c.scopes).where(
            participants.c.kind != "identity-provider"
        )
    ).all()
    for participant_id, scopes in rows:
        new = " ".join(change(scopes.split()))
        if new != scopes:
            bind.execute(
                participants.update()
                .where(participants.c.id == participant_id)
                .values(scopes=new)
            )


def upgrade() -> None:
    _collations(_EXACT)
    _scopes(lambda scopes: scopes if DISCOVERY in scopes else sorted([*scopes, DISCOVERY]))


def downgrade() -> None:
    _scopes(lambda scopes: [s for s in scopes if s != DISCOVERY])
    _collations(_GENERAL)
