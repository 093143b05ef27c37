"""The HTTPS server that hosts the OAuth 2.0 authorization server, on aiohttp, in the caller's
event loop; other applications may sit at paths of their own on the same listener (`routes`: the
witness's /add-checkpoint, adapters/http/witness.py), under the same bounds.

The TLS context is built by the caller: whether a client certificate is requested, required and
checked against our CA is its business. This module only reads the certificate the handshake
verified (`getpeercert(binary_form=True)`) and hands its DER to the application, which binds
tokens to it (RFC 8705). The application's `handle` blocks (it reads the database), so it always
runs through the caller's `run`, never on the loop.

`HttpLimits` bounds what a client can make us hold; each bound sits where it is cheapest:

* Connections: our own accept loop (`loop.sock_accept`) counts them per client address and in
  total on the raw socket, and closes one over a cap before any TLS work. Then
  `loop.connect_accepted_socket` starts TLS, with `ssl_handshake_timeout` bounding the handshake
  and `ssl_shutdown_timeout` the closing exchange (a peer that never answers close_notify would
  otherwise keep its socket, and its slot, for asyncio's default 30 s). aiohttp's sites hand the
  listening socket to `loop.create_server`, which builds the protocol before the peer address is
  known and completes the handshake before any code of ours runs, so no cap could act before TLS.
* Request heads: aiohttp bounds their size (`max_line_size`, `max_field_size`, `max_headers`,
  left at their defaults) but not their time. Its `keepalive_timeout` closes a connection that
  has no complete request head, counted from the previous response, whatever bytes arrive; so it
  bounds idle time and header time together, and nothing shorter bounds a head that has begun
  to trickle. `_Connection`, aiohttp's protocol subclassed, arms one timer: from the handshake
  for a connection's first request, and from the first byte of each later one (until that byte
  the connection is idle, under `keepalive_timeout` = `idle_timeout`). aiohttp calls our handler
  once a head is complete, which disarms it; if it fires first, the connection is dropped.
* Bodies are read by the handler, under `body_timeout`, only when Content-Length announces at
  most `max_body_bytes`; a chunked body is refused (411), so none can trickle in unbounded. The
  OAuth endpoints take form bodies only (415 otherwise); a route's application checks its own. A
  refused body is read and dropped up to DISCARD_LIMIT bytes, so that a client still sending it
  reads our error rather than a reset; aiohttp's own lingering read, bounded in time but not in
  bytes, is switched off.
* `max_requests_per_connection`: the last response a connection may carry says
  `Connection: close`.

Every answer is counted by endpoint (one of the application's paths, else "other": never the
path a client sent) and HTTP status, and every connection closed before a request by why
(credit_gateway.metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractAccessLogger

from credit_gateway import metrics

__all__ = [
    "FORM_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "AppHandle",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "HttpsServer",
    "Run",
    "bind",
    "json_error",
    "media_type",
    "serve_https",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DISCARD_LIMIT = 1024 * 1024  # a refused body larger than this gets the connection closed on it
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SERVER_HEADER = "credit-gateway-oauth"  # instead of aiohttp's, which names its version
STOP_GRACE_SECONDS = 5.0
LISTEN_BACKLOG = 128
ACCEPT_RETRY_SECONDS = 0.1
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request as the authorization server sees it, independent of the transport."""

    method: str
    path: str  # the request target; any query string is kept here and ignored by the app
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""
    client_cert_der: bytes | None = None  # the TLS peer certificate the handshake verified

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


AppHandle = Callable[[HttpRequest], HttpResponse]
# Runs a blocking call off the event loop (the gateway passes its database thread pool).
Run = Callable[[Callable[[], HttpResponse]], Awaitable[HttpResponse]]


