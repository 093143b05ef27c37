"""What the audit log holds, for tests of who wrote what (issue #13): every decision writes an
entry, so a test that counts the entries of its inquiries counts only those (`inquiry_ids`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from support.waiting import wait_until

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.domain.audit import NOT_INQUIRIES, mac_matches
from credit_gateway.runtime.gateway import Gateway

# `.where(INQUIRIES)`: the inquiries' entries only, not consent changes' or operator actions'.
INQUIRIES = AuditEntryRow.method.not_in(sorted(NOT_INQUIRIES))


@dataclass(frozen=True)
class Stored:
    """One row: its body's members, and what the integrator made of it."""

    body: dict[str, Any]
    raw: bytes
    mac: bytes | None
    leaf_index: int | None
    quarantined: bool

    def __getitem__(self, member: str) -> Any:
        return self.body[member]


def stored(db: Database, *methods: str) -> list[Stored]:
    """The entries in log order; of these methods only, if named."""
    query = select(
        AuditEntryRow.body, AuditEntryRow.mac, AuditEntryRow.leaf_index, AuditEntryRow.quarantined
    ).order_by(AuditEntryRow.seq)
    if methods:
        query = query.where(AuditEntryRow.method.in_(methods))
    with db.transaction(write=False) as session:
        rows = session.execute(query).all()
    return [
        Stored(json.loads(body), bytes(body), None if mac is None else bytes(mac), index, bool(q))
        for body, mac, index, q in rows
    ]


def inquiry_ids(db: Database) -> set[str]:
    """The ids of the inquiries' entries (a release's is the inquiry_id its answer carried):
    every entry but consent changes' and operator actions'."""
    with db.transaction(write=False) as session:
        return set(session.scalars(select(AuditEntryRow.id).where(INQUIRIES)))


def inquiry_count(db: Database) -> int:
    return len(inquiry_ids(db))


def integrated(gateway: Gateway) -> list[Stored]:
    """Every entry, once the integrator placed them all (the test integrates too, not waiting
    for the server's task), each checked to carry the gateway's MAC and none quarantined."""
    gateway.audit.integrate()

    def placed() -> bool:
        return all(e.leaf_index is not None or e.quarantined for e in stored(gateway.db))

    wait_until(placed, what="for the integrator")
    entries = stored(gateway.db)
    assert [e.body["id"] for e in entries if e.quarantined] == []
    assert all(mac_matches(gateway.audit.mac_key, e.raw, e.mac) for e in entries)
    return entries
