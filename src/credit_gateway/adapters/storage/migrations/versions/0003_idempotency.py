"""idempotency_keys: a keyed release's answer, for a retry within 24 hours

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import credit_gateway.adapters.storage.types

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("idem_key", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("inquiry_id", sa.String(length=40), nullable=False),
        sa.Column("answer_key_id", sa.String(length=64), nullable=False),
        sa.Column(
            "answer",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", credit_gateway.adapters.storage.types.UTCDateTime(), nullable=False
        ),
        sa.PrimaryKeyConstraint("caller", "method", "idem_key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.create_index(batch.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_index(batch.f("ix_idempotency_keys_created_at"))
    op.drop_table("idempotency_keys")
