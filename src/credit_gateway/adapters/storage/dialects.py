"""How each database spells the statements written as SQL text (the release transaction, the
caller's standing), and how its driver binds and returns times: for the hot paths that run on
the DBAPI cursor, past SQLAlchemy (storage/db.py Database.driver_transaction, read_driver)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what the statements need, and how its driver binds times."""

    pyformat: bool  # %(name)s placeholders (psycopg, PyMySQL); else :name (sqlite3)
    for_update: str
    insert_ignore: str
    on_conflict: str
    one_write_statement: bool  # the writes as one data-modifying WITH (PostgreSQL)
    stamp: Callable[[datetime], Any]
    day: Callable[[date], Any]
    when: Callable[[Any], datetime]

    def sql(self, text: str) -> str:
        text = text.format(
            for_update=self.for_update,
            insert_ignore=self.insert_ignore,
            on_conflict=self.on_conflict,
            items="{items}",
            source="{source}",
        )
        return re.sub(r":(\w+)", r"%(\1)s", text) if self.pyformat else text


def _naive_utc(value: datetime) -> datetime:
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None)


def _as_is(value: date) -> date:
    return value


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _sqlite_stamp(value: datetime) -> str:
    """As SQLAlchemy's SQLite DATETIME stores it (storage/types.UTCDateTime: naive UTC)."""
    return _naive_utc(value).isoformat(" ", "microseconds")


def _sqlite_when(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


_SQLITE = Dialect(
    False, "", "INSERT OR IGNORE", "", False, _sqlite_stamp, date.isoformat, _sqlite_when
)
_POSTGRESQL = Dialect(
    True, " FOR UPDATE", "INSERT", " ON CONFLICT DO NOTHING", True, _naive_utc, _as_is, _aware
)
_MYSQL = Dialect(True, " FOR UPDATE", "INSERT IGNORE", "", False, _naive_utc, _as_is, _aware)
DIALECTS = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL, "mysql": _MYSQL, "mariadb": _MYSQL}
