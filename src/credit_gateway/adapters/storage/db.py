"""The engine and transactions.

`Database.transaction()` is the unit of work: one database transaction, committed when the block
ends and rolled back on any error. Driver errors leave it as StorageError, so callers see only the
gateway's own exceptions (STYLE lesson 5). A release and its audit entry are written inside one
such block.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from credit_gateway import metrics
from credit_gateway.errors import GatewayError, StorageError

RECYCLE_SECONDS = 300  # a connection is replaced once this old (pool and pinned alike)


def _private_file(path: Path) -> None:
    """The SQLite file made 0600 before SQLite opens it: it holds every record, and SQLite
    gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


def make_engine(url: str, *, pool_size: int = 16) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
        )
        _sqlite_setup(engine)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # No pre-ping: it costs a round trip per checkout on the hot path. A connection the server
    # dropped fails its call with STORAGE and is discarded; recycling keeps them fresh.
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=RECYCLE_SECONDS
    )


def _sqlite_setup(engine: Engine, *, transactions: bool = True) -> None:
    """WAL so readers never block the writer; BEGIN IMMEDIATE for write transactions, because a
    deferred transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when
    another writer committed in between, instead of waiting its turn. Without `transactions`
    (the pinned autocommit readers) no BEGIN is sent at all."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if not transactions:
        return

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN"
        )


class WriterMutex:
    """SQLite's one writer in this process: a mutex that threads block on and that the event
    loop can wait for without a thread. The loop's own writes never block it; while a database
    thread (the integrator, a consent change) holds it they wait here and then write on the
    loop, rather than each going to a thread and queueing there behind the others, where the
    writes would stay (the loop finding the mutex always taken) long after the holder let go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # over _waiters
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def acquire(self, blocking: bool = True) -> bool:
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()
        with self._guard:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def released(self) -> None:
        """Returns once the mutex is free, or at once if it is (someone may take it first)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._guard:
            if not self._lock.locked():
                return
            self._waiters.append((loop, future))
        await future


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter cancelled meanwhile
        future.set_result(None)


_WRITER_LOCKS: dict[str, WriterMutex] = {}


def _sqlite_writer_lock(engine: Engine) -> WriterMutex | None:
    """SQLite admits one writer; its busy handler makes the others sleep and poll, in steps of
    up to 100 ms. Queueing this process's writers on a mutex instead hands the database over at
    once (other processes still meet the busy timeout)."""
    if engine.dialect.name != "sqlite":
        return None
    return _WRITER_LOCKS.setdefault(str(engine.url), WriterMutex())


@contextmanager
def translated_errors() -> Iterator[None]:
    """Driver errors leave storage as StorageError; the gateway's own errors pass through."""
    try:
        yield
    except GatewayError:
        raise
    except DBAPIError as exc:
        raise driver_error(exc.orig) from exc
    except SQLAlchemyError as exc:
        metrics.STORAGE_ERRORS.labels("sqlalchemy").inc()
        raise StorageError(f"database error: {exc}") from exc


# Deadlocks and serialization failures: MySQL/MariaDB 1213 and 1205, PostgreSQL 40P01 and 40001.
_TRANSIENT_MYSQL = {1205, 1213}
_TRANSIENT_SQLSTATE = {"40P01", "40001"}


# PEP 249's exception classes, which every driver's errors derive from: the metric's kinds.
_PEP249_KINDS = {
    "IntegrityError": "integrity",
    "OperationalError": "operational",
    "DataError": "data",
    "ProgrammingError": "programming",
    "InterfaceError": "interface",
    "InternalError": "internal",
    "NotSupportedError": "not_supported",
    "DatabaseError": "database",
}


def error_kind(orig: BaseException | None, *, transient: bool = False) -> str:
    """What went wrong, as a bounded label: "transient" (deadlock, serialization failure) or
    the PEP 249 class the driver's error derives from (psycopg's hundreds of subclasses and
    MySQL's numbers would each be a label of their own)."""
    if transient:
        return "transient"
    for cls in type(orig).__mro__:
        kind = _PEP249_KINDS.get(cls.__name__)
        if kind is not None:
            return kind
    return "other"


