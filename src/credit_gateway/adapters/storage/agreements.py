"""Registered agreements and their daily quota counters."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import AgreementRow
from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.domain.policy import AgreementState
from credit_gateway.errors import AlreadyExists, NotFound


def register_agreement(
    session: Session, agreement: Agreement, document: bytes, now: datetime
) -> None:
    if session.get(AgreementRow, agreement.id) is not None:
        raise AlreadyExists(f"agreement {agreement.id} is registered", reason="AGREEMENT_EXISTS")
    session.add(
        AgreementRow(
            id=agreement.id,
            counterparty_id=agreement.counterparty,
            status=AgreementStatus.ACTIVE.value,
            document=document,
            valid_from=agreement.valid_from,
            valid_until=agreement.valid_until,
            registered_at=now,
        )
    )


@functools.lru_cache(maxsize=1024)
def parse_document(document: bytes) -> Agreement:
    """A registered document never changes, so its parse is cached by its exact bytes."""
    return Agreement.from_document(json.loads(document)["agreement"])


def _agreement(row: Any) -> Agreement:
    return parse_document(row.document)


def list_agreements(
    session: Session, counterparty: str | None = None
) -> list[tuple[Agreement, AgreementStatus]]:
    query = select(AgreementRow).order_by(AgreementRow.id)
    if counterparty is not None:
        query = query.where(AgreementRow.counterparty_id == counterparty)
    return [(_agreement(r), AgreementStatus(r.status)) for r in session.scalars(query)]


def set_agreement_status(session: Session, agreement_id: str, status: AgreementStatus) -> None:
    result = session.execute(
        update(AgreementRow).where(AgreementRow.id == agreement_id).values(status=status.value)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no agreement {agreement_id}", reason="AGREEMENT_NOT_FOUND")


def agreement_state(session: Session, agreement_id: str) -> AgreementState | None:
    """The agreement as registered, with its status, without usage (the feed's: it is not
    counted against quotas, policy._UNCOUNTED)."""
    row = session.execute(
        select(AgreementRow.document, AgreementRow.status).where(AgreementRow.id == agreement_id)
    ).one_or_none()
    if row is None:
        return None
    return AgreementState(parse_document(bytes(row[0])), AgreementStatus(row[1]))
