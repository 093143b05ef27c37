"""The transactional outbox: a record to deliver to a peer platform is an outbox row written in
the record's own transaction (`enqueue`), so a record is never stored without its delivery,
nor a delivery queued for a record that was not stored.

A record is queued for a peer when the peer's platform holds an active exchange agreement, in
force now, that names the push operation and covers the record's item. Whether the record
leaves is decided again at delivery, by policy.decide: by then it may be withheld.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.agreements import parse_document
from credit_gateway.adapters.storage.tables import AgreementRow, OutboxRow, PeerRow, core
from credit_gateway.domain.agreements import AgreementStatus, Operation
from credit_gateway.domain.catalog import CatalogItem
from credit_gateway.domain.ids import new_id

PARTITIONS = 4  # delivery workers: one per partition, across every replica
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def partition_of(subject_id: str) -> int:
    """A subject's records share a partition, so they are delivered in the order stored."""
    return zlib.crc32(subject_id.encode()) % PARTITIONS


def enqueue(
    session: Session, records: Sequence[tuple[str, str, CatalogItem]], now: datetime
) -> None:
    """Queues each (record id, subject id, item) for every peer whose agreement shares it."""
    if not records:
        return
    rows = session.execute(
        select(PeerRow.name, AgreementRow.document)
        .join(AgreementRow, AgreementRow.counterparty_id == PeerRow.participant_id)
        .where(AgreementRow.status == AgreementStatus.ACTIVE.value)
    ).all()
    if not rows:
        return
    sharing = [
        (peer, agreement)
        for peer, document in rows
        if Operation.PUSH in (agreement := parse_document(document)).operations
        and agreement.valid_from <= now < agreement.valid_until
    ]
    entries = [
        {
            "id": new_id("obx"),
            "peer": peer,
            "record_id": record_id,
            "partition": partition_of(subject_id),
            "state": PENDING,
            "attempts": 0,
            "next_at": now,
            "last_error": None,
            "created_at": now,
            "delivered_at": None,
        }
        for record_id, subject_id, item in records
        for peer in dict.fromkeys(p for p, agreement in sharing if agreement.covers_item(item))
    ]
    if entries:
        session.execute(core(OutboxRow).insert(), entries)
