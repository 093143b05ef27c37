"""The database server drops the gateway's connections under load (issue "One event loop"):
every call that fails says UNAVAILABLE with reason STORAGE_UNAVAILABLE (a retry may succeed;
never INTERNAL) and is logged at ERROR; every release a client saw has its audit entry; and the
gateway answers again once the database is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from support.harness import Harness
from support.rpc import status_of
from support.scenario import MAX_USES, Consented, audit_ids, consented
from support.waiting import wait_until

from credit_gateway.adapters.storage.db import Database

WORKERS = 3
CALLS_PER_WORKER = 150  # a bound: the workers stop long before, when the test is done
KILL_ROUNDS = 5
USES_PER_TOKEN = MAX_USES - 10  # a failed call may still have counted its use: leave room
RECOVERY_SECONDS = 10


@pytest.fixture
def server_backend(backend: str) -> str:
    if backend == "sqlite":
        pytest.skip("SQLite is a file the gateway opens itself: no server connection to kill")
    return backend


def kill_connections(backend: str, url: str) -> int:
    """Ends every other session on the test database, as a database restart or a failover
    would; returns how many."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                killed = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
                return len(killed)
            ids = conn.scalars(
                text(
                    "SELECT id FROM information_schema.PROCESSLIST "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).all()
            for session_id in ids:
                try:
                    conn.execute(text(f"KILL {int(session_id)}"))
                except Exception as gone:  # it ended by itself meanwhile (1094 unknown thread)
                    if "1094" not in str(gone):
                        raise
            return len(ids)
    finally:
        engine.dispose()


@dataclass
class ConsentTokens:
    """Consent tokens for the workers, each handed out at most USES_PER_TOKEN times."""

    tokens: list[str]
    _handed: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str | None:
        with self._lock:
            for token in self.tokens:
                if self._handed[token] < USES_PER_TOKEN:
                    self._handed[token] += 1
                    return token
        return None


@dataclass
class Load:
    """Workers making consented QueryAuthorized calls until stopped, and what they saw."""

    c: Consented
    tokens: ConsentTokens
    stop: threading.Event = field(default_factory=threading.Event)
    released: list[str] = field(default_factory=list)  # the inquiry ids the clients were given
    failures: Counter[tuple[grpc.StatusCode, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def work(self) -> None:
        for _ in range(CALLS_PER_WORKER):
            token = self.tokens.next()
            if self.stop.is_set() or token is None:
                return
            self.attempt(token)

    def attempt(self, token: str) -> bool:
        """One call; what came of it is kept. True if it was released."""
        try:
            answer = self.c.query(token)
        except grpc.RpcError as error:
            with self._lock:
                self.failures[status_of(error)] += 1
            return False
        with self._lock:
            self.released.append(answer.inquiry_id)
        return True

    def released_count(self) -> int:
        with self._lock:
            return len(self.released)


@pytest.fixture
def load(harness: Harness, server_backend: str) -> Load:
    c = consented(harness)
    tokens = ConsentTokens(
        [c.grant() for _ in range(WORKERS * CALLS_PER_WORKER // USES_PER_TOKEN + 1)]
    )
    return Load(c, tokens)


def test_connections_killed_under_load_fail_calls_unavailable_and_lose_no_audit_entry(
    harness: Harness,
    server_backend: str,
    load: Load,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = harness
    caplog.set_level(logging.INFO, logger="credit_gateway.calls")
    workers = [threading.Thread(target=load.work) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    killed = []
    try:
        wait_until(lambda: load.released_count() >= 10, what="for the load to be on")
        for _ in range(KILL_ROUNDS):
            killed.append(kill_connections(server_backend, h.settings.database_url))
            time.sleep(0.3)
    finally:
        load.stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert sum(killed) > 0

    # The gateway answers again (once the connections it still holds are found dead).
    token = load.tokens.next()
    assert token is not None
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not load.attempt(token):
        assert time.monotonic() < deadline, "the gateway did not recover"

    print(f"killed {killed}; released {len(load.released)}; failed {dict(load.failures)}")
    assert load.failures, "no call met a dropped connection: the test killed nothing in use"
    assert set(load.failures) == {(grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")}
    logged = [r for r in caplog.records if r.name == "credit_gateway.calls"]
    assert [r for r in logged if r.levelno >= logging.ERROR and r.getMessage() == "failed"]
    assert not [r for r in logged if r.getMessage() == "unhandled error"]
    assert not [r for r in logged if r.getMessage() == "refused"]  # nothing blamed on a caller

    # Every release anybody saw is in the audit log (read on connections of our own: the
    # gateway's were killed too).
    reader = Database.connect(h.settings.database_url)
    try:
        assert set(load.released) <= audit_ids(reader)
    finally:
        reader.dispose()
