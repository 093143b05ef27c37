"""Appending decisions to the audit log and reading a subject's inquiries back."""

from __future__ import annotations

import json

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from credit_gateway.audit.entries import AuditEntry, leaf_hash
from credit_gateway.storage.tables import AuditEntryRow, core

_AUDIT = core(AuditEntryRow)
_APPEND = insert(_AUDIT)


def append(session: Session, entry: AuditEntry) -> None:
    """Written in the release transaction itself: no release without its entry."""
    body = entry.body()
    session.connection().execute(
        _APPEND,
        {
            "id": entry.id,
            "at": entry.at,
            "caller": entry.caller,
            "method": entry.method,
            "subject_id": entry.subject_id,
            "consent_id": entry.consent_id,
            "agreement_id": entry.agreement_id,
            "outcome": entry.outcome,
            "body": body,
            "leaf_hash": leaf_hash(body),
        },
    )


def subject_entries(
    session: Session, subject_id: str, consent_id: str | None, limit: int
) -> list[dict[str, object]]:
    """The subject's entries, newest first; with a consent id, every entry made under that
    consent, whichever subject was asked about (so its owner sees a misuse of it too)."""
    query = select(AuditEntryRow.body)
    if consent_id:
        query = query.where(AuditEntryRow.consent_id == consent_id)
    else:
        query = query.where(AuditEntryRow.subject_id == subject_id)
    bodies = session.scalars(query.order_by(AuditEntryRow.seq.desc()).limit(limit))
    return [dict(json.loads(b)) for b in bodies]
