"""Admission on the one event loop (issue "One event loop"): hundreds of idle streams from any
certificate of our CA, registered or not, leave a consented QueryAuthorized fast; streams over
their limits are refused at once; unary calls have their own cap that streams never take; a
client stream that idles, or any stream that stays open too long, is ended by the server.

Admission happens before the database is touched: these run on SQLite, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from support.configured import sqlite_harness
from support.harness import Harness, metadata
from support.rpc import status_of
from support.scenario import Consented, consented, punishment, stored_record_ids
from support.streams import (
    OPEN,
    REFLECTION_V1,
    REFLECTION_V1ALPHA,
    Outcome,
    Refused,
    Streams,
)
from support.waiting import wait_until

from credit_gateway.adapters.grpc.v1 import submission_pb2_grpc
from credit_gateway.devpki import pki
from credit_gateway.services import operator as registry

BUSY = grpc.StatusCode.RESOURCE_EXHAUSTED
SERVING = health_pb2.HealthCheckResponse.SERVING
QUERY_SECONDS = 1.0  # the longest a consented query may take beside the open streams


@pytest.fixture
def gateway_with(tmp_path: Path, certs_dir: Path) -> Iterator[Any]:
    """Starts a gateway with the settings a test names; stops it after."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> Harness:
            return stack.enter_context(sqlite_harness(tmp_path, certs_dir, **overrides))

        yield start


@pytest.fixture
def streams_for() -> Iterator[Any]:
    opened: list[Streams] = []

    def open_for(h: Harness) -> Streams:
        opened.append(Streams(h.target, h.settings.ca_cert))
        return opened[-1]

    yield open_for
    for streams in opened:
        streams.close()


def unregistered(h: Harness, name: str = "never-registered") -> pki.IssuedCert:
    """A certificate from our CA whose holder was never registered as a participant."""
    return pki.issue_participant(h.settings.certs_dir, name, "credit-agency")


def suspended(h: Harness) -> pki.IssuedCert:
    agency = h.add_participant("suspended-agency", "credit-agency")
    registry.suspend_participant(h.settings, agency.id)
    return agency.cert


def counted(outcomes: list[Outcome]) -> Counter[Any]:
    """Outcomes by kind: OPEN, or (code, reason) of a refusal that echoed its request id."""
    kinds: Counter[Any] = Counter()
    for outcome in outcomes:
        if isinstance(outcome, Refused):
            assert outcome.echoed, outcome  # x-request-id comes back on refusals too
            kinds[outcome.code, outcome.reason] += 1
        else:
            kinds[outcome] += 1
    return kinds


def timed_queries(c: Consented, token: str, n: int) -> list[float]:
    """Seconds each of `n` consented QueryAuthorized calls took; each must release."""
    took = []
    for _ in range(n):
        started = time.monotonic()
        answer = c.query(token)
        took.append(time.monotonic() - started)
        assert [r.item_code for r in answer.records] == ["ADM.PUNISHMENT"]
    return took


# --- 450 idle streams --------------------------------------------------------------------------


def test_450_idle_streams_from_any_certificate_leave_a_consented_query_fast(
    gateway_with: Any, streams_for: Any
) -> None:
    # Enough per certificate for 70 Health watches; per method, so one certificate can also
    # hold reflection and submission streams beside them.
    h = gateway_with(streams_per_caller=70)
    c = consented(h)
    stranger, banned, provider = unregistered(h), suspended(h), c.provider.cert
    token = c.grant()
    timed_queries(c, token, 1)  # connection and first-call costs out of the figures
    streams = streams_for(h)

    health = [
        *streams.health_watches(provider, 70),
        *streams.health_watches(stranger, 70),
        *streams.health_watches(banned, 60),
    ]
    reflection = [
        *streams.reflections(REFLECTION_V1ALPHA, [(provider, 34), (stranger, 33), (banned, 33)]),
        *streams.reflections(REFLECTION_V1, [(provider, 34), (stranger, 33), (banned, 33)]),
    ]
    now = h.clock.now
    slow = streams.submissions(
        provider,
        h.token(c.provider),
        [punishment(c.provider, f"slow-{i}", now) for i in range(50)],
    )
    # Submissions need a token: the stranger has none and the suspended agency's is refused,
    # at once, so neither holds a slot.
    refused_submissions = [
        *streams.submissions(stranger, None, [punishment(c.provider, "x-1", now)] * 3),
        *streams.submissions(
            banned,
            h.token(h.participants["suspended-agency"]),
            [punishment(c.provider, "x-2", now)] * 3,
        ),
    ]

    assert counted(health) == {OPEN: 200}
    assert counted(reflection) == {OPEN: 200}
    assert counted(slow) == {OPEN: 50}
    assert counted(refused_submissions) == {
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"): 3,
        (grpc.StatusCode.PERMISSION_DENIED, "PARTICIPANT_SUSPENDED"): 3,
    }
    assert h.running.limits.open_streams() == 450

    took = timed_queries(c, token, 10)
    median, worst = statistics.median(took) * 1000, max(took) * 1000
    print(f"QueryAuthorized beside 450 streams: median {median:.1f} ms, max {worst:.1f} ms")
    assert max(took) < QUERY_SECONDS, took

    # The provider is at its limit of Health watches, not of other methods.
    assert counted(streams.health_watches(provider, 1)) == {(BUSY, "STREAM_LIMIT"): 1}
    assert counted(streams.reflections(REFLECTION_V1, [(provider, 1)])) == {OPEN: 1}
    assert streams.open_count() == 451
    assert stored_record_ids(h.db) == ["seed-1"]  # nothing of a stream that has not ended

    streams.close()
    wait_until(lambda: h.running.limits.open_streams() == 0, what="for the slots to be freed")
    assert stored_record_ids(h.db) == ["seed-1"]  # the 50 cancelled submissions left nothing


