"""Subject rights and time rules: objections, restorations, archived records, guardians

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:05:00

Records stored before this revision have no disclosure_until: the policy applies their item's
default period, as it did. None is under objection or archived (nothing could set either).
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import credit_gateway.adapters.storage.types as types

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "runner_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until", types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runner_leases")),
    )
    op.create_table(
        "objections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", types.ExactText(2000), nullable=False),
        sa.Column("evidence_reference", types.ExactText(256), nullable=False),
        sa.Column("filed_at", types.UTCDateTime(), nullable=False),
        sa.Column("due_at", types.UTCDateTime(), nullable=False),
        sa.Column("suspended_at", types.UTCDateTime(), nullable=True),
        sa.Column("answered_at", types.UTCDateTime(), nullable=True),
        sa.Column("answer", types.ExactText(2000), nullable=True),
        sa.Column("replacement_id", sa.String(length=40), nullable=True),
        sa.Column("answer_entry_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["participants.id"],
            name=op.f("fk_objections_provider_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_objections_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_objections_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
    )  # fmt: skip
    for column in ("provider_id", "record_id", "subject_id"):
        op.create_index(op.f(f"ix_objections_{column}"), "objections", [column])
    # What `maintain` scans for, each rule by its state and its time.
    op.create_index("ix_objections_state_due_at", "objections", ["state", "due_at"])
    op.create_index("ix_consents_status_valid_until", "consents", ["status", "valid_until"])
    op.create_table(
        "restorations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("decision_number", types.ExactText(128), nullable=False),
        sa.Column("decided_at", types.UTCDateTime(), nullable=False),
        sa.Column("document", types.Blob, nullable=False),
        sa.Column("signature", types.Blob, nullable=False),
        sa.Column("signer_kid", sa.String(length=128), nullable=False),
        sa.Column("received_at", types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["participants.id"],
            name=op.f("fk_restorations_provider_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_restorations_record_id_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restorations")),
        sa.UniqueConstraint("record_id", name=op.f("uq_restorations_record_id")),
    )  # fmt: skip
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("guardian_subject_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("guardian_signature", types.Blob, nullable=True))
        batch.create_foreign_key(
            batch.f("fk_consents_guardian_subject_id_subjects"),
            "subjects", ["guardian_subject_id"], ["id"],
        )  # fmt: skip
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("disclosure_until", types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("objection_filed_at", types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("archived_at", types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("archive_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("replaces", sa.String(length=40), nullable=True))
        # A pushed record's providing unit's own id (0007 kept only the origin's); unknown for
        # the records pushed before.
        batch.add_column(
            sa.Column("origin_provider_record_id", types.ExactText(128), nullable=True)
        )
    op.create_index("ix_records_state_disclosure_until", "records", ["state", "disclosure_until"])


def downgrade() -> None:
    op.drop_index("ix_records_state_disclosure_until", table_name="records")
    op.drop_index("ix_consents_status_valid_until", table_name="consents")
    with op.batch_alter_table("records") as batch:
        for column in (
            "origin_provider_record_id",
            "replaces", "archive_reason", "archived_at", "objection_filed_at", "disclosure_until"
        ):
            batch.drop_column(column)
    with op.batch_alter_table("consents") as batch:
        batch.drop_constraint(
            batch.f("fk_consents_guardian_subject_id_subjects"), type_="foreignkey"
        )
        batch.drop_column("guardian_signature")
        batch.drop_column("guardian_subject_id")
    op.drop_table("restorations")
    op.drop_table("objections")  # its indexes with it (MariaDB keeps them for the foreign keys)
    op.drop_table("runner_leases")
