"""The audit log's Merkle tree: leaf indexes, nodes, signed checkpoints, witnessed logs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00

Entries already in audit_entries get their leaf indexes from the integrator, in seq order, like
any entry committed after this migration.
"""

from datetime import UTC, datetime
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import credit_gateway.adapters.storage.types as types

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("leaf_index", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("pruned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("mac", types.Hash, nullable=True))
        batch.add_column(
            sa.Column("quarantined", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_unique_constraint("uq_audit_entries_leaf_index", ["leaf_index"])
    tree = op.create_table(
        "audit_tree",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", types.Hash, nullable=False),
        sa.Column("updated_at", types.UTCDateTime(), nullable=False),
        sa.Column("legacy_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree")),
    )
    # Entries written before this revision carry no MAC: the integrator takes them as they are.
    entries = sa.table("audit_entries", sa.column("seq", sa.BigInteger))
    legacy = op.get_bind().scalar(sa.select(sa.func.coalesce(sa.func.max(entries.c.seq), 0)))
    now = datetime.now(UTC)
    op.bulk_insert(
        tree,
        [{"id": 1, "size": 0, "root": EMPTY_ROOT, "updated_at": now, "legacy_seq": legacy}],
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", types.Hash, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    op.create_index(op.f("ix_audit_nodes_hash"), "audit_nodes", ["hash"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", types.Hash, nullable=False),
        sa.Column("note", types.Blob, nullable=False),
        sa.Column("created_at", types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "witnessed_logs",
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", types.Hash, nullable=False),
        sa.Column("updated_at", types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_witnessed_logs")),
    )


def downgrade() -> None:
    op.drop_table("witnessed_logs")
    op.drop_table("audit_checkpoints")
    op.drop_index(op.f("ix_audit_nodes_hash"), table_name="audit_nodes")
    op.drop_table("audit_nodes")
    op.drop_table("audit_tree")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_constraint("uq_audit_entries_leaf_index", type_="unique")
        batch.drop_column("quarantined")
        batch.drop_column("mac")
        batch.drop_column("pruned")
        batch.drop_column("leaf_index")
