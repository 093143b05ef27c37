"""Regression: `var/gateway.db` and its WAL files were created 0644, readable by every local
user, though the database holds every record (issue "What outside clients and auditors found",
item 15). The file is now made 0600 before SQLite opens it; SQLite gives its -wal and -shm
files the database file's permissions."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from credit_gateway.adapters.storage.db import Database


def test_the_sqlite_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "gateway.db"
    db = Database.connect(f"sqlite:///{path}")
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        files = [p for p in path.parent.iterdir() if p.name.startswith("gateway.db")]
        assert {p.name for p in files} >= {"gateway.db", "gateway.db-wal", "gateway.db-shm"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    finally:
        db.dispose()