def json_error(status: int, error: str, description: str) -> HttpResponse:
    """An RFC 6749 section 5.2 shaped error, also used for transport-level refusals."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
    return HttpResponse(status, headers, body)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client can make the server hold; every value must be positive."""

    # TLS 1.3 takes one round trip and a signature on each side: 5 s is ample on a slow link.
    # It also bounds the TLS closing exchange (see the module docstring).
    handshake_timeout: float = 5.0
    # A token request's head is under 2 KiB, one or two TCP segments: 5 s is ages for a real
    # client and short for a trickler (Go servers commonly set ReadHeaderTimeout to 5-10 s).
    header_timeout: float = 5.0
    # A body is at most max_body_bytes (64 KiB): 10 s still admits a 6.4 KiB/s link.
    body_timeout: float = 10.0
    # Long enough to keep a burst (token, then introspect or revoke) on one connection; tokens
    # live minutes, so an idle connection held longer is seldom reused.
    idle_timeout: float = 15.0
    # A long-lived connection is never re-handshaken, so a client certificate that expired, or
    # a process sharing the port (SO_REUSEPORT balances at connect), is only seen anew on a
    # new connection; a handshake every 100 requests costs nothing worth counting.
    max_requests_per_connection: int = 100
    # Participants are organisations whose workers share a NAT address, so not 1 or 2; a
    # flood needs many addresses to fill max_connections.
    max_connections_per_address: int = 32
    # Under the usual soft limit of 1024 open files, leaving room for gRPC and the database.
    max_connections: int = 512
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        for limit in fields(self):
            if not getattr(self, limit.name) > 0:
                raise ValueError(f"HttpLimits.{limit.name} must be positive")


DEFAULT_LIMITS = HttpLimits()


