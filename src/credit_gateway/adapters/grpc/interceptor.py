"""The one interceptor: request ids, admission, logging, authentication, error mapping.

Every call passes here before any servicer runs, on the event loop:
  0. admission: a unary call takes one of `grpc_max_calls` slots; a stream takes a slot of its
     method for its certificate and one in all (api/limits.py), before anything else, so idle
     streams from any certificate of our CA, registered or not, cannot crowd out calls;
then, for a method that needs a token:
  1. the method has a rule in auth.scopes.METHOD_SCOPES (none: refused, fail closed);
  2. a bearer token is present and verifies (auth.tokens: signature, iss, aud, time);
  3. its cnf binds it to this connection's client certificate (RFC 8705);
  4. it is not revoked, and its client participant may act now (read per call, not cached);
  5. the principal is of the kind the method serves and holds the method's scope.
The servicer then reads the caller from `current_call()`. Authorization proper (agreements,
consent, the catalog) is the policy's, not this layer's. A client stream's messages arrive
through a guard that enforces the idle timeout; every stream runs under the server's deadline.
Each call is counted as it ends (credit_gateway.metrics: its code and time, a refusal's reason)
through children bound once per method: two clock reads and three increments a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import grpc

from credit_gateway import metrics
from credit_gateway.adapters.grpc.errors import internal_status, to_status
from credit_gateway.adapters.grpc.limits import Limits
from credit_gateway.adapters.storage.trust import StandingReader
from credit_gateway.auth.binding import x5t_s256
from credit_gateway.auth.scopes import METHOD_SCOPES, PUBLIC_METHODS, MethodRule
from credit_gateway.auth.tokens import Principal
from credit_gateway.caches import BoundedCache
from credit_gateway.domain.participants import Participant, Standing, check_standing
from credit_gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InfrastructureError,
    PermissionDenied,
    Unauthenticated,
)
from credit_gateway.runtime import logs
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway

log = logging.getLogger("credit_gateway.calls")
Behaviour = Callable[..., Any]
Handler = Any  # grpc.RpcMethodHandler, generic only in the stubs
_Ctx = grpc.aio.ServicerContext[Any, Any]
# A method no servicer serves is counted under this name, never under the one the caller sent.
UNKNOWN_METHOD = "UNKNOWN"
_UNIMPLEMENTED = metrics.GRPC_CALLS.labels(UNKNOWN_METHOD, grpc.StatusCode.UNIMPLEMENTED.name)


# Methods whose own transaction reads the caller's standing (the release transaction folds it
# into its one read): the interceptor leaves step 4 to it, so the call makes one read, not two.
STANDING_IN_TRANSACTION = frozenset(
    f"/credit_gateway.v1.InquiryService/{name}"
    for name in ("QueryOpen", "ShareGovernment", "QueryAuthorized", "QueryOwn")
)


@dataclass(frozen=True, slots=True)
class CallContext:
    method: str
    request_id: str
    principal: Principal
    standing: Standing  # to be read on every call: here, or in the method's transaction
    checked: Participant | None  # the standing as read here; None: left to the transaction

    @property
    def client(self) -> Participant:
        """The participant whose certificate carries the call, as read for this call."""
        if self.checked is None:
            raise AssertionError(f"{self.method} reads the caller's standing in its transaction")
        return self.checked


_current: contextvars.ContextVar[CallContext] = contextvars.ContextVar("call")


def current_call() -> CallContext:
    return _current.get()


class GatewayInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    def __init__(
        self,
        gateway: Gateway,
        blocking: Blocking,
        limits: Limits,
        rules: Mapping[str, MethodRule] = METHOD_SCOPES,
    ) -> None:
        self.gateway = gateway
        self.blocking = blocking
        self.limits = limits
        self.rules = rules
        self.standing = StandingCheck(gateway)
        self._thumbprints: BoundedCache[bytes, str] = BoundedCache(10_000)
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            _UNIMPLEMENTED.inc()
            return None  # grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        # Wrapped handlers are built once per method: the wrapper reads each call's metadata
        # from its context, so nothing per call is captured here.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cast(Handler, cached[1])
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Handler:
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        counted = _Counted(method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(counted, handler.unary_unary), **options
            )
        kind = "stream_stream" if handler.request_streaming else "unary_stream"
        if not handler.response_streaming:
            kind = "stream_unary"
        behaviour = getattr(handler, kind)
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(self._stream(counted, behaviour, handler.request_streaming), **options)

    # -- wrapping ----------------------------------------------------------------------------
    def _unary(self, counted: _Counted, behaviour: Behaviour) -> Behaviour:
        method = counted.method

        async def call(request: Any, context: _Ctx) -> Any:
            started = time.perf_counter()
            rid = self._enter(context)
            try:
                with self.limits.unary(method):
                    await self._authenticate(method, context)
                    response = await behaviour(request, context)
            except asyncio.CancelledError:
                counted.ended(started, grpc.StatusCode.CANCELLED)
                raise
            except Exception as error:
                await self._fail(counted, context, error, rid, started)
                return None  # not reached: _fail aborts the call
            counted.ended(started)
            return response

        return call

    def _stream(self, counted: _Counted, behaviour: Behaviour, client_streaming: bool) -> Behaviour:
        """Server streams come as async generators (ours, reflection) or as coroutines that
        write to the context (the health service's Watch); the wrapper keeps each one's form."""
        method = counted.method

        async def prepare(request: Any, context: _Ctx) -> Any:
            await self._authenticate(method, context)
            if client_streaming:
                return self._idle_guard(request)
            return request

        async def coroutine(request: Any, context: _Ctx) -> Any:
            started = time.perf_counter()
            rid = self._enter(context)
            try:
                with self.limits.stream(method, self._peer_thumbprint(context)):
                    async with self._deadline():
                        result = await behaviour(await prepare(request, context), context)
            except asyncio.CancelledError:
                counted.ended(started, grpc.StatusCode.CANCELLED)
                raise
            except Exception as error:
                await self._fail(counted, context, error, rid, started)
                return None
            counted.ended(started)
            return result

        async def generator(request: Any, context: _Ctx) -> AsyncIterator[Any]:
            started = time.perf_counter()
            rid = self._enter(context)
            try:
                with self.limits.stream(method, self._peer_thumbprint(context)):
                    async with self._deadline():
                        async for response in behaviour(await prepare(request, context), context):
                            yield response
            except asyncio.CancelledError:
                counted.ended(started, grpc.StatusCode.CANCELLED)
                raise
            except Exception as error:
                await self._fail(counted, context, error, rid, started)
                return
            counted.ended(started)

        return generator if inspect.isasyncgenfunction(behaviour) else coroutine

    def _deadline(self) -> Any:
        return _stream_deadline(self.limits.stream_max_seconds)

    def _idle_guard(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return idle_limited(requests, self.limits.stream_idle_seconds)

    def _enter(self, context: _Ctx) -> str:
        rid = _metadata(context, "x-request-id")[:64] or secrets.token_hex(8)
        context.set_trailing_metadata((("x-request-id", rid),))
        logs.request_id.set(rid)  # each call runs in a task of its own: no reset needed
        return rid

    async def _fail(
        self, counted: _Counted, context: _Ctx, error: Exception, rid: str, started: float
    ) -> None:
        """Every error becomes a status here, in one place. A caller's refusal is logged at
        INFO and counted by its reason; our own failures (storage, configuration) at ERROR,
        never as a refusal."""
        method = counted.method
        if isinstance(error, grpc.aio.AbortError):
            # Only this function aborts; a servicer that did would have set its own status.
            counted.ended(started, grpc.StatusCode.UNKNOWN)
            raise error
        if isinstance(error, InfrastructureError):
            fields = {"method": method, "reason": error.reason, "detail": error.message}
            log.error("failed", extra={"fields": fields})
            status = to_status(error)
        elif isinstance(error, GatewayError):
            fields = {"method": method, "reason": error.reason, "detail": error.message}
            log.info("refused", extra={"fields": fields})
            status = to_status(error)
            counted.refused(error.reason)
        else:
            log.error("unhandled error", exc_info=error, extra={"fields": {"method": method}})
            status = internal_status()
        counted.ended(started, status.code)
        trailers = (*status.trailing_metadata, ("x-request-id", rid))
        await context.abort(status.code, status.details, trailers)

    # -- authentication ----------------------------------------------------------------------
    async def _authenticate(self, method: str, context: _Ctx) -> None:
        if method in PUBLIC_METHODS:
            return
        rule = self.rules.get(method)
        if rule is None:
            raise PermissionDenied("method is not open to callers", reason="METHOD_NOT_ALLOWED")
        header = _metadata(context, "authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer access token is required", reason="TOKEN_MISSING")
        gateway = self.gateway
        now = gateway.clock()
        principal = gateway.token_verifier.verify(
            token.strip(), self._peer_thumbprint(context), now
        )
        standing = Standing(principal.client_id, principal.jti)
        client = None
        if method not in STANDING_IN_TRANSACTION:
            try:
                client = self.standing.check_now(standing, now) or await self.blocking.call(
                    self.standing.check, standing, now
                )
            except Unauthenticated:
                gateway.token_verifier.forget(token)
                raise
        rule.admit(principal.kind, principal.scopes)  # auth/scopes.py: the one check
        _current.set(CallContext(method, logs.request_id.get(), principal, standing, client))

    def _peer_thumbprint(self, context: _Ctx) -> str:
        # The stubs type auth_context() values as bytes; gRPC gives a list of bytes per key.
        pems = cast(list[bytes], context.auth_context().get("x509_pem_cert") or [])
        if not pems:
            raise Unauthenticated("no client certificate", reason="NO_CLIENT_CERTIFICATE")
        pem = pems[0]
        return self._thumbprints.get_or_make(
            pem, lambda: x5t_s256(ssl.PEM_cert_to_DER_cert(pem.decode()))
        )


class _Counted:
    """One method's metrics, bound once: `labels()` takes the metric's lock and hashes its
    values, so a call pays only for the increments."""

    __slots__ = ("_codes", "_ok", "_seconds", "method")

    def __init__(self, method: str) -> None:
        self.method = method
        self._seconds = metrics.GRPC_SECONDS.labels(method)
        self._ok = metrics.GRPC_CALLS.labels(method, grpc.StatusCode.OK.name)
        self._codes: dict[grpc.StatusCode, Any] = {}

    def ended(self, started: float, code: grpc.StatusCode = grpc.StatusCode.OK) -> None:
        self._seconds.observe(time.perf_counter() - started)
        if code is grpc.StatusCode.OK:
            self._ok.inc()
            return
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = metrics.GRPC_CALLS.labels(self.method, code.name)
        child.inc()

    def refused(self, reason: str) -> None:
        metrics.REFUSALS.labels(self.method, metrics.bounded_reason(reason)).inc()


@contextlib.asynccontextmanager
async def _stream_deadline(seconds: float) -> AsyncIterator[None]:
    """The server's deadline for one stream: past it the stream ends with DEADLINE_EXCEEDED,
    whatever the client asked for."""
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield
    except TimeoutError:
        if not timeout.expired():
            raise
        raise DeadlineExceeded(
            f"streams are closed after {seconds:g} s; open a new one", reason="STREAM_DEADLINE"
        ) from None


async def idle_limited(requests: AsyncIterator[Any], idle: float) -> AsyncIterator[Any]:
    """A client stream's messages, each awaited at most `idle` seconds: a peer that opens a
    stream and sends nothing holds no more than that (DEADLINE_EXCEEDED, STREAM_IDLE)."""
    iterator = aiter(requests)
    watch = _IdleWatch(idle)
    try:
        while True:
            task = watch.waiting()
            try:
                message = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours, and no other cancellation came with it (the call cancelled, its
                # deadline, a shutdown): the stream was idle. Else the cancellation goes on.
                if watch.expired and task.uncancel() <= watch.cancelling:
                    raise DeadlineExceeded(
                        f"no message for {idle:g} s", reason="STREAM_IDLE"
                    ) from None
                raise
            watch.received()
            yield message
    finally:
        watch.stop()


class _IdleWatch:
    """The idle limit of one client stream, with one timer for the stream rather than one per
    message (asyncio.timeout around each wait cost the loop ~10 µs a message). A wait records
    when it began; the timer, armed for that moment plus the limit, cancels the waiting task if
    the same wait is still on, and otherwise re-arms for the wait now on (or, between waits, a
    limit from now). Cancelling as asyncio.timeout does: `cancelling` is the task's count when
    the wait began, so a cancellation of the call itself is never taken for idleness."""

    __slots__ = (
        "_armed_for",
        "_handle",
        "_idle",
        "_loop",
        "_since",
        "_task",
        "cancelling",
        "expired",
    )

    def __init__(self, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = idle
        self._task: asyncio.Task[Any] | None = None
        self._since: float | None = None  # when the wait on now began; None between waits
        self._armed_for: float | None = None  # the wait the timer is armed for
        self._handle = self._loop.call_later(idle, self._fire)
        self.expired = False
        self.cancelling = 0

    def waiting(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None  # a client stream is read in its call's task
        self._task, self._since = task, self._loop.time()
        self.cancelling = task.cancelling()
        return task

    def received(self) -> None:
        self._since = None

    def stop(self) -> None:
        self._handle.cancel()

    def _fire(self) -> None:
        task, since = self._task, self._since
        if task is not None and task.done():
            return
        if since is not None and since == self._armed_for:
            self.expired = True
            assert task is not None
            task.cancel()
            return
        self._armed_for = since
        at = (self._loop.time() if since is None else since) + self._idle
        self._handle = self._loop.call_at(at, self._fire)


class StandingCheck:
    """Step 4 on its own (for the calls that have no transaction to fold it into, and for
    streams as they run): read per call, never cached."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._reader = StandingReader(gateway.db)
        self._local = gateway.db.dialect == "sqlite"

    def check(self, standing: Standing, now: datetime) -> Participant:
        return check_standing(*self._reader.read(standing), now)

    def check_now(self, standing: Standing, now: datetime) -> Participant | None:
        """On the calling thread (the loop) where that cannot wait: SQLite, whose one-row read
        of a local file in WAL mode never waits for a writer, costs less than the hand-off to a
        thread. None elsewhere (a network round trip): check() it on a database thread."""
        return self.check(standing, now) if self._local else None

    async def recheck(self, blocking: Blocking, call: CallContext) -> None:
        """For calls that outlive a moment (streams): the checks that can change while the
        call runs, again. Raises when the token expired or was revoked, or the client was
        suspended or lost its licence, so the stream ends with that status."""
        now = self.gateway.clock()
        if now >= call.principal.expires_at + self.gateway.token_verifier.skew:
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
        await blocking.stream(self.check, call.standing, now)


def _metadata(context: _Ctx, key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item[0] == key:
            return str(item[1])
    return ""
