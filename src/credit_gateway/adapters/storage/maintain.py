"""The time rules' reads and writes (services/maintain.py runs them): what has come due at `now`,
at most `limit` rows a batch, read under row locks so that the writes that follow move exactly
what was read, whatever a concurrent transaction (an answer to an objection, a revocation,
another run) does meanwhile: it waits for the lock and then finds the row moved, or the row is
found moved here and not read. A moved row no longer matches, so each is done once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import archive, consents, feed
from credit_gateway.adapters.storage.tables import ACTIVE, ConsentRow, ObjectionRow, RecordRow
from credit_gateway.domain.consent import ConsentStatus, transition
from credit_gateway.domain.exchange import ChangeKind
from credit_gateway.domain.objections import State
from credit_gateway.errors import StorageError

# A consent whose row still says one of these, once its validity has ended (effective_status).
_OPEN_CONSENTS = [ConsentStatus.ACTIVE.value, ConsentStatus.PAUSED.value]


@dataclass(frozen=True, slots=True)
class DueObjection:
    id: str
    record_id: str
    subject_id: str
    item_code: str
    in_service: bool  # its record's


def due_objections(session: Session, now: datetime, limit: int) -> list[DueObjection]:
    """Pending objections past their due_at (Art 29 para 2: 15 days unanswered), locked."""
    rows = session.execute(
        select(
            ObjectionRow.id,
            ObjectionRow.record_id,
            ObjectionRow.subject_id,
            RecordRow.item_code,
            RecordRow.state,
        )
        .join(RecordRow, RecordRow.id == ObjectionRow.record_id)
        .where(ObjectionRow.state == State.PENDING.value, ObjectionRow.due_at <= now)
        .order_by(ObjectionRow.id)
        .limit(limit)
        .with_for_update(of=ObjectionRow)
    )
    return [DueObjection(o, r, s, item, state == ACTIVE) for o, r, s, item, state in rows]


def suspend(session: Session, objections: Sequence[DueObjection], now: datetime) -> None:
    """The objections suspended, and for each record still in service a `suspended` change in
    the feed (appended last: it holds the feed's lock to the commit)."""
    if not objections:
        return
    moved = session.execute(
        update(ObjectionRow)
        .where(
            ObjectionRow.id.in_([o.id for o in objections]),
            ObjectionRow.state == State.PENDING.value,
        )
        .values(state=State.SUSPENDED.value, suspended_at=now)
    )
    _all_moved(moved.rowcount, len(objections), "objections")  # type: ignore[attr-defined]
    kind = ChangeKind.SUSPENDED.value
    changes = [feed.Change(o.record_id, o.item_code, o.subject_id, kind) for o in objections]
    feed.append(session, [c for c, o in zip(changes, objections, strict=True) if o.in_service], now)


# (record id, item code, subject id), as archive.archive takes them
EndedRecord = tuple[str, str, str]


def ended_records(
    session: Session, now: datetime, by_default: Mapping[datetime, Sequence[str]], limit: int
) -> list[EndedRecord]:
    """Records in service whose disclosure period has ended at `now`, locked: their
    disclosure_until passed, or (stored before it was kept: None) they occurred at or before
    the cutoff their item's default period gives (`by_default`: cutoff -> item codes)."""
    ended = [RecordRow.disclosure_until <= now]
    ended += [
        and_(
            RecordRow.disclosure_until.is_(None),
            RecordRow.item_code.in_(sorted(codes)),
            RecordRow.occurred_at <= cutoff,
        )
        for cutoff, codes in by_default.items()
    ]
    rows = session.execute(
        select(RecordRow.id, RecordRow.item_code, RecordRow.subject_id)
        .where(RecordRow.state == ACTIVE, or_(*ended))
        .order_by(RecordRow.id)
        .limit(limit)
        .with_for_update()
    )
    return [(r, item, subject) for r, item, subject in rows]


def archive_ended(session: Session, records: Sequence[EndedRecord], now: datetime) -> None:
    """The records out of service, their period ended; the feed's `expired` changes last."""
    archived = archive.archive(session, records, archive.PERIOD_ENDED, now)
    _all_moved(len(archived), len(records), "records")


@dataclass(frozen=True, slots=True)
class LapsedConsent:
    id: str
    subject_id: str
    grantee_id: str


def lapsed_consents(session: Session, now: datetime, limit: int) -> list[LapsedConsent]:
    """Consents active or paused on their row whose validity has ended, locked (the lock a
    revocation and a release counting a use take too)."""
    rows = session.scalars(
        select(ConsentRow)
        .where(ConsentRow.status.in_(_OPEN_CONSENTS), ConsentRow.valid_until <= now)
        .order_by(ConsentRow.id)
        .limit(limit)
        .with_for_update()
    ).all()
    for row in rows:
        transition(ConsentStatus(row.status), ConsentStatus.EXPIRED)  # the lifecycle allows it
    return [LapsedConsent(r.id, r.subject_id, r.grantee_id) for r in rows]


def expire(session: Session, lapsed: Sequence[LapsedConsent], actor: str, now: datetime) -> None:
    """Each consent expired, with its event (what WatchConsents tails), as every transition."""
    for consent in lapsed:
        consents.set_status(session, consent.id, ConsentStatus.EXPIRED, actor, now)


def _all_moved(moved: int, read: int, what: str) -> None:
    # Read under lock, so every one moves; if not, nothing is written (the entries would name
    # what did not happen) and the next run reads again.
    if moved != read:
        raise StorageError(f"maintain: {moved} of {read} {what} moved", transient=True)
