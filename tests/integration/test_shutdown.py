"""A submission is stored whole or not at all, however its stream ends (issue "One event loop"):
with `credit-gateway serve` as a subprocess, a stream the client cancels, lets expire, or has
not finished sending when SIGTERM comes stores nothing; one the client half-closed before
SIGTERM is answered and stored. SIGTERM drains within shutdown_grace_seconds: health turns
NOT_SERVING, new calls are refused, the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.harness import Harness, Participant
from support.scenario import punishment, stored_record_ids
from support.serving import ServeProcess, serve

from credit_gateway.adapters.grpc.v1 import submission_pb2_grpc

GRACE = 3  # shutdown_grace_seconds of the process under test
MARGIN = 5  # what exiting may take beyond the grace (interpreter, threads, database)
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def served(harness: Harness, tmp_path: Path) -> Iterator[tuple[Harness, ServeProcess, Participant]]:
    provider = harness.add_participant("hubei-amr", "providing-unit")
    process = serve(harness, tmp_path, shutdown_grace_seconds=GRACE)
    try:
        process.wait_serving(provider)
        yield harness, process, provider
    finally:
        process.close()


class HeldStream:
    """A SubmitRecords call whose client sends `records`, then half-closes (`half_close`) or
    holds the stream open, sending nothing more, until the block ends."""

    def __init__(
        self,
        channel: grpc.Channel,
        md: Any,
        records: list[Any],
        *,
        half_close: bool = False,
        timeout: float = 30,
    ) -> None:
        self.sent = threading.Event()  # every record went out
        self._release = threading.Event()
        self._records, self._half_close = records, half_close
        stub = submission_pb2_grpc.SubmissionServiceStub(channel)
        self.call = stub.SubmitRecords.future(self._requests(), metadata=md, timeout=timeout)

    def _requests(self) -> Iterator[Any]:
        yield from self._records
        self.sent.set()  # the client asks for the next message once the last one is sent
        if not self._half_close:
            self._release.wait(60)

    def failed(self, timeout: float = 15) -> grpc.StatusCode:
        """The status the call ended with; it must not be OK."""
        deadline = time.monotonic() + timeout
        while not self.call.done():
            assert time.monotonic() < deadline, "the stream did not end"
            time.sleep(0.05)
        code = self.call.code()  # type: ignore[attr-defined]  # the future is the call too
        assert code != grpc.StatusCode.OK, "the stream ended OK"
        return code  # type: ignore[no-any-return]

    def __enter__(self) -> HeldStream:
        assert self.sent.wait(10), "the records were never sent"
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._release.set()  # the client's request thread ends
        self.call.cancel()


def records(provider: Participant, h: Harness, prefix: str, n: int) -> list[Any]:
    return [punishment(provider, f"{prefix}-{i}", h.clock.now) for i in range(n)]


def assert_never_stored(h: Harness, prefix: str, seconds: float = 1.0) -> None:
    """None of the stream's records appears, even a while after the stream ended (its
    transaction would commit after the client was told)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stored = [r for r in stored_record_ids(h.db) if r.startswith(prefix)]
        assert stored == [], f"{len(stored)} records of a stream that did not finish were stored"
        time.sleep(0.1)


def test_a_stream_cancelled_or_past_its_deadline_stores_nothing(
    served: tuple[Harness, ServeProcess, Participant],
) -> None:
    h, process, provider = served
    with process.channel(provider) as channel:
        md = process.token(provider)
        with HeldStream(channel, md, records(provider, h, "cancelled", 3)) as cancelled:
            time.sleep(0.3)  # the server has read them and waits for more
            cancelled.call.cancel()  # (c) the client gives up mid-stream
            assert cancelled.failed() == grpc.StatusCode.CANCELLED
        assert_never_stored(h, "cancelled-")

        with HeldStream(channel, md, records(provider, h, "late", 3), timeout=1) as late:
            # (d) the client's own deadline passes mid-stream
            assert late.failed() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert_never_stored(h, "late-")

        with HeldStream(channel, md, records(provider, h, "whole", 3), half_close=True) as whole:
            assert whole.call.result(timeout=10).accepted == 3
    assert stored_record_ids(h.db) == ["whole-0", "whole-1", "whole-2"]
    assert process.terminate() < MARGIN  # nothing open: no grace to wait for


def test_sigterm_answers_half_closed_streams_refuses_new_calls_and_exits_in_grace(
    served: tuple[Harness, ServeProcess, Participant],
) -> None:
    h, process, provider = served
    with process.channel(provider) as channel:
        md = process.token(provider)
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        # (a) half-sent: never finished by its client; (b) half-closed just before SIGTERM,
        # with enough records that the server is still checking them when the signal comes.
        with (
            HeldStream(channel, md, records(provider, h, "half", 3)) as half_sent,
            HeldStream(
                channel, md, records(provider, h, "closed", 200), half_close=True
            ) as half_closed,
        ):
            signalled = time.monotonic()
            process.process.send_signal(signal.SIGTERM)

            assert next(watch).status == NOT_SERVING
            _refused_when_draining(health)
            with process.channel(provider) as fresh, pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            assert not half_sent.call.done()  # all of this within the grace period

            answered = half_closed.call.result(timeout=GRACE + MARGIN)
            assert answered.accepted == 200
            assert half_sent.failed(timeout=GRACE + MARGIN) != grpc.StatusCode.OK
            assert process.process.wait(timeout=GRACE + MARGIN) == 0, process.output()
            took = time.monotonic() - signalled
        watch.cancel()
    assert GRACE - 0.5 < took < GRACE + MARGIN  # the half-sent stream had the whole grace
    assert [e["signal"] for e in process.logged("draining")] == ["SIGTERM"]
    assert process.logged("stopped")
    stored = stored_record_ids(h.db)
    assert [r for r in stored if not r.startswith("closed-")] == []  # nothing half-sent
    assert stored == sorted(f"closed-{i}" for i in range(200))


def _refused_when_draining(health: health_pb2_grpc.HealthStub) -> None:
    """Waits until new calls are refused UNAVAILABLE. A few may still be let in while the server
    turns its listener off, and grpc itself cancels one that comes in just then."""
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.UNAVAILABLE:
                return
            assert code == grpc.StatusCode.CANCELLED, code
        time.sleep(0.05)
    raise AssertionError("new calls were still admitted during the grace period")
