"""Audit entries outside the release path: `append`, in the transaction of the decision it
records (a consent change, an operator's action), and reading a subject's entries back. The
release transaction writes its own in SQL text (storage/release_store.py), the same columns."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.domain.audit import NOT_INQUIRIES, AuditEntry, entry_mac, leaf_hash


def append(session: Session, mac_key: bytes, entry: AuditEntry) -> None:
    """Adds `entry` to the session's transaction, with its leaf hash and its MAC (without one
    the integrator quarantines it): it commits with the decision or not at all."""
    body = entry.body()
    session.add(
        AuditEntryRow(
            id=entry.id,
            at=entry.at,
            caller=entry.caller,
            method=entry.method,
            subject_id=entry.subject_id,
            consent_id=entry.consent_id,
            agreement_id=entry.agreement_id,
            outcome=entry.outcome,
            body=body,
            leaf_hash=leaf_hash(body),
            mac=entry_mac(mac_key, body),
        )
    )


def subject_inquiries(
    session: Session, subject_id: str, consent_id: str | None, limit: int
) -> list[dict[str, object]]:
    """The inquiries into the subject (its entries but consent changes and operator actions),
    newest first, each its body's members and `leaf_index` (None until integrated); with a
    consent id, every inquiry made under that consent, whichever subject was asked about (so
    its owner sees a misuse of it too)."""
    query = select(AuditEntryRow.body, AuditEntryRow.leaf_index).where(
        AuditEntryRow.method.not_in(sorted(NOT_INQUIRIES)),
        AuditEntryRow.pruned.is_(False),  # past retention its body is gone (Art 19: 3 years)
    )
    if consent_id:
        query = query.where(AuditEntryRow.consent_id == consent_id)
    else:
        query = query.where(AuditEntryRow.subject_id == subject_id)
    rows = session.execute(query.order_by(AuditEntryRow.seq.desc()).limit(limit))
    return [{**json.loads(body), "leaf_index": index} for body, index in rows]
