"""Consents, consent requests, and the event log of their transitions."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.consent import (
    Consent,
    ConsentEvent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
)
from credit_gateway.storage.tables import ConsentEventRow, ConsentRequestRow, ConsentRow


def _consent(row: ConsentRow) -> Consent:
    doc = parse_json_object(row.artefact)
    return Consent(
        id=row.id,
        subject_id=row.subject_id,
        terms=ConsentTerms.from_document(doc["terms"]),
        status=ConsentStatus(row.status),
        uses=row.uses,
        granted_at=row.granted_at,
        status_changed_at=row.status_changed_at,
        evidence=row.evidence,
    )


def insert_consent(
    session: Session, consent: Consent, artefact: bytes, signature: bytes | None
) -> None:
    session.add(
        ConsentRow(
            id=consent.id,
            subject_id=consent.subject_id,
            grantee_id=consent.terms.grantee,
            artefact=artefact,
            subject_signature=signature,
            evidence=consent.evidence,
            valid_from=consent.terms.valid_from,
            valid_until=consent.terms.valid_until,
            max_uses=consent.terms.max_uses,
            uses=0,
            status=consent.status.value,
            granted_at=consent.granted_at,
            status_changed_at=consent.status_changed_at,
        )
    )
    add_event(
        session,
        consent.terms.grantee,
        actor=consent.subject_id,
        to_status=consent.status.value,
        at=consent.granted_at,
        consent_id=consent.id,
    )


def get_consent(session: Session, consent_id: str, *, lock: bool = False) -> Consent | None:
    query = select(ConsentRow).where(ConsentRow.id == consent_id)
    if lock:  # serialises concurrent uses and transitions of one consent
        query = query.with_for_update()
    row = session.scalar(query)
    return None if row is None else _consent(row)


def artefact(session: Session, consent_id: str) -> bytes:
    row = session.get(ConsentRow, consent_id)
    assert row is not None
    return row.artefact


def list_consents(
    session: Session, subject_id: str, statuses: Collection[ConsentStatus]
) -> list[Consent]:
    query = select(ConsentRow).where(ConsentRow.subject_id == subject_id)
    if statuses:
        query = query.where(ConsentRow.status.in_([s.value for s in statuses]))
    return [_consent(r) for r in session.scalars(query.order_by(ConsentRow.granted_at.desc()))]


def set_status(
    session: Session, consent: Consent, status: ConsentStatus, actor: str, now: datetime
) -> None:
    row = session.get(ConsentRow, consent.id)
    assert row is not None
    previous = row.status
    row.status, row.status_changed_at = status.value, now
    add_event(
        session,
        row.grantee_id,
        actor=actor,
        from_status=previous,
        to_status=status.value,
        at=now,
        consent_id=consent.id,
    )


def count_use(session: Session, consent: Consent, actor: str, now: datetime) -> None:
    """One more use; the last allowed use moves the consent to EXHAUSTED in the same write."""
    row = session.get(ConsentRow, consent.id)
    assert row is not None
    row.uses += 1
    if row.uses >= row.max_uses:
        set_status(session, consent, ConsentStatus.EXHAUSTED, actor, now)


def add_event(
    session: Session,
    grantee_id: str,
    *,
    actor: str,
    to_status: str,
    at: datetime,
    from_status: str | None = None,
    consent_id: str | None = None,
    request_id: str | None = None,
) -> None:
    session.add(
        ConsentEventRow(
            grantee_id=grantee_id,
            consent_id=consent_id,
            request_id=request_id,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            at=at,
        )
    )


def events_after(
    session: Session, grantee_id: str, seq: int, limit: int = 100
) -> list[ConsentEvent]:
    query = (
        select(ConsentEventRow)
        .where(ConsentEventRow.grantee_id == grantee_id, ConsentEventRow.seq > seq)
        .order_by(ConsentEventRow.seq)
        .limit(limit)
    )
    return [
        ConsentEvent(r.seq, r.consent_id, r.request_id, r.from_status, r.to_status, r.at)
        for r in session.scalars(query)
    ]


def last_event_seq(session: Session, grantee_id: str) -> int:
    return int(
        session.scalar(
            select(func.max(ConsentEventRow.seq)).where(ConsentEventRow.grantee_id == grantee_id)
        )
        or 0
    )


# --- requests ----------------------------------------------------------------------------------


def _request(row: ConsentRequestRow) -> ConsentRequest:
    return ConsentRequest(
        row.id,
        row.subject_id,
        ConsentTerms.from_document(parse_json_object(row.terms)),
        RequestStatus(row.status),
        row.requested_at,
        row.consent_id,
    )


def insert_request(
    session: Session, request_id: str, subject_id: str, terms: ConsentTerms, now: datetime
) -> None:
    session.add(
        ConsentRequestRow(
            id=request_id,
            subject_id=subject_id,
            grantee_id=terms.grantee,
            terms=canonical_bytes(terms.to_document()),
            status=RequestStatus.PENDING.value,
            requested_at=now,
            decided_at=None,
            consent_id=None,
        )
    )
    add_event(
        session,
        terms.grantee,
        actor=terms.grantee,
        to_status=RequestStatus.PENDING.value,
        at=now,
        request_id=request_id,
    )


def get_request(session: Session, request_id: str, *, lock: bool = False) -> ConsentRequest | None:
    query = select(ConsentRequestRow).where(ConsentRequestRow.id == request_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    return None if row is None else _request(row)


def decide_request(
    session: Session,
    request: ConsentRequest,
    status: RequestStatus,
    actor: str,
    now: datetime,
    consent_id: str | None = None,
) -> None:
    row = session.get(ConsentRequestRow, request.id)
    assert row is not None
    previous = row.status
    row.status, row.decided_at, row.consent_id = status.value, now, consent_id
    add_event(
        session,
        row.grantee_id,
        actor=actor,
        from_status=previous,
        to_status=status.value,
        at=now,
        request_id=row.id,
        consent_id=consent_id,
    )


def list_requests(
    session: Session, subject_id: str, statuses: Collection[RequestStatus]
) -> list[ConsentRequest]:
    query = select(ConsentRequestRow).where(ConsentRequestRow.subject_id == subject_id)
    if statuses:
        query = query.where(ConsentRequestRow.status.in_([s.value for s in statuses]))
    return [
        _request(r) for r in session.scalars(query.order_by(ConsentRequestRow.requested_at.desc()))
    ]