def driver_error(orig: BaseException | None) -> StorageError:
    """The StorageError for an exception the DBAPI driver raised (sqlite3, psycopg, PyMySQL);
    counted in metrics.STORAGE_ERRORS by its kind."""
    args = getattr(orig, "args", ()) or (None,)
    transient = (
        args[0] in _TRANSIENT_MYSQL or getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATE
    )
    metrics.STORAGE_ERRORS.labels(error_kind(orig, transient=transient)).inc()
    return StorageError(f"database error: {type(orig).__name__}: {orig}", transient=transient)


class WriterBusy(Exception):  # control flow, never an answer
    """A no-wait write transaction found the writer taken: nothing was written. ``here``: by
    this process (`Database.writer_released` says when it is free), else by another one."""

    def __init__(self, message: str, *, here: bool) -> None:
        super().__init__(message)
        self.here = here


def _locked(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer_lock = _sqlite_writer_lock(engine)
        self._sqlite = engine.dialect.name == "sqlite"
        self._driver_errors: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self._pinned = _PinnedConnections(engine)
        self._writers = _PinnedConnections(engine, autocommit=False, recycle=RECYCLE_SECONDS)
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(write=True), expire_on_commit=False
        )

    @classmethod
    def connect(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        factory = self._write if write else self._read
        lock = self._writer_lock if write else None
        with (
            translated_errors(),
            lock or contextlib.nullcontext(),
            factory() as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def driver_transaction(self, *, wait: bool = True) -> Iterator[Any]:
        """A write transaction driven through the DBAPI cursor it yields, on this thread's own
        connection: for the release path's SQL text, prepared once per dialect
        (storage/release_store.py), which so skips SQLAlchemy's per-statement work and the
        pool's checkout. Commits when the block ends and rolls back on any exception; driver
        errors leave as StorageError, and a connection that broke is replaced for the thread's
        next transaction. SQLite: BEGIN IMMEDIATE, writers of this process queued on the
        mutex. Like read_driver, for the server's long-lived threads (one transaction at a time
        on each); connections older than RECYCLE_SECONDS are replaced between them.

        `wait=False` (SQLite only: the event loop's own writes) never waits: if this process's
        writer mutex is taken or another process holds the database, WriterBusy is raised
        before anything is written, and the caller goes to a database thread instead. Such a
        connection leaves checkpoints (which fsync) to the database threads."""
        if not wait and not self._sqlite:
            raise WriterBusy("only SQLite's writer runs on the caller's thread", here=False)
        lock = self._writer_lock
        if lock is not None and not lock.acquire(blocking=wait):
            raise WriterBusy("the writer is busy", here=True)
        try:
            with translated_errors():
                connection: Any = self._writers.get().connection.driver_connection
                cursor: Any = None
                try:
                    cursor = connection.cursor()
                    if self._sqlite:
                        if not wait:
                            cursor.execute("PRAGMA busy_timeout = 0")
                            cursor.execute("PRAGMA wal_autocheckpoint = 0")
                        try:
                            cursor.execute("BEGIN IMMEDIATE")
                        except self._driver_errors as exc:
                            if wait or not _locked(exc):
                                raise
                            raise WriterBusy(
                                "another process holds the database", here=False
                            ) from exc
                    # PostgreSQL and MariaDB begin with the first statement (psycopg: BEGIN).
                    yield cursor
                    connection.commit()
                except BaseException as exc:
                    if isinstance(exc, WriterBusy):
                        raise
                    if not self._rolled_back(connection, cursor, exc):
                        self._writers.drop()
                    if isinstance(exc, self._driver_errors):
                        raise driver_error(exc) from exc
                    raise
        finally:
            if lock is not None:
                lock.release()

    async def writer_released(self) -> None:
        """Waits, on the event loop, until this process's SQLite writer is free."""
        if self._writer_lock is not None:
            await self._writer_lock.released()

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database, without waiting for readers
        (the event loop's writes leave this to a database thread: it fsyncs)."""
        if self._sqlite:
            with translated_errors():
                self._pinned.get().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _rolled_back(self, connection: Any, cursor: Any, exc: BaseException) -> bool:
        """Roll the failed transaction back; False if the connection broke (or will not)."""
        if isinstance(exc, self._driver_errors) and self.engine.dialect.is_disconnect(
            exc,  # type: ignore[arg-type]  # the driver's own Error: what the dialect expects
            connection,
            cursor,
        ):
            return False
        try:
            connection.rollback()
        except self._driver_errors:
            return False
        return True

    def read_driver(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of a one-statement read, in SQL text with the driver's own
        placeholders (storage/dialects.py), on the DBAPI cursor of this thread's own
        autocommit connection: for the reads made on every call (the caller's standing), which
        so skip SQLAlchemy's per-statement work, the pool checkout and any BEGIN/ROLLBACK. A
        connection the server dropped is replaced and the read made once more (it changes
        nothing, so repeating it is safe). Each calling thread keeps its connection until
        dispose(): call this from the server's long-lived database threads."""
        rows = self._read_driver(sql, params, lambda cursor: cursor.fetchmany(1))
        return rows[0] if rows else None

    def read_all_driver(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Every row of a one-statement read, as read_driver reads its first."""
        return self._read_driver(sql, params, lambda cursor: cursor.fetchall())

    def _read_driver(
        self, sql: str, params: Mapping[str, Any], fetch: Callable[[Any], list[Sequence[Any]]]
    ) -> list[Sequence[Any]]:
        with translated_errors():
            for attempt in (1, 2):
                connection: Any = self._pinned.get().connection.driver_connection
                try:
                    cursor = connection.cursor()
                    try:
                        cursor.execute(sql, params)
                        return fetch(cursor)
                    finally:
                        cursor.close()
                except self._driver_errors as exc:
                    self._pinned.drop()
                    if attempt == 2 or not self.engine.dialect.is_disconnect(
                        exc,  # type: ignore[arg-type]  # the driver's own Error
                        connection,
                        None,
                    ):
                        raise driver_error(exc) from exc
                    # Read again on a new connection; the drop is counted all the same.
                    metrics.STORAGE_ERRORS.labels("disconnect").inc()
        raise AssertionError("not reached")

    def dispose(self) -> None:
        self._pinned.close_all()
        self._writers.close_all()
        self.engine.dispose()


class _PinnedConnections:
    """One connection per thread, from an engine of their own (so they never take the main
    pool's connections); the server's threads are few and live as long as it does. Autocommit
    for the pinned reads; else the holder runs its transactions on it. `recycle`: a connection
    older than that many seconds is replaced when next taken (as the pool's recycling does)."""

    def __init__(
        self, engine: Engine, *, autocommit: bool = True, recycle: float | None = None
    ) -> None:
        self._main = engine
        self._autocommit, self._recycle = autocommit, recycle
        self._engine: Engine | None = None
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()

    def get(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        recycle = self._recycle
        if (
            conn is not None
            and recycle is not None
            and time.monotonic() - self._local.born > recycle
        ):
            self.drop()
            conn = None
        if conn is None:
            with self._lock:
                conn = self._connect()
                self._all.append(conn)
            self._local.conn, self._local.born = conn, time.monotonic()
        return conn

    def _connect(self) -> Connection:
        if self._engine is None:
            main = self._main
            # No pool size limit: one connection per thread that uses it, held until close_all.
            isolation = {"isolation_level": "AUTOCOMMIT"} if self._autocommit else {}
            self._engine = create_engine(main.url, pool_size=1, max_overflow=-1, **isolation)
            if main.dialect.name == "sqlite":  # no BEGIN sent: transactions BEGIN IMMEDIATE
                _sqlite_setup(self._engine, transactions=False)
        return self._engine.connect()

    def drop(self) -> None:
        """Forget this thread's connection (broken, or to be replaced) and close it."""
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._all.remove(conn)
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()
                conn.close()

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
            for conn in conns:
                with contextlib.suppress(SQLAlchemyError):
                    conn.close()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
