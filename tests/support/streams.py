"""Hundreds of open streams for admission tests: grpc.aio client calls on an event loop of their
own (one thread), so that each open stream costs a coroutine, not a thread, and the test's own
synchronous calls run beside them. Every channel and call is closed by `close()`."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from support.harness import metadata
from support.rpc import status_of

from credit_gateway.adapters.grpc.v1 import submission_pb2
from credit_gateway.devpki import pki
from credit_gateway.runtime import tls

T = TypeVar("T")
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
SUBMIT = "/credit_gateway.v1.SubmissionService/SubmitRecords"
# Ample time for a refusal to arrive: the server refuses a stream before any other work.
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class Refused:
    code: grpc.StatusCode
    reason: str
    echoed: bool  # the x-request-id trailer named the id the stream was opened with


OPEN = "open"
Outcome = Refused | str  # OPEN, or how the stream was refused


class Streams:
    def __init__(self, target: str, ca: Path) -> None:
        self.target, self.ca = target, ca
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-streams")
        self._thread.start()
        self._channels: dict[Path, grpc.aio.Channel] = {}
        self._calls: list[Any] = []

    def health_watches(self, cert: pki.IssuedCert, n: int) -> list[Outcome]:
        """`n` Health/Watch streams; open means the first status (SERVING) came."""
        return self._run(self._open(cert, HEALTH_WATCH, n, self._watch))

    def reflections(
        self, method: str, per_cert: Sequence[tuple[pki.IssuedCert, int]]
    ) -> list[Outcome]:
        """Reflection streams (so many from each certificate) that each ask one list_services
        and then wait."""
        return self._run(self._reflect(method, per_cert))

    def submissions(
        self, cert: pki.IssuedCert, token: str | None, records: Sequence[Any]
    ) -> list[Outcome]:
        """One SubmitRecords stream per record (with `token`, if any) that sends it, then
        nothing (no half-close)."""
        return self._run(self._submit(cert, token, records))

    def open_count(self) -> int:
        return self._run(self._count())

    def close(self) -> None:
        """Cancels every call and closes every channel (again: does nothing)."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # -- on the streams' loop -----------------------------------------------------------------
    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def _channel(self, cert: pki.IssuedCert) -> grpc.aio.Channel:
        channel = self._channels.get(cert.cert_path)
        if channel is None:
            credentials = tls.grpc_channel_credentials(self.ca, cert.cert_path, cert.key_path)
            channel = self._channels[cert.cert_path] = grpc.aio.secure_channel(
                self.target, credentials
            )
        return channel

    async def _open(self, cert: pki.IssuedCert, method: str, n: int, first: Any) -> list[Outcome]:
        channel = self._channel(cert)
        return list(await asyncio.gather(*(first(channel, method) for _ in range(n))))

    async def _watch(self, channel: grpc.aio.Channel, method: str) -> Outcome:
        rid = _request_id()
        call = channel.unary_stream(
            method,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )(health_pb2.HealthCheckRequest(), metadata=(("x-request-id", rid),))
        self._calls.append(call)
        return await _first_response(call, rid)

    async def _reflect(
        self, method: str, per_cert: Sequence[tuple[pki.IssuedCert, int]]
    ) -> list[Outcome]:
        opened = []
        for cert, n in per_cert:
            rpc = self._channel(cert).stream_stream(
                method,
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            for _ in range(n):
                rid = _request_id()
                opened.append((rpc(metadata=(("x-request-id", rid),)), rid))
        return await self._settled(opened, self._ask_services)

    @staticmethod
    async def _ask_services(call: Any, rid: str) -> Outcome:
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        return await _first_response(call, rid)

    async def _submit(
        self, cert: pki.IssuedCert, token: str | None, records: Sequence[Any]
    ) -> list[Outcome]:
        rpc = self._channel(cert).stream_unary(
            SUBMIT,
            request_serializer=submission_pb2.SubmittedRecord.SerializeToString,
            response_deserializer=submission_pb2.SubmissionResult.FromString,
        )
        bearer = metadata(token) if token else ()
        opened = []
        for record in records:
            rid = _request_id()
            opened.append((rpc(metadata=(*bearer, ("x-request-id", rid))), rid, record))

        async def send(call: Any, rid: str, record: Any) -> Outcome:
            await call.write(record)
            return OPEN

        return await self._settled(opened, send)

    async def _settled(self, opened: Sequence[tuple[Any, ...]], then: Any) -> list[Outcome]:
        """The server refuses a stream as it opens, before reading from it. A client that writes
        while that refusal is on its way loses it (grpc.aio replaces the status with a local
        INTERNAL), so the refusals are let in first; the streams still open are then written."""
        self._calls.extend(call for call, *_ in opened)
        settled = self._loop.time() + SETTLE_SECONDS
        while self._loop.time() < settled and not all(call.done() for call, *_ in opened):
            await asyncio.sleep(0.05)  # polled: awaiting an open call and giving up cancels it
        return [
            await _ended(call, rid) if call.done() else await then(call, rid, *rest)
            for call, rid, *rest in opened
        ]

    async def _count(self) -> int:
        return sum(not call.done() for call in self._calls)

    async def _close(self) -> None:
        for call in self._calls:
            call.cancel()
        for call in self._calls:
            await call.code()  # CANCELLED, once grpc has finished with the call
        self._calls.clear()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        # grpc's own tasks for the calls end soon after; none may be left when the loop stops.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.wait(others, timeout=5)


_ids = itertools.count()


def _request_id() -> str:
    """Each stream names its own request id, so that a refusal's trailer can be matched to it."""
    return f"stream-{next(_ids)}"


async def _first_response(call: Any, rid: str) -> Outcome:
    try:
        response = await call.read()
    except grpc.RpcError as error:
        return _refused(error, rid)
    if response is grpc.aio.EOF:
        return await _ended(call, rid)
    return OPEN


async def _ended(call: Any, rid: str) -> Outcome:
    """How a call that ended was refused (none of these streams may end OK)."""
    try:
        await call
    except grpc.RpcError as error:
        return _refused(error, rid)
    raise AssertionError("a stream under test ended OK")


def _refused(error: grpc.RpcError, rid: str) -> Refused:
    code, reason = status_of(error)
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    return Refused(code, reason, trailers.get("x-request-id") == rid)
