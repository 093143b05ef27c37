"""Registered participants may ask for the audit log's checkpoints and proofs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00

AuditService's proofs and checkpoints need the scope audit.proof, which every participant kind
but the identity providers (they get no token of their own) is registered with; participants
registered before it existed get it here, as new ones do. audit.read (the entries) is for
auditors, a kind no participant registered before could be, so it is granted to nobody here.
"""

from collections.abc import Callable
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

AUDIT_PROOF = "audit.proof"


# As 0004's: a migration stands alone, so that what it did never changes with another's edit.
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
                participants.update().where(participants.c.id == participant_id).values(scopes=new)
            )


def upgrade() -> None:
    _scopes(lambda scopes: scopes if AUDIT_PROOF in scopes else sorted([*scopes, AUDIT_PROOF]))


def downgrade() -> None:
    _scopes(lambda scopes: [s for s in scopes if s != AUDIT_PROOF])
