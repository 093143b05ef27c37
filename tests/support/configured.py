"""A test gateway with settings of its own (small limits, short timeouts), stopped when the
block ends: the `harness` fixture with overrides, on the session's database or on a SQLite
database of its own (for what does not depend on the database: admission, processes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.databases import empty, fresh_database
from support.harness import Clock, Harness, start_harness

from credit_gateway.adapters.storage.db import make_engine


@contextmanager
def configured_harness(
    tmp: Path, certs_dir: Path, database_url: str, clock: Clock | None = None, **overrides: Any
) -> Iterator[Harness]:
    engine = make_engine(database_url)
    empty(engine)
    engine.dispose()
    h = start_harness(tmp, certs_dir, database_url, clock, **overrides)
    try:
        yield h
    finally:
        h.close()


@contextmanager
def sqlite_harness(tmp: Path, certs_dir: Path, **overrides: Any) -> Iterator[Harness]:
    """Runs once whatever backends the session tests, without parametrising the test."""
    with (
        fresh_database("sqlite", tmp) as url,
        configured_harness(tmp, certs_dir, url, **overrides) as h,
    ):
        yield h
