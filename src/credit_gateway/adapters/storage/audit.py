"""Reading a subject's decisions back from the audit log; the release transaction appends them
(storage/release_store.py)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import AuditEntryRow


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
