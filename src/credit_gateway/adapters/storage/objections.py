"""Objections in storage (Art 29): the objections table and the record's objection_filed_at,
which every read path's policy judges. Each function works in the caller's transaction
(services/objections.py makes it): a filing or an answer and its audit entry commit together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import archive, outbox
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage.tables import (
    ARCHIVED,
    ObjectionRow,
    RecordRow,
    SubjectRow,
)
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.objections import OPEN, ObjectedRecord, Objection, State

_OPEN_STATES = sorted(s.value for s in OPEN)


def objected_record(session: Session, record_id: str) -> ObjectedRecord | None:
    """The record, with its subject's lookup key and kind, read under a row lock: two filings
    or answers about one record never interleave."""
    row = session.execute(
        select(
            RecordRow.id,
            RecordRow.subject_id,
            SubjectRow.lookup,
            SubjectRow.kind,
            RecordRow.provider_id,
            RecordRow.provider_record_id,
            RecordRow.item_code,
            RecordRow.state,
        )
        .join(SubjectRow, SubjectRow.id == RecordRow.subject_id)
        .where(RecordRow.id == record_id)
        .with_for_update(of=RecordRow)
    ).first()
    if row is None:
        return None
    rid, subject_id, lookup, kind, provider, provider_record_id, item, state = row
    return ObjectedRecord(
        id=rid,
        subject_id=subject_id,
        subject_lookup=lookup,
        subject_kind=SubjectKind(kind),
        provider_id=provider,
        provider_record_id=provider_record_id,
        item_code=item,
        in_service=state != ARCHIVED,
    )


def has_open(session: Session, record_id: str) -> bool:
    found = session.scalar(
        select(ObjectionRow.id)
        .where(ObjectionRow.record_id == record_id, ObjectionRow.state.in_(_OPEN_STATES))
        .limit(1)
    )
    return found is not None


def add(session: Session, objection: Objection) -> None:
    """The new objection, and its record labelled from its filing on."""
    o = objection
    session.add(
        ObjectionRow(
            id=o.id,
            record_id=o.record_id,
            subject_id=o.subject_id,
            provider_id=o.provider_id,
            state=o.state.value,
            reason=o.reason,
            evidence_reference=o.evidence_reference,
            filed_at=o.filed_at,
            due_at=o.due_at,
            suspended_at=None,
            answered_at=None,
            answer=None,
            replacement_id=None,
            answer_entry_id=None,
        )
    )
    _set_filed(session, o.record_id, o.filed_at)


def answered(session: Session, objection: Objection) -> None:
    """The objection's answer, and its record no longer labelled."""
    o = objection
    session.execute(
        update(ObjectionRow)
        .where(ObjectionRow.id == o.id)
        .values(
            state=o.state.value,
            suspended_at=o.suspended_at,
            answered_at=o.answered_at,
            answer=o.answer,
            replacement_id=o.replacement_id,
            answer_entry_id=o.answer_entry_id,
        )
    )
    _set_filed(session, o.record_id, None)


def correct(
    session: Session,
    envelope: Envelope,
    original: ObjectedRecord,
    corrected: record_store.Submitted,
    now: datetime,
) -> str | None:
    """Stores `corrected` (checked as a submission, about `original`'s subject) replacing
    `original`, which is archived (CORRECTED); the outbox entries of a record submitted here.
    Answers the new record's id, or None, with nothing written, when the provider's id for it
    names a stored record. The feed's change ("corrected") is the caller's, appended last."""
    record = replace(corrected.record, subject_id=original.subject_id, replaces=original.id)
    key = (record.provider_id, record.provider_record_id)
    if record_store.existing_digest(session, *key, current=True) is not None:
        return None
    # In a savepoint: a concurrent submission of the same id loses nothing but this record.
    replacement = record_store.insert_record(session, envelope, record, now, careful=True)
    if replacement is None:
        return None
    archived = archive.archive(
        session, [(original.id, original.item_code, original.subject_id)], archive.CORRECTED, now
    )
    assert archived == [original.id]  # in service, and its row locked since it was read
    outbox.enqueue(session, [(replacement, original.subject_id, corrected.item)], now)
    return replacement


def _set_filed(session: Session, record_id: str, at: datetime | None) -> None:
    session.execute(
        update(RecordRow).where(RecordRow.id == record_id).values(objection_filed_at=at)
    )


_COLUMNS = (
    ObjectionRow.id, ObjectionRow.record_id, ObjectionRow.subject_id, ObjectionRow.provider_id,
    RecordRow.item_code, RecordRow.provider_record_id, ObjectionRow.state, ObjectionRow.reason,
    ObjectionRow.evidence_reference, ObjectionRow.filed_at, ObjectionRow.due_at,
    ObjectionRow.suspended_at, ObjectionRow.answered_at, ObjectionRow.answer,
    ObjectionRow.replacement_id, ObjectionRow.answer_entry_id,
)  # fmt: skip


def _objection(row: Any) -> Objection:
    oid, record_id, subject_id, provider_id, item, provider_record_id, state, *rest = row
    return Objection(oid, record_id, subject_id, provider_id, item, provider_record_id,
                     State(state), *rest)  # fmt: skip


def get(session: Session, objection_id: str, *, lock: bool = False) -> Objection | None:
    """`lock`: read under a row lock, to answer it (an answer is given once)."""
    query = (
        select(*_COLUMNS)
        .join(RecordRow, RecordRow.id == ObjectionRow.record_id)
        .where(ObjectionRow.id == objection_id)
    )
    if lock:
        query = query.with_for_update(of=ObjectionRow)
    row = session.execute(query).first()
    return None if row is None else _objection(row)


def _in_states(states: Sequence[State], now: datetime) -> ColumnElement[bool]:
    """Objections in `states` as Objection.effective_state has them: a pending one past its
    due_at is suspended, as the policy enforces, whether `maintain` wrote it yet or not."""
    state, overdue = ObjectionRow.state, ObjectionRow.due_at <= now
    pending = State.PENDING.value
    conditions = []
    for wanted in states:
        if wanted is State.PENDING:
            conditions.append(and_(state == pending, ObjectionRow.due_at > now))
        elif wanted is State.SUSPENDED:
            conditions.append(or_(state == State.SUSPENDED.value, and_(state == pending, overdue)))
        else:
            conditions.append(state == wanted.value)
    return or_(false(), *conditions)


def of_subject(
    session: Session, subject_id: str, states: Sequence[State], now: datetime, limit: int
) -> list[Objection]:
    """The subject's objections (in `states`; empty: all), newest first."""
    query = (
        select(*_COLUMNS)
        .join(RecordRow, RecordRow.id == ObjectionRow.record_id)
        .where(ObjectionRow.subject_id == subject_id)
    )
    if states:
        query = query.where(_in_states(states, now))
    order = (ObjectionRow.filed_at.desc(), ObjectionRow.id.desc())
    return [_objection(r) for r in session.execute(query.order_by(*order).limit(limit))]


def queue(
    session: Session, provider_id: str, states: Sequence[State], now: datetime, limit: int
) -> list[Objection]:
    """The objections on records the provider provided, in `states`, oldest first."""
    query = (
        select(*_COLUMNS)
        .join(RecordRow, RecordRow.id == ObjectionRow.record_id)
        .where(ObjectionRow.provider_id == provider_id, _in_states(states, now))
        .order_by(ObjectionRow.filed_at, ObjectionRow.id)
        .limit(limit)
    )
    return [_objection(r) for r in session.execute(query)]
