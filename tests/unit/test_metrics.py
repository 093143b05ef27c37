"""What credit_gateway.metrics counts, and that no label can take an unbounded value (issue #11
item 20): reasons, the interceptor's per-method children, admission and database-pool levels
read at scrape time, storage errors by kind."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from credit_gateway import metrics
from credit_gateway.adapters.grpc.interceptor import _Counted
from credit_gateway.adapters.grpc.limits import HEALTH_CHECK, Limits
from credit_gateway.adapters.storage.db import driver_error, error_kind
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.config import Settings

METHOD = "/credit_gateway.v1.Test/Unit"


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def limits() -> Iterator[Limits]:
    made = Limits.from_settings(Settings())
    metrics.watch(made)
    yield made
    metrics.unwatch(made)


# --- reasons -----------------------------------------------------------------------------------


def test_the_gateways_reasons_are_their_own_label() -> None:
    for reason in ("TOKEN_MISSING", "SCOPE_MISSING", "CONSENT_REVOKED", "STREAM_LIMIT"):
        assert metrics.bounded_reason(reason) == reason


@pytest.mark.parametrize(
    "reason", ["", "token_missing", "11010519491231002X", "A" * 65, "TOKEN MISSING", "X-Y"]
)
def test_anything_else_is_other(reason: str) -> None:
    assert metrics.bounded_reason(reason) == metrics.OTHER


@given(st.text(max_size=80))
def test_no_text_becomes_a_label_unless_it_is_a_reason_constant(text: str) -> None:
    label = metrics.bounded_reason(text)
    assert label == metrics.OTHER or (label == text and text.isupper() and len(text) <= 64)
    assert len(metrics._reasons) <= metrics.MAX_REASONS


def test_distinct_reasons_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_reasons", set())
    monkeypatch.setattr(metrics, "MAX_REASONS", 2)
    assert [metrics.bounded_reason(r) for r in ("A_1", "A_2", "A_3", "A_1")] == [
        "A_1",
        "A_2",
        metrics.OTHER,
        "A_1",
    ]


# --- the interceptor's counts ------------------------------------------------------------------


def test_a_call_is_counted_by_its_code_and_timed_by_its_method() -> None:
    counted = _Counted(METHOD)
    ok = value("credit_gateway_grpc_calls_total", method=METHOD, code="OK")
    denied = value("credit_gateway_grpc_calls_total", method=METHOD, code="PERMISSION_DENIED")
    timed = value("credit_gateway_grpc_call_seconds_count", method=METHOD)
    counted.ended(0.0)
    counted.ended(0.0, grpc.StatusCode.PERMISSION_DENIED)
    counted.ended(0.0, grpc.StatusCode.PERMISSION_DENIED)
    assert value("credit_gateway_grpc_calls_total", method=METHOD, code="OK") == ok + 1
    assert (
        value("credit_gateway_grpc_calls_total", method=METHOD, code="PERMISSION_DENIED")
        == denied + 2
    )
    assert value("credit_gateway_grpc_call_seconds_count", method=METHOD) == timed + 3


def test_a_refusal_is_counted_by_its_reason_never_by_an_unbounded_one() -> None:
    counted = _Counted(METHOD)
    before = value("credit_gateway_refusals_total", method=METHOD, reason="SCOPE_MISSING")
    other = value("credit_gateway_refusals_total", method=METHOD, reason="OTHER")
    counted.refused("SCOPE_MISSING")
    counted.refused("subject 11010519491231002X")
    assert value("credit_gateway_refusals_total", method=METHOD, reason="SCOPE_MISSING") == (
        before + 1
    )
    assert value("credit_gateway_refusals_total", method=METHOD, reason="OTHER") == other + 1


# --- levels, read when scraped -----------------------------------------------------------------


def test_admission_slots_and_open_streams_are_read_from_the_limits(limits: Limits) -> None:
    def level(name: str, **labels: str) -> float:
        return value(name, **labels)

    calls = level("credit_gateway_grpc_admission_in_use", pool="calls")
    health = level("credit_gateway_grpc_admission_in_use", pool="health")
    slots = level("credit_gateway_grpc_admission_slots", pool="calls")
    with limits.unary(METHOD), limits.unary(HEALTH_CHECK), limits.stream(METHOD, "cert-a"):
        assert level("credit_gateway_grpc_admission_in_use", pool="calls") == calls + 1
        assert level("credit_gateway_grpc_admission_in_use", pool="health") == health + 1
        assert level("credit_gateway_grpc_open_streams", method=METHOD) >= 1
        with limits.stream(METHOD, "cert-b"):
            assert level("credit_gateway_grpc_open_streams", method=METHOD) >= 2
    assert level("credit_gateway_grpc_admission_in_use", pool="calls") == calls
    assert level("credit_gateway_grpc_admission_slots", pool="calls") == slots
    assert slots >= Settings().grpc_max_calls
    # The client certificate a stream was counted for is no label.
    page = metrics.render()[0].decode()
    assert "cert-a" not in page
    assert "cert-b" not in page


def test_a_source_no_longer_watched_is_not_counted() -> None:
    made = Limits.from_settings(Settings())
    metrics.watch(made)
    with made.unary(METHOD):
        held = value("credit_gateway_grpc_admission_in_use", pool="calls")
        metrics.unwatch(made)
        assert value("credit_gateway_grpc_admission_in_use", pool="calls") == held - 1


def test_database_threads_busy_and_queued() -> None:
    blocking = Blocking(1, 2)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    async def scenario() -> dict[tuple[str, str], float]:
        first = asyncio.ensure_future(blocking.call(hold))
        second = asyncio.ensure_future(blocking.call(hold))
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        seen = {(name, labels[0]): v for name, labels, v in blocking.metric_samples()}
        release.set()
        await asyncio.gather(first, second)
        after = {(name, labels[0]): v for name, labels, v in blocking.metric_samples()}
        return {**{(n, p + " during"): v for (n, p), v in seen.items()}, **after}

    try:
        seen = asyncio.run(scenario())
    finally:
        blocking.shutdown()
    assert seen[metrics.DB_THREADS, "calls during"] == 1
    assert seen[metrics.DB_THREADS, "streams during"] == 2
    assert seen[metrics.DB_THREADS_BUSY, "calls during"] == 1
    assert seen[metrics.DB_JOBS_QUEUED, "calls during"] == 1
    assert seen[metrics.DB_THREADS_BUSY, "streams during"] == 0
    assert seen[metrics.DB_THREADS_BUSY, "calls"] == 0
    assert seen[metrics.DB_JOBS_QUEUED, "calls"] == 0


# --- storage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed"), "integrity"),
        (sqlite3.OperationalError("database is locked"), "operational"),
        (sqlite3.DatabaseError("file is not a database"), "database"),
        (ValueError("not a driver's"), "other"),
        (None, "other"),
    ],
)
def test_a_driver_error_is_counted_by_its_pep_249_class(
    error: BaseException | None, kind: str
) -> None:
    assert error_kind(error) == kind
    before = value("credit_gateway_storage_errors_total", kind=kind)
    driver_error(error)
    assert value("credit_gateway_storage_errors_total", kind=kind) == before + 1


def test_a_deadlock_is_counted_as_transient() -> None:
    class Deadlock(Exception):
        sqlstate = "40P01"

    before = value("credit_gateway_storage_errors_total", kind="transient")
    assert driver_error(Deadlock("deadlock detected")).transient
    assert value("credit_gateway_storage_errors_total", kind="transient") == before + 1


# --- the page ----------------------------------------------------------------------------------


def test_the_page_is_prometheus_text_and_documents_each_metric() -> None:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "credit_gateway_grpc_calls",
        "credit_gateway_grpc_call_seconds",
        "credit_gateway_refusals",
        "credit_gateway_storage_errors",
        "credit_gateway_oauth_requests",
        "credit_gateway_oauth_connections_refused",
        *metrics.GAUGES,
    ):
        assert name in families, name
        assert families[name].documentation
