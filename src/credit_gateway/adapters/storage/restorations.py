"""The archive's reads and writes on a right (Art 30-31), in the caller's transaction
(services/archive.py): a record as its provider or its subject names it, read under a row lock
so two applications for one record queue; a credit restoration decision kept with the record it
took out of service; and the record archived (storage/archive.archive, which appends the feed's
change) with the audit entry of the transition.

A restoration's row takes its audit entry's id as its own: the decision is known by the entry
that records it, and a resubmission answers that entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage.archive import DELETED, RESTORED, archive
from credit_gateway.adapters.storage.tables import (
    ARCHIVED,
    AuditEntryRow,
    RecordRow,
    RestorationRow,
)
from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.release import StoredRecord
from credit_gateway.domain.restoration import APPLY_DELETION, OUTCOME_DELETED
from credit_gateway.errors import StorageError


@dataclass(frozen=True, slots=True)
class Held:
    """A record read under its row lock: as the release path reads it (payload still sealed),
    its subject, and when and why it left service (None while in service)."""

    record: StoredRecord
    subject_id: str
    archived_at: datetime | None
    archive_reason: str | None


_COLUMNS = (
    RecordRow.id, RecordRow.provider_id, RecordRow.item_code, RecordRow.occurred_at,
    RecordRow.payload_key_id, RecordRow.payload, RecordRow.state, RecordRow.objection_filed_at,
    RecordRow.disclosure_until, RecordRow.subject_id, RecordRow.archived_at,
    RecordRow.archive_reason,
)  # fmt: skip


def provided_record(session: Session, provider_id: str, provider_record_id: str) -> Held | None:
    """The provider's record of its own id, locked; None if it provided none."""
    return _locked(
        session,
        RecordRow.provider_id == provider_id,
        RecordRow.provider_record_id == provider_record_id,
    )


def owned_record(session: Session, subject_id: str, record_id: str) -> Held | None:
    """The record, locked, if it is the subject's; None for another's as for none."""
    return _locked(session, RecordRow.id == record_id, RecordRow.subject_id == subject_id)


def _locked(session: Session, *where: ColumnElement[bool]) -> Held | None:
    row = session.execute(select(*_COLUMNS).where(*where).with_for_update()).first()
    return None if row is None else _held(row)


def _held(row: Any) -> Held:
    rid, provider, item, occurred, key_id, payload, state, objected, until, *rest = row
    subject_id, archived_at, archive_reason = rest
    stored = StoredRecord(
        rid, provider, item, occurred, key_id, bytes(payload), state != ARCHIVED, objected, until
    )
    return Held(stored, subject_id, archived_at, archive_reason)


@dataclass(frozen=True, slots=True)
class Restoration:
    """A restoration decision as kept: its id is its audit entry's."""

    id: str
    document: bytes  # the canonical bytes the provider signed


@dataclass(frozen=True, slots=True)
class NewRestoration:
    decision_number: str
    decided_at: datetime
    document: bytes
    signature: bytes
    signer_kid: str


def restoration_of(session: Session, record_id: str) -> Restoration | None:
    row = session.execute(
        select(RestorationRow.id, RestorationRow.document).where(
            RestorationRow.record_id == record_id
        )
    ).first()
    return None if row is None else Restoration(row.id, bytes(row.document))


def restore(
    session: Session,
    mac_key: bytes,
    held: Held,
    decision: NewRestoration,
    disclosure_until: datetime,
    entry: AuditEntry,
    now: datetime,
) -> None:
    """Keeps the decision with the record, ends its disclosure at `disclosure_until`, and takes
    it out of service (RESTORED), with `entry`."""
    record = held.record
    session.add(
        RestorationRow(
            id=entry.id,
            record_id=record.id,
            provider_id=record.provider_id,
            decision_number=decision.decision_number,
            decided_at=decision.decided_at,
            document=decision.document,
            signature=decision.signature,
            signer_kid=decision.signer_kid,
            received_at=now,
        )
    )
    session.execute(
        update(RecordRow).where(RecordRow.id == record.id).values(disclosure_until=disclosure_until)
    )
    _archived(session, mac_key, held, RESTORED, entry, now)


def delete(session: Session, mac_key: bytes, held: Held, entry: AuditEntry, now: datetime) -> None:
    """Takes the record out of service on its subject's application (DELETED), with `entry`."""
    _archived(session, mac_key, held, DELETED, entry, now)


def _archived(
    session: Session, mac_key: bytes, held: Held, reason: str, entry: AuditEntry, now: datetime
) -> None:
    audit_store.append(session, mac_key, entry)
    record = held.record
    # Last: archive appends the feed's change, whose counter row is locked to the commit.
    done = archive(session, [(record.id, record.item_code, held.subject_id)], reason, now)
    if done != [record.id]:  # the row lock and the in-service check make this unreachable
        raise StorageError(f"record {record.id} left service meanwhile")


def deletion_entry_id(session: Session, held: Held) -> str:
    """The audit entry of a deletion already made: the subject's ApplyDeletion entry of the
    instant the record was archived, of its item. (An entry names items, not records: of two of
    the subject's records of one item deleted at the same microsecond, the first entry.)"""
    rows = session.execute(
        select(AuditEntryRow.id, AuditEntryRow.body)
        .where(
            AuditEntryRow.method == APPLY_DELETION,
            AuditEntryRow.subject_id == held.subject_id,
            AuditEntryRow.outcome == OUTCOME_DELETED,
            AuditEntryRow.at == held.archived_at,
        )
        .order_by(AuditEntryRow.seq)
    ).all()
    for entry_id, body in rows:
        if not body or held.record.item_code in json.loads(body)["items"]:  # pruned: no body
            return str(entry_id)
    return ""
