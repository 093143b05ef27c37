"""Registered agreements and their daily quota counters."""

from __future__ import annotations

import functools
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.errors import AlreadyExists, NotFound
from credit_gateway.policy import AgreementState
from credit_gateway.storage.tables import AgreementRow, QuotaUsageRow, core


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


_AGREEMENTS = core(AgreementRow)
_USAGE = core(QuotaUsageRow)
_AGREEMENT_STATUS = select(_AGREEMENTS.c.document, _AGREEMENTS.c.status).where(
    _AGREEMENTS.c.id == bindparam("agreement_id")
)
_USAGE_ROW = select(_USAGE.c.calls, _USAGE.c.records).where(
    _USAGE.c.agreement_id == bindparam("agreement_id"), _USAGE.c.day == bindparam("day")
)
_USAGE_LOCKED = _USAGE_ROW.with_for_update()
_AGREEMENT_WITH_USAGE = (
    select(_AGREEMENTS.c.document, _AGREEMENTS.c.status, _USAGE.c.calls, _USAGE.c.records)
    .select_from(
        _AGREEMENTS.outerjoin(
            _USAGE,
            and_(_USAGE.c.agreement_id == _AGREEMENTS.c.id, _USAGE.c.day == bindparam("day")),
        )
    )
    .where(_AGREEMENTS.c.id == bindparam("agreement_id"))
)
_USAGE_NEW = insert(_USAGE).values(calls=0, records=0)
# UPDATE binds may not share a column's name, hence the b_ prefixes.
_USAGE_COUNT = (
    update(_USAGE)
    .where(
        _USAGE.c.agreement_id == bindparam("b_agreement"),
        _USAGE.c.day == bindparam("b_day"),
        _USAGE.c.calls < bindparam("b_calls_limit"),
        _USAGE.c.records + bindparam("b_released") <= bindparam("b_records_limit"),
    )
    .values(calls=_USAGE.c.calls + 1, records=_USAGE.c.records + bindparam("b_released"))
)


def agreement_state(
    session: Session, agreement_id: str, day: date, *, lock: bool
) -> AgreementState | None:
    """The agreement and today's usage. Unlocked, the usage may be a moment old: count_usage
    then refuses to count past a quota and the caller decides again with lock=True, which takes
    the usage row until the transaction ends (SQLite: the write transaction serialises)."""
    conn = session.connection()
    params = {"agreement_id": agreement_id, "day": day}
    row: Any
    if not lock:  # one round trip: the usage row may not exist yet today
        row = conn.execute(_AGREEMENT_WITH_USAGE, params).first()
        if row is None:
            return None
        usage = (row.calls or 0, row.records or 0)
    else:
        row = conn.execute(_AGREEMENT_STATUS, params).first()
        if row is None:
            return None
        locked = conn.execute(_USAGE_LOCKED, params).first()
        if locked is None:
            _make_usage_row(session, params)
            locked = conn.execute(_USAGE_LOCKED, params).one()
        usage = (locked.calls, locked.records)
    return AgreementState(_agreement(row), AgreementStatus(row.status), *usage)


def ensure_usage_row(session: Session, agreement_id: str, day: date) -> None:
    """Today's usage row, made in a short transaction of its own before any release under the
    agreement: the release then updates and locks an existing row (on InnoDB, an UPDATE that
    finds no row takes a gap lock, and concurrent inserts into that gap deadlock)."""
    if session.connection().execute(_AGREEMENT_STATUS, {"agreement_id": agreement_id}).first():
        _make_usage_row(session, {"agreement_id": agreement_id, "day": day})


def _make_usage_row(session: Session, params: dict[str, Any]) -> None:
    try:
        with session.connection().begin_nested() as nested:
            session.connection().execute(_USAGE_NEW, params)
            nested.commit()
    except IntegrityError:
        pass  # another call or replica made today's row first


def count_usage(session: Session, state: AgreementState, day: date, released: int) -> bool:
    """One call and its records, only while within the quotas (an atomic conditional UPDATE:
    the row lock is held just from here to the commit). False: the quota ran out meanwhile."""
    quotas = state.agreement.quotas
    params = {
        "b_agreement": state.agreement.id,
        "b_day": day,
        "b_released": released,
        "b_calls_limit": quotas.calls_per_day,
        "b_records_limit": quotas.records_per_day,
    }
    conn = session.connection()
    if conn.execute(_USAGE_COUNT, params).rowcount == 1:
        return True
    _make_usage_row(session, {"agreement_id": state.agreement.id, "day": day})
    return bool(conn.execute(_USAGE_COUNT, params).rowcount == 1)
