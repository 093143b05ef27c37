"""Named leases (runner_leases): who runs a singleton job across replicas, and until when.

A lease is taken when it is free, has run out, or is the taker's already, by one conditional
UPDATE of its row: of concurrent takers the first holds the row's lock to its commit, and the
others, waiting on it, then find the lease held (PostgreSQL re-reads the row under READ
COMMITTED, InnoDB's UPDATE reads the latest committed row, SQLite has one writer). The first
taker of a name makes its row; a concurrent first taker's INSERT fails on the primary key and
it takes the row as an existing one. The row is made before any UPDATE looks for it: an UPDATE
that finds no row locks the gap (InnoDB), and two takers inserting into one gap deadlock.

`take_row` is the same on any table of (key, holder, until): outbox_leases' partitions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import Base, RunnerLeaseRow, core


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    until: datetime


def take_row(
    session: Session,
    row: type[Base],
    key: str,
    value: object,
    holder: str,
    now: datetime,
    until: datetime,
) -> bool:
    """Takes or renews the lease in `row`'s table whose `key` column is `value`, until `until`:
    True if `holder` holds it now. The table has columns `key`, holder and until."""
    table = core(row)
    this = table.c[key] == value
    if session.execute(select(table.c[key]).where(this)).first() is None:
        try:
            with session.begin_nested():
                session.execute(
                    table.insert().values({key: value, "holder": holder, "until": until})
                )
            return True
        except IntegrityError:
            pass  # made meanwhile by another replica: take it as an existing one
    taken = session.execute(
        update(table)
        .where(this, (table.c.holder == holder) | (table.c.until <= now))
        .values(holder=holder, until=until)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def take(session: Session, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Takes the lease `name` (free, run out, or `holder`'s already) until `until`."""
    return take_row(session, RunnerLeaseRow, "name", name, holder, now, until)


def renew(session: Session, name: str, holder: str, until: datetime) -> bool:
    """Extends `holder`'s lease to `until`: False if another took it meanwhile (after it ran
    out), and then the holder stops. A lease that ran out but that nobody took is still the
    holder's: nobody else ran in between."""
    renewed = session.execute(
        update(RunnerLeaseRow)
        .where(RunnerLeaseRow.name == name, RunnerLeaseRow.holder == holder)
        .values(until=until)
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def release(session: Session, name: str, holder: str, now: datetime) -> None:
    """Gives the lease back (a runner that stops), so another may take it at once."""
    session.execute(
        update(RunnerLeaseRow)
        .where(RunnerLeaseRow.name == name, RunnerLeaseRow.holder == holder)
        .values(until=now)
    )


def held(session: Session, name: str, now: datetime) -> Lease | None:
    """The lease `name` if someone holds it at `now`."""
    found = session.execute(
        select(RunnerLeaseRow.holder, RunnerLeaseRow.until).where(
            RunnerLeaseRow.name == name, RunnerLeaseRow.until > now
        )
    ).first()
    return None if found is None else Lease(name, found[0], found[1])
