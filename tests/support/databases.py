"""Test databases: one fresh database per backend per test session, emptied between tests.

Backends come from CREDIT_GATEWAY_TEST_DATABASES (comma-separated: sqlite, postgresql, mariadb);
`make test` names all three. Each server database gets a unique name and is dropped at the end,
so concurrent runs never see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import migrate
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import Base, FeedHeadRow

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/{db}", "test"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/{db}", "test"),
}


def backends() -> list[str]:
    names = [
        n.strip()
        for n in os.environ.get("CREDIT_GATEWAY_TEST_DATABASES", "sqlite").split(",")
        if n.strip()
    ]
    unknown = set(names) - {"sqlite", *SERVERS}
    if unknown:
        raise RuntimeError(f"unknown test databases: {sorted(unknown)}")
    return names


@contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """A migrated, empty database; yields its URL and drops it afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'gateway.db'}"
        _migrate(url)
        yield url
        return
    template, admin_db = SERVERS[backend]
    name = "cg_" + secrets.token_hex(6)
    admin = create_engine(template.format(db=admin_db), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        url = template.format(db=name)
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def empty(engine: Engine) -> None:
    """Delete every row, children first, keeping the schema (faster than a new database), and
    put back the feed's counter row the migration makes (its first appenders would race to
    make it again: two pushes at once, one refused)."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(FeedHeadRow.__table__.insert(), [{"id": 1, "seq": 0, "floor": 0}])


def rows_but_the_log(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, but the audit log's tables and the runners' leases: the log's
    integrator and checkpointer, and the lease renewals, write those on their own time, so a
    test asserting "this refusal changed nothing" compares the rest and checks the log itself."""
    return {
        table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
        for table in Base.metadata.sorted_tables
        if not table.name.startswith("audit_") and not table.name.endswith("leases")
    }
