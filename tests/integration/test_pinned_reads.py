"""The per-thread autocommit connections behind the interceptor's per-call read (db.read_row)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import ParticipantRow, core
from credit_gateway.errors import StorageError

_PARTICIPANTS = core(ParticipantRow)
_NAMED = select(_PARTICIPANTS.c.name).where(_PARTICIPANTS.c.id == "p-1")


def _add(db: Database, name: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM participants WHERE id = 'p-1'"))
        conn.execute(
            _PARTICIPANTS.insert().values(
                id="p-1",
                kind="credit-agency",
                org_code="91420100000000019Q",
                name=name,
                status="active",
                licence_revoked=False,
                scopes="",
                jwks="{}",
                created_at=text("CURRENT_TIMESTAMP"),
            )
        )


def _name(db: Database) -> str | None:
    row = db.read_row(_NAMED, {})
    return None if row is None else str(row.name)


def test_each_read_sees_the_latest_commit(db: Database) -> None:
    assert _name(db) is None
    _add(db, "first")
    assert _name(db) == "first"
    _add(db, "second")  # committed elsewhere: no snapshot of the pinned connection hides it
    assert _name(db) == "second"


def test_each_thread_reads_on_its_own_connection(db: Database) -> None:
    _add(db, "shared")
    seen: list[object] = []

    def read() -> None:
        assert _name(db) == "shared"
        seen.append(db._pinned.get())

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 3


def test_a_connection_the_server_dropped_is_replaced(db: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("no server to drop the connection")
    _add(db, "before")
    assert _name(db) == "before"
    pinned = db._pinned.get()
    if backend == "postgresql":
        pid = pinned.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        kill = f"SELECT pg_terminate_backend({pid})"
    else:
        pid = pinned.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        kill = f"KILL {pid}"
    with db.engine.connect() as admin:
        admin.exec_driver_sql(kill)
        admin.commit()
    assert _name(db) == "before"  # read again on a new connection, no error for the caller
    assert db._pinned.get() is not pinned


def test_an_error_that_is_not_a_disconnect_is_raised(db: Database) -> None:
    with pytest.raises(StorageError):
        db.read_row(text("SELECT no_such_column FROM participants"), {})
    _add(db, "after")
    assert _name(db) == "after"  # the thread's next read works on a fresh connection