class _Admission:
    """Open connections, per client address and in total, from accept to close."""

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._per_address: Counter[str] = Counter()
        self.total = 0
        self._empty = asyncio.Event()
        self._empty.set()

    def admit(self, address: str) -> bool:
        if (
            self.total >= self._limits.max_connections
            or self._per_address[address] >= self._limits.max_connections_per_address
        ):
            return False
        self.total += 1
        self._per_address[address] += 1
        self._empty.clear()
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
        if not self.total:
            self._empty.set()

    async def drained(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._empty.wait()


def _address_key(peer: Any) -> str:
    """Clients are counted per IPv4 address, and per IPv6 /64: what one site is usually given."""
    host = str(peer[0])
    try:
        ip = ipaddress.ip_address(host)
        return host if ip.version == 4 else str(ipaddress.ip_network((ip, 64), strict=False))
    except ValueError:
        return host


class _AccessLog(AbstractAccessLogger):
    """A debug line per answer, without the query string (a client could put a secret there)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s -> %d in %.3f s",
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


class _Connection(web.RequestHandler):
    """aiohttp's HTTP/1.1 protocol for one admitted connection, with the request-head deadline
    and the per-connection request count."""

    __slots__ = (
        "_admitted",
        "_busy",
        "_deadline",
        "_served",
        "_server",
        "_tls",
        "address",
        "tls_started",
    )

    def __init__(self, server: HttpsServer, address: str) -> None:
        limits = server.limits
        super().__init__(
            server._web,
            loop=server._loop,
            keepalive_timeout=limits.idle_timeout,
            logger=log,
            access_log_class=_AccessLog,
            access_log=log,
            lingering_time=0,  # refused bodies are drained by the handler, bounded in bytes
        )
        self._server = server
        self.address = address
        self._admitted = True
        self._tls: asyncio.Transport | None = None  # kept: aiohttp drops its own when closing
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False  # the handler has a request and has not returned yet
        self._served = 0
        self.tls_started = False

    # ---- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._tls = cast(asyncio.Transport, transport)  # a stream transport, as aiohttp casts
        self._server._connections.add(self)
        self._arm()  # a connection's first request head is due from the handshake on

    def data_received(self, data: bytes) -> None:
        if data and not self._busy and self._deadline is None:
            self._arm()  # the first byte of the next request ends the idle time
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._server._connections.discard(self)
        self.release()
        super().connection_lost(exc)

    # ---- aiohttp

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse, or whose handler raised: our JSON,
        logged without the request's bytes (they may hold credentials)."""
        self._disarm()
        self._server.count(request.path if request is not None else "", status)
        if status >= 500:
            log.error("HTTPS request handling failed", exc_info=exc)
            error = json_error(status, "server_error", "internal error")
        else:
            log.debug("malformed request from %s: %s", self.address, type(exc).__name__)
            error = json_error(status, "invalid_request", "malformed HTTP request")
        return _web_response(error, close=True)

    # ---- ours

    def begin_request(self) -> bool:
        """A complete request head reached the handler; True if it is the connection's last."""
        self._disarm()
        self._busy = True
        self._served += 1
        return self._served >= self._server.limits.max_requests_per_connection

    def end_request(self) -> None:
        self._busy = False

    def release(self) -> None:
        """Give the admission slot back, once: at close, or when the handshake did not end."""
        if self._admitted:
            self._admitted = False
            self._server._admission.release(self.address)

    def abort(self) -> None:
        if self._tls is not None:
            self._tls.abort()

    def _arm(self) -> None:
        self._deadline = self._loop.call_later(self._server.limits.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        metrics.OAUTH_CONNECTIONS_REFUSED.labels(metrics.HEADER_TIMEOUT).inc()
        log.debug("dropped %s: no complete request head in time", self.address)
        self.abort()


class HttpsServer:
    """A listening, serving HTTPS endpoint in the running event loop; `stop()` ends it."""

    def __init__(
        self,
        listener: socket.socket,
        handle: AppHandle,
        context: ssl.SSLContext,
        run: Run,
        limits: HttpLimits,
        endpoints: Collection[str] = (),
        routes: Mapping[str, AppHandle] | None = None,
    ) -> None:
        self.limits = limits
        self._routes = dict(routes or {})
        self._endpoints = frozenset(endpoints) | self._routes.keys()
        self._listener = listener
        self._address = listener.getsockname()
        self._handle = handle
        self._context = context
        self._run = run
        self._loop = asyncio.get_running_loop()
        # No handler cancellation on disconnect: a request already in `run` cannot be stopped
        # there anyway, and its database work should finish whole.
        self._web = web.Server(self._respond, handler_cancellation=False)
        self._admission = _Admission(limits)
        self._connections: set[_Connection] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting = self._loop.create_task(self._accept(), name=f"https-{self.port}")

    @property
    def port(self) -> int:
        return int(self._address[1])

    @property
    def host(self) -> str:
        return str(self._address[0])

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed, including those still in the handshake."""
        return self._admission.total

    def count(self, path: str, status: int) -> None:
        """One answer, in metrics.OAUTH_REQUESTS: the label is one of our endpoints."""
        endpoint = path if path in self._endpoints else "other"
        metrics.OAUTH_REQUESTS.labels(endpoint, str(status)).inc()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Close the listener and every connection; a request being answered gets `grace`
        seconds to finish first."""
        self._accepting.cancel()
        await asyncio.gather(self._accepting, return_exceptions=True)
        self._listener.close()
        for task in self._handshakes:
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        self._web.pre_shutdown()
        await self._web.shutdown(grace)
        for connection in list(self._connections):
            connection.abort()  # still in its TLS goodbye
        await self._admission.drained(timeout=1.0)

    # ---- connections

    async def _accept(self) -> None:
        while True:
            try:
                sock, peer = await self._loop.sock_accept(self._listener)
            except ConnectionAbortedError:
                continue  # the peer left before we took it
            except OSError as exc:
                # Out of descriptors or buffers: back off rather than spin.
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            address = _address_key(peer)
            if not self._admission.admit(address):
                sock.close()
                metrics.OAUTH_CONNECTIONS_REFUSED.labels(metrics.OVER_CAPACITY).inc()
                log.debug("refused a connection from %s: over the cap", address)
                continue
            try:
                self._admitted(sock, address)
            except Exception:  # this loop must outlive any one connection
                log.exception("could not serve a connection from %s", address)
                sock.close()
                self._admission.release(address)

    def _admitted(self, sock: socket.socket, address: str) -> None:
        connection = _Connection(self, address)
        task = self._loop.create_task(self._start_tls(connection, sock))
        self._handshakes.add(task)
        task.add_done_callback(functools.partial(self._handshake_ended, connection, sock))

    async def _start_tls(self, connection: _Connection, sock: socket.socket) -> None:
        connection.tls_started = True
        try:
            await self._loop.connect_accepted_socket(
                lambda: connection,
                sock,
                ssl=self._context,
                ssl_handshake_timeout=self.limits.handshake_timeout,
                ssl_shutdown_timeout=self.limits.handshake_timeout,
            )
        except BaseException as exc:
            connection.release()  # no connection_made, so no connection_lost will
            if not isinstance(exc, OSError):  # ssl.SSLError and the timeout are OSErrors
                raise
            metrics.OAUTH_CONNECTIONS_REFUSED.labels(metrics.HANDSHAKE_FAILED).inc()
            log.debug("TLS handshake with %s failed: %s", connection.address, exc)

    def _handshake_ended(
        self, connection: _Connection, sock: socket.socket, task: asyncio.Task[None]
    ) -> None:
        self._handshakes.discard(task)
        if not connection.tls_started:  # cancelled before it ran: the socket is still ours
            sock.close()
            connection.release()

    # ---- requests

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol
        assert isinstance(connection, _Connection)
        last = connection.begin_request()
        try:
            response, close = await self._answer(request)
        finally:
            connection.end_request()
        self.count(request.path, response.status)
        return _web_response(response, close=close or last)

    async def _answer(self, request: web.BaseRequest) -> tuple[HttpResponse, bool]:
        """The application's response, and whether the connection must close after it."""
        body = b""
        route = self._routes.get(request.path)
        if request.method == "POST":
            refusal = _refuse_body(request, self.limits.max_body_bytes, form=route is None)
            if refusal is not None:
                await self._discard(request)
                return refusal, True
            try:
                body = await self._read_body(request)
            except TimeoutError:
                return json_error(408, "invalid_request", "request body not received in time"), True
            except (asyncio.IncompleteReadError, ConnectionError):
                return json_error(400, "invalid_request", "incomplete request body"), True
        http_request = _http_request(request, body)
        try:
            handle = route or self._handle
            response = await self._run(functools.partial(handle, http_request))
        except Exception:
            log.exception("authorization server failed on %s %s", request.method, request.path)
            response = json_error(500, "server_error", "internal error")
        # A body left unread (on a GET, say) cannot carry on to a next request.
        return response, request.method != "POST" and request.body_exists

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        length = request.content_length or 0  # announced and checked by _refuse_body
        if _expects_continue(request):
            await request.writer.write(_CONTINUE)
            request.writer.output_size = 0  # interim: the response is still to come
        async with asyncio.timeout(self.limits.body_timeout):
            return await request.content.readexactly(length)

    async def _discard(self, request: web.BaseRequest) -> None:
        """Read and drop up to DISCARD_LIMIT bytes of a refused body within body_timeout, so
        that a client still sending it reads our error instead of a reset."""
        if _expects_continue(request):
            return  # the client waits for our word before it sends any
        dropped = 0
        # OSError covers the timeout and a client gone; RequestPayloadError, bad chunking.
        with contextlib.suppress(OSError, web.RequestPayloadError):
            async with asyncio.timeout(self.limits.body_timeout):
                while dropped < DISCARD_LIMIT:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    dropped += len(chunk)


def _refuse_body(request: web.BaseRequest, limit: int, *, form: bool) -> HttpResponse | None:
    """The error for a POST whose body will not be read, or None."""
    length = request.content_length
    if "Transfer-Encoding" in request.headers or length is None:
        # No chunked bodies: the length must be known before anything is read.
        return json_error(411, "invalid_request", "Content-Length is required")
    if length > limit:
        return json_error(413, "invalid_request", "request body too large")
    # RFC 6749 section 3.2: token endpoint parameters are form-encoded, and so are those of
    # RFC 7009 and RFC 7662.
    if form and media_type(request.headers.get("Content-Type")) != FORM_CONTENT_TYPE:
        return json_error(415, "invalid_request", f"Content-Type must be {FORM_CONTENT_TYPE}")
    return None


def _expects_continue(request: web.BaseRequest) -> bool:
    expect = request.headers.get("Expect", "")
    return request.version == HttpVersion11 and expect.lower() == "100-continue"


def _http_request(request: web.BaseRequest, body: bytes) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        # The first of a repeated field, as aiohttp's own lookups see it.
        headers.setdefault(name.lower(), value)
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    cert = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    return HttpRequest(request.method, request.raw_path, headers, body, cert or None)


def _web_response(response: HttpResponse, *, close: bool) -> web.Response:
    out = web.Response(status=response.status, body=response.body, headers=response.headers)
    out.headers["Server"] = SERVER_HEADER
    if close:
        out.force_close()
    return out


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking TCP socket on host:port (0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once on restart
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One family per listener: peers are never IPv4-mapped, so _address_key holds.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_https(
    handle: AppHandle,
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    run: Run,
    limits: HttpLimits = DEFAULT_LIMITS,
    reuse_port: bool = False,
    endpoints: Collection[str] = (),
    routes: Mapping[str, AppHandle] | None = None,
) -> HttpsServer:
    """Listen on host:port (0: any free port) and serve `handle` over TLS in the running loop.

    `handle` blocks, so each call goes through `run`. `reuse_port` sets SO_REUSEPORT, for
    processes sharing the port. `endpoints`: the application's paths, each counted under its
    own name (any other as "other"). `routes`: other applications by path (counted under it),
    served through `run` as `handle` is. Raises OSError when the address cannot be bound.
    """
    listener = bind(host, port, reuse_port=reuse_port)
    return HttpsServer(listener, handle, context, run, limits, endpoints, routes)
