"""The change feed in storage: every change to a record is a row of record_changes, written in
the change's own transaction (`append`).

Its seq comes from the one feed_head row, read FOR UPDATE: a transaction that appends holds
that row's lock until it commits, so a later appender waits for it, and changes become
visible in seq order. A subscriber that has read every change up to seq N can so ask for
`seq > N` and never miss one committed later with a smaller seq. (A database sequence would not
do: its numbers are taken at insert, and commit in any order.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import bulk
from credit_gateway.adapters.storage.tables import (
    ARCHIVED,
    FeedHeadRow,
    RecordChangeRow,
    RecordRow,
    SubjectRow,
    core,
)
from credit_gateway.domain.exchange import ChangeKind, PendingChange
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.policy import RecordState
from credit_gateway.domain.release import StoredRecord

HEAD_ROW = 1


@dataclass(frozen=True, slots=True)
class Change:
    record_id: str
    item_code: str
    subject_id: str
    kind: str  # new, corrected, suspended, restored, deleted
    replaces: str | None = None


def append(session: Session, changes: Sequence[Change], now: datetime) -> None:
    """Appends ``changes`` in order; call it last in the transaction (it holds the feed's lock
    until the commit)."""
    if not changes:
        return
    head = session.execute(
        select(FeedHeadRow).where(FeedHeadRow.id == HEAD_ROW).with_for_update()
    ).scalar_one_or_none()
    if head is None:  # a database made from the tables, not the migrations: make the row
        head = FeedHeadRow(id=HEAD_ROW, seq=0, floor=0)
        session.add(head)
        session.flush()
    first = int(head.seq) + 1
    head.seq = first + len(changes) - 1
    rows = [
        (first + n, c.record_id, c.item_code, c.subject_id, c.kind, c.replaces, now)
        for n, c in enumerate(changes)
    ]
    bulk.insert_many(session, core(RecordChangeRow), _CHANGE_COLUMNS, rows)


_CHANGE_COLUMNS = ("seq", "record_id", "item_code", "subject_id", "kind", "replaces", "at")


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """A record as the feed and the delivery judge and send it: its state for the policy, its
    subject, and its content (payload still sealed) with who provided it (for a pushed record,
    the providing unit at the origin)."""

    state: RecordState
    subject_id: str
    subject_kind: SubjectKind
    stored: StoredRecord
    provider_code: str


_RECORD_COLUMNS = (
    RecordRow.id, RecordRow.item_code, RecordRow.occurred_at, RecordRow.state,
    RecordRow.subject_id, SubjectRow.kind, RecordRow.provider_id, RecordRow.payload_key_id,
    RecordRow.payload, RecordRow.origin_provider_code, RecordRow.objection_filed_at,
    RecordRow.disclosure_until,
)  # fmt: skip


def _held(row: Any) -> HeldRecord:
    rid, item, occurred, state, subject_id, kind, provider, key_id, payload, origin, *rest = row
    objected, until = rest
    stored = StoredRecord(
        rid, provider, item, occurred, key_id, bytes(payload), state != ARCHIVED, objected, until
    )
    return HeldRecord(
        stored.policy_state(), subject_id, SubjectKind(kind), stored, origin or provider
    )


def held_records(session: Session, record_ids: Iterable[str]) -> dict[str, HeldRecord]:
    ids = sorted(set(record_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(*_RECORD_COLUMNS)
        .join(SubjectRow, SubjectRow.id == RecordRow.subject_id)
        .where(RecordRow.id.in_(ids))
    )
    return {row[0]: _held(row) for row in rows}


def changes_after(session: Session, seq: int, limit: int) -> list[tuple[PendingChange, HeldRecord]]:
    """Up to ``limit`` changes after ``seq``, in order, each with its record as it is now."""
    rows = session.execute(
        select(
            RecordChangeRow.seq,
            RecordChangeRow.kind,
            RecordChangeRow.at,
            RecordChangeRow.replaces,
            *_RECORD_COLUMNS,
        )
        .join(RecordRow, RecordRow.id == RecordChangeRow.record_id)
        .join(SubjectRow, SubjectRow.id == RecordRow.subject_id)
        .where(RecordChangeRow.seq > seq)
        .order_by(RecordChangeRow.seq)
        .limit(limit)
    )
    found = []
    for change_seq, kind, at, replaces, *record in rows:
        held = _held(record)
        change = PendingChange(
            int(change_seq), ChangeKind(kind), held.state, held.subject_id, held.subject_kind,
            at, replaces,
        )  # fmt: skip
        found.append((change, held))
    return found


def head(session: Session) -> tuple[int, int]:
    """(floor, seq): changes after floor are kept; seq is the last given."""
    row = session.execute(
        select(FeedHeadRow.floor, FeedHeadRow.seq).where(FeedHeadRow.id == HEAD_ROW)
    ).one_or_none()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def prune(session: Session, before: datetime, limit: int) -> tuple[int, int]:
    """Deletes the oldest changes made before ``before``, at most ``limit`` of them, and raises
    the floor over them: (the floor now, how many were deleted). Only a prefix of the feed goes,
    up to its first change at or after ``before`` (a replica's clock a little behind never has
    a newer change deleted under an older one). feed_head's lock is held, so no change is
    appended meanwhile; call it again while it deletes ``limit``."""
    head_row = session.execute(
        select(FeedHeadRow).where(FeedHeadRow.id == HEAD_ROW).with_for_update()
    ).scalar_one_or_none()
    if head_row is None:
        return 0, 0
    floor = int(head_row.floor)
    rows = session.execute(
        select(RecordChangeRow.seq, RecordChangeRow.at)
        .where(RecordChangeRow.seq > floor)
        .order_by(RecordChangeRow.seq)
        .limit(limit)
    ).all()
    pruned = list(itertools.takewhile(lambda row: row[1] < before, rows))
    if not pruned:
        return floor, 0
    new_floor = int(pruned[-1][0])
    session.execute(delete(RecordChangeRow).where(RecordChangeRow.seq <= new_floor))
    head_row.floor = new_floor
    return new_floor, len(pruned)
