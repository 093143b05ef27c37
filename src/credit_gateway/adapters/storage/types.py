"""Column types that behave the same on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, LargeBinary, String
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC with microseconds.

    SQLite and MariaDB keep no zone, and MariaDB's DATETIME drops fractions unless told fsp=6.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class _Bytes(LargeBinary):
    """Bytes bound as they are. sqlite3 and psycopg take bytes as BLOB and bytea; LargeBinary
    wraps every value in the driver's Binary first, 15% of storing a batch of records."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


# MariaDB's BLOB stops at 64 KiB; payloads and documents may be larger.
Blob = _Bytes().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
# A SHA-256 that is looked up: MariaDB indexes a BLOB only by a prefix, a VARBINARY whole.
Hash = _Bytes(32).with_variant(mysql.VARBINARY(32), "mysql", "mariadb")


def ExactText(length: int) -> String:  # noqa: N802 - a type, spelled like one
    """A string compared byte for byte: a key a caller chooses (a record id, an idempotency key).
    MariaDB's default collation (utf8mb4_general_ci) would make `r-A`, `r-a` and `r-a ` one key,
    and every 4-byte character equal to every other; utf8mb4_nopad_bin compares code points and
    keeps trailing spaces."""
    exact = mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_nopad_bin")
    return String(length).with_variant(exact, "mysql", "mariadb")
