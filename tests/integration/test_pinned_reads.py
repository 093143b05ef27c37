"""The per-thread autocommit connections behind the per-call standing read (db.read_driver)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import ParticipantRow, core
from credit_gateway.errors import StorageError

_PARTICIPANTS = core(ParticipantRow)
_NAMED = "SELECT name FROM participants WHERE id = 'p-1'"


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
    row = db.read_driver(_NAMED, {})
    return None if row is None else str(row[0])


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
        db.read_driver("SELECT no_such_column FROM participants", {})
    _add(db, "after")
    assert _name(db) == "after"  # the thread's next read works on a fresh connection


def test_the_standing_read_sees_suspension_and_revocation_at_once(db: Database) -> None:
    """The per-call read as the interceptor makes it (storage/trust.py StandingReader)."""
    from credit_gateway.adapters.storage.trust import StandingReader
    from credit_gateway.domain.participants import ParticipantStatus, Standing

    reader = StandingReader(db)
    standing = Standing("p-1", "jti-1")
    assert reader.read(standing) == (None, False)
    _add(db, "agency")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE participants SET licence_number = 'LIC-1',"
                " licence_valid_until = '2099-01-01 00:00:00' WHERE id = 'p-1'"
            )
        )
    participant, revoked = reader.read(standing)
    assert participant is not None
    assert (participant.id, participant.status, revoked) == ("p-1", ParticipantStatus.ACTIVE, False)
    assert participant.licence is not None
    assert participant.licence.valid_until.year == 2099  # an aware time, on every backend
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE participants SET status = 'suspended' WHERE id = 'p-1'"))
        conn.execute(
            text("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('jti-1', CURRENT_TIMESTAMP)")
        )
    participant, revoked = reader.read(standing)
    assert participant is not None
    assert (participant.status, revoked) == (ParticipantStatus.SUSPENDED, True)
