"""The consent event table read as one stream for every grantee: what the process's one
WatchConsents poller (consent/watch.py) tails."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import ConsentEventRow
from credit_gateway.domain.consent import ConsentEvent


def latest_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(ConsentEventRow.seq))) or 0)


def events_since(session: Session, seq: int, limit: int) -> list[tuple[str, ConsentEvent]]:
    """Every grantee's events after `seq`, oldest first, each with the grantee it is for."""
    query = (
        select(ConsentEventRow)
        .where(ConsentEventRow.seq > seq)
        .order_by(ConsentEventRow.seq)
        .limit(limit)
    )
    return [
        (
            r.grantee_id,
            ConsentEvent(r.seq, r.consent_id, r.request_id, r.from_status, r.to_status, r.at),
        )
        for r in session.scalars(query)
    ]
