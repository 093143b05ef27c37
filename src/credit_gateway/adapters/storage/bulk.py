"""Many rows of one table in one statement, bound as the driver takes them (the hot paths: a
submission's or a push's records, their outbox entries, the feed's changes).

A Core insert of a list of dicts spends most of its time on SQLAlchemy's work per row: a
parameter dict built for each, then each value passed through its type's bind processor. For
10,000 records that was 40-60 µs a row, twice what the database took. `insert_many` asks
each column's type for its processor once per dialect (`bind_processor`, the same processor
SQLAlchemy's own insert runs), applies only those that exist, and hands the driver the rows
through `exec_driver_sql`: the SQL SQLAlchemy compiles for the table, in the session's
transaction, so the rows commit or roll back with everything else the transaction writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.orm import Session

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    """One table's insert on one dialect: its SQL, where each column's value goes, and the
    converters of the columns that have one."""

    sql: str
    positions: tuple[int, ...] | None  # positional paramstyle: the columns in the SQL's order
    names: tuple[str, ...]  # named paramstyle: the columns' parameter names
    converters: tuple[tuple[int, Convert], ...]


_plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}  # a few tables, a dialect or two
_lock = threading.Lock()


def insert_many(
    session: Session, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> None:
    """Inserts `rows`, each the values of `columns` in that order, as they are in Python (an
    aware datetime for a UTCDateTime): converted here as the columns' types convert them."""
    if not rows:
        return
    connection = session.connection()
    plan = _plan(connection.dialect, table, columns)
    converted: Sequence[Sequence[Any]] = rows
    if plan.converters:
        # A batch repeats its times (when it was submitted, when its records occurred), and a
        # processor is a function of the value: each distinct value converted once.
        memo: dict[Any, Any] = {}
        converted = [_converted(row, plan.converters, memo) for row in rows]
    if plan.positions is None:
        params: Any = [dict(zip(plan.names, row, strict=True)) for row in converted]
    elif plan.positions == tuple(range(len(columns))):
        params = [tuple(row) for row in converted]
    else:
        params = [tuple(row[i] for i in plan.positions) for row in converted]
    connection.exec_driver_sql(plan.sql, params)


def _converted(
    row: Sequence[Any], converters: tuple[tuple[int, Convert], ...], memo: dict[Any, Any]
) -> list[Any]:
    values = list(row)
    for index, convert in converters:
        value = values[index]
        if value is None:  # NULL: no processor to run (_compile made sure)
            continue
        key = (index, type(value), value)
        try:
            values[index] = memo[key]
        except KeyError:
            values[index] = memo[key] = convert(value)
        except TypeError:  # not hashable
            values[index] = convert(value)
    return values


def _plan(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> _Plan:
    key = (dialect.name, table.name, columns)
    plan = _plans.get(key)
    if plan is None:
        with _lock:
            plan = _plans.get(key) or _compile(dialect, table, columns)
            _plans[key] = plan
    return plan


def _compile(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> _Plan:
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {unknown[0]}")
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    converters = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            if process(None) is not None:  # _converted keeps None as it is, untouched
                raise ValueError(f"{table.name}.{name}: its type binds None as a value")
            converters.append((index, process))
    params = compiled.params  # the bind names, which are the column keys, in the SQL's order
    if set(params) != set(columns):
        raise ValueError(f"{table.name}: the insert binds {sorted(params)}, not {columns}")
    positions = None
    if compiled.positional:
        assert compiled.positiontup is not None
        positions = tuple(columns.index(name) for name in compiled.positiontup)
    return _Plan(compiled.string, positions, columns, tuple(converters))
