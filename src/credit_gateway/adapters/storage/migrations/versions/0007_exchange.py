"""Exchange: pushed records' origin, the change feed, peers and the outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00

Records stored before this revision were submitted here: no origin. The change feed starts
empty (a subscriber from an empty cursor takes changes from now on; what exists already, it
pulls). The national and provincial platforms registered before it get the exchange scopes,
as new ones do.
"""

from collections.abc import Callable
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import credit_gateway.adapters.storage.types as types

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EXCHANGE_SCOPES = ("exchange.feed", "exchange.pull", "exchange.push")
PLATFORMS = ("national-platform", "provincial-platform")


# As 0004's: a migration stands alone, so that what it did never changes with another's edit.
def _scopes(change: Callable[[list[str]], list[str]]) -> None:
    participants = sa.table(
        "participants", sa.column("id", sa.String), sa.column("kind", sa.String),
        sa.column("scopes", sa.Text),
    )  # fmt: skip
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(participants.c.id, participants.c.scopes).where(
            participants.c.kind.in_(PLATFORMS)
        )
    ).all()
    for participant_id, scopes in rows:
        new = " ".join(change(scopes.split()))
        if new != scopes:
            bind.execute(
                participants.update().where(participants.c.id == participant_id).values(scopes=new)
            )


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("origin_provider_code", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("provider_jwks", sa.Text(), nullable=True))
        batch.add_column(sa.Column("origin_signature", types.Blob, nullable=True))
        batch.add_column(sa.Column("origin_kid", sa.String(length=128), nullable=True))
    head = op.create_table(
        "feed_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("floor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "floor": 0}])
    op.create_table(
        "record_changes",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("replaces", sa.String(length=40), nullable=True),
        sa.Column("at", types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_record_changes_record_id_records")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_record_changes")),
    )
    op.create_table(
        "peers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("grpc_address", sa.String(length=255), nullable=False),
        sa.Column("token_url", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_key_id", sa.String(length=64), nullable=False),
        sa.Column("key_sealed", types.Blob, nullable=False),
        sa.Column("created_at", types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participants.id"],
            name=op.f("fk_peers_participant_id_participants"),
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("name", name=op.f("pk_peers")),
        sa.UniqueConstraint("participant_id", name=op.f("uq_peers_participant_id")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", types.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", types.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["peer"], ["peers.name"], name=op.f("fk_outbox_peer_peers")),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_outbox_record_id_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "partition", "next_at"])
    op.create_table(
        "outbox_leases",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until", types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_outbox_leases")),
    )
    _scopes(lambda scopes: sorted({*scopes, *EXCHANGE_SCOPES}))


def downgrade() -> None:
    _scopes(lambda scopes: [s for s in scopes if s not in EXCHANGE_SCOPES])
    op.drop_table("outbox_leases")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("peers")
    op.drop_table("record_changes")
    op.drop_table("feed_head")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("origin_kid")
        batch.drop_column("origin_signature")
        batch.drop_column("provider_jwks")
        batch.drop_column("origin_provider_code")
