"""Consents, consent requests, and the event log of their transitions."""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import (
    ConsentEventRow,
    ConsentRequestRow,
    ConsentRow,
    core,
)
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
)


@functools.lru_cache(maxsize=4096)
def parse_terms(document: bytes) -> ConsentTerms:
    """A consent's terms never change once granted, so their parse is cached by exact bytes."""
    return ConsentTerms.from_document(parse_json_object(document))


def _consent(row: Any) -> Consent:
    return Consent(
        id=row.id,
        subject_id=row.subject_id,
        terms=parse_terms(row.terms),
        status=ConsentStatus(row.status),
        uses=row.uses,
        granted_at=row.granted_at,
        status_changed_at=row.status_changed_at,
        evidence=row.evidence,
    )


_CONSENTS = core(ConsentRow)
_CONSENT = select(_CONSENTS).where(_CONSENTS.c.id == bindparam("consent_id"))
_CONSENT_LOCKED = _CONSENT.with_for_update()  # serialises uses and transitions of one consent


def insert_consent(
    session: Session,
    envelope: Envelope,
    consent: Consent,
    artefact: bytes,
    signature: bytes | None,
    *,
    guardian_id: str | None = None,
    guardian_signature: bytes | None = None,
) -> None:
    """Stores the consent; the artefact (which names the subject's code) is sealed, bound to
    this consent's id, and kept byte for byte as the subject consented to or signed it.
    A minor's consent keeps the guardian who authorised it and its signature over the same
    artefact (PIPL Art 31)."""
    key_id, sealed = envelope.seal(artefact, b"consent:" + consent.id.encode())
    session.add(
        ConsentRow(
            id=consent.id,
            subject_id=consent.subject_id,
            grantee_id=consent.terms.grantee,
            terms=canonical_bytes(consent.terms.to_document()),
            artefact_key_id=key_id,
            artefact_sealed=sealed,
            subject_signature=signature,
            guardian_subject_id=guardian_id,
            guardian_signature=guardian_signature,
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
    statement = _CONSENT_LOCKED if lock else _CONSENT
    session.flush()  # Core reads skip autoflush: see this transaction's own ORM writes
    row = session.connection().execute(statement, {"consent_id": consent_id}).first()
    return None if row is None else _consent(row)


def artefact(session: Session, envelope: Envelope, consent_id: str) -> bytes:
    """The artefact as the subject consented to it (the evidence, e.g. for its signature)."""
    row = session.get(ConsentRow, consent_id)
    assert row is not None
    return envelope.open(row.artefact_key_id, row.artefact_sealed, b"consent:" + row.id.encode())


def list_consents(
    session: Session, subject_id: str, statuses: Collection[ConsentStatus]
) -> list[Consent]:
    query = select(ConsentRow).where(ConsentRow.subject_id == subject_id)
    if statuses:
        query = query.where(ConsentRow.status.in_([s.value for s in statuses]))
    return [_consent(r) for r in session.scalars(query.order_by(ConsentRow.granted_at.desc()))]


def set_status(
    session: Session, consent_id: str, status: ConsentStatus, actor: str, now: datetime
) -> None:
    row = session.get(ConsentRow, consent_id)
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
        consent_id=consent_id,
    )


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


def insert_request(session: Session, request: ConsentRequest) -> None:
    grantee = request.terms.grantee
    session.add(
        ConsentRequestRow(
            id=request.id,
            subject_id=request.subject_id,
            grantee_id=grantee,
            terms=canonical_bytes(request.terms.to_document()),
            status=request.status.value,
            requested_at=request.requested_at,
            decided_at=None,
            consent_id=None,
        )
    )
    add_event(
        session,
        grantee,
        actor=grantee,
        to_status=request.status.value,
        at=request.requested_at,
        request_id=request.id,
    )


def get_request(session: Session, request_id: str, *, lock: bool = False) -> ConsentRequest | None:
    query = select(ConsentRequestRow).where(ConsentRequestRow.id == request_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    return None if row is None else _request(row)


def decide_request(
    session: Session,
    request_id: str,
    status: RequestStatus,
    actor: str,
    now: datetime,
    consent_id: str | None = None,
) -> None:
    row = session.get(ConsentRequestRow, request_id)
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