def test_streams_over_the_server_total_are_refused_server_busy(
    gateway_with: Any, streams_for: Any
) -> None:
    h = gateway_with(streams_per_caller=3, streams_total=5)
    provider = h.add_participant("hubei-amr", "providing-unit").cert
    stranger = unregistered(h)
    streams = streams_for(h)

    assert counted(streams.health_watches(provider, 4)) == {OPEN: 3, (BUSY, "STREAM_LIMIT"): 1}
    assert counted(streams.health_watches(stranger, 3)) == {OPEN: 2, (BUSY, "SERVER_BUSY"): 1}
    # The total is per method: reflection still has room.
    assert counted(streams.reflections(REFLECTION_V1, [(stranger, 1)])) == {OPEN: 1}


# --- unary calls -------------------------------------------------------------------------------


@contextlib.contextmanager
def database_threads_held(h: Harness) -> Iterator[None]:
    """Every thread that runs unary calls' transactions kept busy, as a stalled database would:
    the calls admitted meanwhile wait, each holding its admission slot. On SQLite the writer's
    mutex is held too, so that no release is made on the loop either."""
    gate = threading.Event()
    blocking, loop = h.running.served.blocking, h.running.loop
    writer = h.db._writer_lock
    held = [
        asyncio.run_coroutine_threadsafe(blocking.call(gate.wait, 20), loop)
        for _ in range(h.settings.db_threads)
    ]
    if writer is not None:
        writer.acquire()
    try:
        yield
    finally:
        if writer is not None:
            writer.release()
        gate.set()
        for future in held:
            future.result(timeout=10)


def test_unary_calls_beyond_grpc_max_calls_are_refused_and_streams_do_not_count(
    gateway_with: Any, streams_for: Any
) -> None:
    h = gateway_with(grpc_max_calls=2, db_threads=1)
    c = consented(h)
    token = c.grant()
    streams = streams_for(h)
    check = health_pb2_grpc.HealthStub(c.agency.channel).Check
    assert counted(streams.health_watches(c.provider.cert, 5)) == {OPEN: 5}

    with database_threads_held(h):
        waiting = [c.query_future(token) for _ in range(2)]
        # Both are admitted and wait for the database thread: the next call finds no slot.
        wait_until(lambda: h.running.limits.unary_calls == 2, what="the two calls admitted")
        with pytest.raises(grpc.RpcError) as refused:
            c.query(token)
        assert status_of(refused.value) == (BUSY, "SERVER_BUSY")
        assert ("x-request-id", "over-the-cap") in _refused_trailers(c, token)
        # Health checks have slots of their own, and streams are not unary calls.
        assert check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
        assert counted(streams.health_watches(c.agency.cert, 3)) == {OPEN: 3}
        assert not any(f.done() for f in waiting)
    for future in waiting:  # the admitted calls were only delayed
        assert [r.item_code for r in future.result(timeout=10).records] == ["ADM.PUNISHMENT"]


def _refused_trailers(c: Any, token: str) -> tuple[tuple[str, str], ...]:
    with pytest.raises(grpc.RpcError) as refused:
        c.query(token, request_id="over-the-cap")
    assert status_of(refused.value) == (BUSY, "SERVER_BUSY")
    return tuple(refused.value.trailing_metadata())  # type: ignore[attr-defined]


