"""As a witness of peers' logs: the checkpoint last cosigned for each (C2SP tlog-witness).

tlog-witness asks that the check of ``old`` against the stored size and the store of the new
checkpoint be one atomic step, or two concurrent requests could roll the witness back. Each
log's row is locked (SELECT ... FOR UPDATE; on SQLite the write lock every write transaction
takes at BEGIN) for the whole transaction that checks, stores and cosigns. A row of size 0 means
nothing cosigned yet: rows are made ahead, when the witness starts, so the lock always falls on
a row that exists (a lock on a missing row is a gap lock on MariaDB, and two such requests would
deadlock on their inserts instead of queueing).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.tables import WitnessedLogRow
from credit_gateway.crypto.notes import Checkpoint
from credit_gateway.domain.merkle import EMPTY_ROOT
from credit_gateway.domain.witness import Latest


def ensure(session: Session, origins: Iterable[str], now: datetime) -> None:
    """A row (size 0) for each origin that has none; a replica making it at once is ignored."""
    rows = [{"origin": o, "size": 0, "root": EMPTY_ROOT, "updated_at": now} for o in origins]
    if rows:
        session.execute(_insert_ignore(session), rows)


def _insert_ignore(session: Session) -> Insert:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(WitnessedLogRow).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(WitnessedLogRow).on_conflict_do_nothing()
    return mysql.insert(WitnessedLogRow).prefix_with("IGNORE")


def locked(session: Session, origin: str, now: datetime) -> Latest | None:
    """What was last cosigned for ``origin`` (None: nothing yet), its row locked until the
    transaction ends. A row missing (made since the start by no one) is made here first."""
    query = select(WitnessedLogRow).where(WitnessedLogRow.origin == origin).with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        ensure(session, [origin], now)
        row = session.scalars(query).one()
    return Latest(int(row.size), bytes(row.root)) if row.size else None


def advance(session: Session, checkpoint: Checkpoint, now: datetime) -> None:
    """Store ``checkpoint`` as the last cosigned; its row must be held by `locked`."""
    session.execute(
        update(WitnessedLogRow)
        .where(WitnessedLogRow.origin == checkpoint.origin)
        .values(size=checkpoint.size, root=checkpoint.root, updated_at=now)
    )


def latest(session: Session, origin: str) -> Latest | None:
    """A read without a lock (tests, an operator's look)."""
    row = session.get(WitnessedLogRow, origin)
    return Latest(int(row.size), bytes(row.root)) if row is not None and row.size else None
