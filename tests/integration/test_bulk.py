"""storage/bulk.insert_many on every backend: rows bound as SQLAlchemy's own insert binds them
(aware datetimes stored as UTC and read back equal, NULLs as NULLs, bytes as bytes, texts byte
for byte), in the session's transaction (a rollback takes them back), and what it cannot bind
as the columns' types would refused before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select

from credit_gateway.adapters.storage import bulk
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.types import Blob, ExactText, UTCDateTime

METADATA = MetaData()
# The column types of the tables insert_many writes (records, record_changes), without their
# foreign keys.
PROBE = Table(
    "bulk_probe",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", ExactText(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=True),
    Column("blob", Blob, nullable=True),
    Column("note", String(32), nullable=True),
)
COLUMNS = ("id", "name", "at", "until", "blob", "note")
AT = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)
EAST = timezone(timedelta(hours=8))


@pytest.fixture
def probe(db: Database) -> Iterator[Database]:
    METADATA.create_all(db.engine)
    try:
        yield db
    finally:
        METADATA.drop_all(db.engine)


def rows(count: int) -> list[tuple[object, ...]]:
    # Every other row in another zone and with NULLs: both as the ORM would store them.
    return [
        (
            n,
            f"r-{n}" if n % 3 else f"r-{n} ",  # a trailing space is part of the key
            AT + timedelta(seconds=n) if n % 2 else (AT + timedelta(seconds=n)).astimezone(EAST),
            None if n % 2 else AT + timedelta(days=n),
            None if n % 2 else bytes([n % 256]) * 40,
            None if n % 2 else "note",
        )
        for n in range(count)
    ]


def utc(value: object) -> object:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def read_back(db: Database) -> list[tuple[object, ...]]:
    with db.transaction() as session:
        found = session.execute(select(*PROBE.c).order_by(PROBE.c.id))
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in found]


def test_rows_read_back_as_written(probe: Database) -> None:
    written = rows(1_200)  # more than one batch of any driver's
    with probe.transaction() as session:
        bulk.insert_many(session, PROBE, COLUMNS, written)
    found = read_back(probe)
    assert found == [tuple(utc(v) for v in row) for row in written]
    assert {r[2].tzinfo for r in found} == {UTC}  # type: ignore[union-attr]


def test_columns_in_another_order_land_in_theirs(probe: Database) -> None:
    order = tuple(reversed(COLUMNS))
    with probe.transaction() as session:
        bulk.insert_many(session, PROBE, order, [tuple(reversed(r)) for r in rows(3)])
    assert read_back(probe) == [tuple(utc(v) for v in row) for row in rows(3)]


def test_a_rollback_takes_the_rows_back(probe: Database) -> None:
    def fails_after_the_insert() -> None:
        with probe.transaction() as session:
            bulk.insert_many(session, PROBE, COLUMNS, rows(10))
            raise RuntimeError("the transaction fails after the insert")

    with pytest.raises(RuntimeError):
        fails_after_the_insert()
    assert read_back(probe) == []


def test_nothing_to_insert_is_no_statement(probe: Database) -> None:
    with probe.transaction() as session:
        bulk.insert_many(session, PROBE, COLUMNS, [])
    assert read_back(probe) == []


def test_a_type_that_binds_none_as_a_value_is_refused(probe: Database) -> None:
    # JSON binds None as the JSON null, which insert_many (NULL left as it is) would not write.
    table = Table(
        "bulk_json", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON)
    )
    with pytest.raises(ValueError, match=r"bulk_json\.doc"), probe.transaction() as session:
        bulk.insert_many(session, table, ("id", "doc"), [(1, None)])


def test_a_column_the_table_lacks_is_refused(probe: Database) -> None:
    with pytest.raises(ValueError, match="no column no_such"), probe.transaction() as session:
        bulk.insert_many(session, PROBE, ("id", "no_such"), [(1, 2)])
    assert read_back(probe) == []


def test_a_column_left_out_that_the_insert_binds_is_refused(probe: Database) -> None:
    # A Python-side default is bound by SQLAlchemy's insert; insert_many does not make it up.
    table = Table(
        "bulk_default",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("n", Integer, default=7),
    )
    with pytest.raises(ValueError, match="bulk_default"), probe.transaction() as session:
        bulk.insert_many(session, table, ("id",), [(1,)])


def test_one_instant_in_two_zones_is_one_time(probe: Database) -> None:
    # insert_many converts each distinct value of a column once: equal instants are equal.
    same = [(1, "a", AT, AT, None, None), (2, "b", AT.astimezone(EAST), AT, None, None)]
    with probe.transaction() as session:
        bulk.insert_many(session, PROBE, COLUMNS, same)
    assert [r[2] for r in read_back(probe)] == [AT, AT]
