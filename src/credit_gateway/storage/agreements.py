"""Registered agreements and their daily quota counters."""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.errors import AlreadyExists, NotFound
from credit_gateway.policy import AgreementState
from credit_gateway.storage.tables import AgreementRow, QuotaUsageRow


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


def _agreement(row: AgreementRow) -> Agreement:
    return Agreement.from_document(json.loads(row.document)["agreement"])


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


def lock_agreement_state(session: Session, agreement_id: str, day: date) -> AgreementState | None:
    """The agreement and today's usage, the usage row locked until the transaction ends so that
    concurrent calls count one after another (SQLite: the write transaction already serialises)."""
    row = session.get(AgreementRow, agreement_id)
    if row is None:
        return None
    usage = _lock_usage(session, agreement_id, day)
    return AgreementState(_agreement(row), AgreementStatus(row.status), usage.calls, usage.records)


def _lock_usage(session: Session, agreement_id: str, day: date) -> QuotaUsageRow:
    query = (
        select(QuotaUsageRow)
        .where(QuotaUsageRow.agreement_id == agreement_id, QuotaUsageRow.day == day)
        .with_for_update()
    )
    usage = session.scalar(query)
    if usage is None:
        try:
            with session.begin_nested():
                session.add(QuotaUsageRow(agreement_id=agreement_id, day=day, calls=0, records=0))
        except IntegrityError:
            pass  # another replica made today's row first
        usage = session.scalar(query.execution_options(populate_existing=True))
        assert usage is not None
    return usage


def count_usage(session: Session, agreement_id: str, day: date, records: int) -> None:
    session.execute(
        update(QuotaUsageRow)
        .where(QuotaUsageRow.agreement_id == agreement_id, QuotaUsageRow.day == day)
        .values(calls=QuotaUsageRow.calls + 1, records=QuotaUsageRow.records + records)
    )