# --- the server's timeouts ----------------------------------------------------------------------


def trickle(records: list[Any], gap: float, stop: threading.Event) -> Iterator[Any]:
    """A client stream that sends each record `gap` seconds after the last, then waits (without
    half-closing) until `stop`: the server has to end it."""
    for record in records:
        yield record
        if stop.wait(gap):
            return
    stop.wait(20)


def submit_slowly(
    h: Harness, c: Consented, records: list[Any], gap: float
) -> tuple[grpc.RpcError, float]:
    stop = threading.Event()
    stub = submission_pb2_grpc.SubmissionServiceStub(c.provider.channel)
    started = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as ended:
            stub.SubmitRecords(
                trickle(records, gap, stop), metadata=metadata(h.token(c.provider)), timeout=15
            )
        return ended.value, time.monotonic() - started
    finally:
        stop.set()  # lets the client's request thread finish


def test_a_client_stream_idle_past_stream_idle_seconds_ends_and_stores_nothing(
    gateway_with: Any,
) -> None:
    h = gateway_with(stream_idle_seconds=1, stream_max_seconds=10)
    c = consented(h)
    error, took = submit_slowly(h, c, [punishment(c.provider, "idle-1", h.clock.now)], gap=20)
    assert status_of(error) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STREAM_IDLE")
    assert 1 <= took < 5
    assert stored_record_ids(h.db) == ["seed-1"]


def test_streams_open_past_stream_max_seconds_end_with_stream_deadline(
    gateway_with: Any,
) -> None:
    h = gateway_with(stream_idle_seconds=1, stream_max_seconds=2)
    c = consented(h)
    # A client stream that is never idle for a second, but goes on for too long.
    records = [punishment(c.provider, f"long-{i}", h.clock.now) for i in range(20)]
    error, took = submit_slowly(h, c, records, gap=0.4)
    assert status_of(error) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STREAM_DEADLINE")
    assert 2 <= took < 6
    assert stored_record_ids(h.db) == ["seed-1"]
    # A server stream (which has no idle limit).
    watch = health_pb2_grpc.HealthStub(c.agency.channel).Watch(
        health_pb2.HealthCheckRequest(), timeout=15
    )
    assert next(watch).status == SERVING
    with pytest.raises(grpc.RpcError) as ended:
        next(watch)
    assert status_of(ended.value) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STREAM_DEADLINE")


# --- reflection ----------------------------------------------------------------------------------


def reflect(channel: grpc.Channel, method: str, request: Any) -> Any:
    rpc = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    responses = rpc(iter([request]), timeout=5)
    try:
        return next(responses)
    finally:
        responses.cancel()


@pytest.mark.parametrize("method", [REFLECTION_V1, REFLECTION_V1ALPHA])
def test_reflection_lists_the_services_and_describes_reflection_v1(
    gateway_with: Any, method: str
) -> None:
    h = gateway_with()
    channel = h.add_participant("zx-credit", "credit-agency").channel

    listed = reflect(channel, method, reflection_pb2.ServerReflectionRequest(list_services=""))
    assert {s.name for s in listed.list_services_response.service} == {
        "credit_gateway.v1.InquiryService",
        "credit_gateway.v1.SubmissionService",
        "credit_gateway.v1.ConsentService",
        "credit_gateway.v1.ObjectionService",
        "credit_gateway.v1.ArchiveService",
        "credit_gateway.v1.DiscoveryService",
        "credit_gateway.v1.AuditService",
        "credit_gateway.v1.ExchangeService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
    described = reflect(
        channel,
        method,
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    (v1,) = [f for f in files if f.name == "grpc/reflection/v1/reflection.proto"]
    assert v1.package == "grpc.reflection.v1"
    (info,) = v1.service[0].method
    assert (info.name, info.input_type, info.output_type) == (
        "ServerReflectionInfo",
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )
    # A client learns the discovery RPCs (issue #11 item 18) and the audit log's (#13) through
    # reflection alone: an auditor or a subject's app needs no proto file from us.
    for service, methods in (
        ("DiscoveryService", ["GetCatalog", "ListAgreements"]),
        (
            "AuditService",
            ["GetCheckpoint", "GetInclusionProof", "GetConsistencyProof", "GetEntries"],
        ),
        ("ExchangeService", ["PushRecords", "PullRecords", "SubscribeChanges"]),
    ):
        answer = reflect(
            channel,
            method,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol=f"credit_gateway.v1.{service}"
            ),
        )
        protos = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]
        (found,) = [f for f in protos if f.service and f.service[0].name == service]
        assert [m.name for m in found.service[0].method] == methods
