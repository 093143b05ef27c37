"""records.notice_delivered_at: when the Art 22 written notice reached the subject

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import credit_gateway.adapters.storage.types

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(
            sa.Column(
                "notice_delivered_at",
                credit_gateway.adapters.storage.types.UTCDateTime(),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("notice_delivered_at")
