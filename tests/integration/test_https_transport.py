"""The OAuth endpoint's HTTPS transport on its own: aiohttp in an event loop, and its bounds.

Everything runs on loopback. Clients bind to 127.0.0.2 and up (Linux routes all of 127/8 to lo)
to stand for distinct addresses; the well-behaved client keeps 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from credit_gateway import metrics
from credit_gateway.adapters.http.server import (
    HttpLimits,
    HttpRequest,
    HttpResponse,
    HttpsServer,
    serve_https,
)
from credit_gateway.devpki.pki import IssuedCert, ParticipantKind, init_pki, issue_participant
from credit_gateway.runtime import tls
from credit_gateway.runtime.config import Settings

T = TypeVar("T")
HOST = "127.0.0.1"
LOOP_THREAD = "https-test-loop"
# Small bounds, so that each is seen to act within a test's few seconds.
FAST = HttpLimits(
    handshake_timeout=1.0,
    header_timeout=1.0,
    body_timeout=1.0,
    idle_timeout=2.0,
    max_requests_per_connection=3,
    max_connections_per_address=4,
    max_connections=64,
    max_body_bytes=1024,
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# The start of a TLS handshake record announcing 512 bytes that will never all come.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00"


# --------------------------------------------------------------------------- fixtures


class LoopThread:
    """An event loop in a background thread, as the gateway runs one beside its other work."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=LOOP_THREAD)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class App:
    """A trivial application: it echoes what it was handed and notes the threads it ran on."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.entered = threading.Event()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.threads.add(threading.current_thread().name)
        if request.path == "/boom":
            raise RuntimeError("the application failed")
        if request.path == "/slow":
            self.entered.set()
            time.sleep(0.5)
        cert = request.client_cert_der
        echo = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "body": request.body.decode(),
            "cert": hashlib.sha256(cert).hexdigest() if cert else None,
        }
        headers = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
        return HttpResponse(200, headers, json.dumps(echo).encode())


@dataclass
class Env:
    loop: LoopThread
    pool: ThreadPoolExecutor
    context: ssl.SSLContext
    ca: Path
    client: IssuedCert
    app: App = field(default_factory=App)
    servers: list[HttpsServer] = field(default_factory=list)

    def start(
        self,
        limits: HttpLimits = FAST,
        *,
        port: int = 0,
        reuse_port: bool = False,
        endpoints: tuple[str, ...] = (),
    ) -> HttpsServer:
        async def start() -> HttpsServer:
            loop = asyncio.get_running_loop()
            return await serve_https(
                self.app,
                HOST,
                port,
                self.context,
                run=lambda call: loop.run_in_executor(self.pool, call),
                limits=limits,
                reuse_port=reuse_port,
                endpoints=endpoints,
            )

        server = self.loop.run(start())
        self.servers.append(server)
        return server

    def tls(self, cert: IssuedCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(cert.cert_path, cert.key_path)
        return context


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    running = LoopThread()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("https-pki")
    init_pki(directory)
    return directory


@pytest.fixture
def env(loop_thread: LoopThread, pki_dir: Path) -> Iterator[Env]:
    settings = Settings.load(environ={}, home=pki_dir, certs_dir=pki_dir)
    client = issue_participant(pki_dir, "agency", ParticipantKind.CREDIT_AGENCY)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="db") as pool:
        running = Env(
            loop_thread, pool, tls.https_server_context(settings), settings.ca_cert, client
        )
        try:
            yield running
        finally:
            for server in running.servers:
                loop_thread.run(server.stop())


# --------------------------------------------------------------------------- client side


def connect(
    port: int, *, source: str = HOST, context: ssl.SSLContext | None = None
) -> socket.socket:
    """A TCP connection from `source`, with a TLS handshake when `context` is given."""
    raw = socket.create_connection((HOST, port), timeout=5, source_address=(source, 0))
    if context is None:
        return raw
    try:
        return context.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def head(method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send(
    sock: socket.socket,
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    length = len(body) if body or method == "POST" else None
    sock.sendall(head(method, path, headers or {}, length) + body)


def receive(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    body = reply.read()
    return reply.status, {name.lower(): value for name, value in reply.getheaders()}, body


def exchange(sock: socket.socket, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    send(sock, *args, **kwargs)
    return receive(sock)


def closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (whatever it sends is skipped)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
        except OSError:  # a reset, or TLS torn down without close_notify
            return True
    return False


def seconds_until_closed(sock: socket.socket, limit: float, trickle: bytes = b"") -> float:
    """How long the server keeps `sock` open while we send `trickle` a byte every 0.2 s."""
    start = time.monotonic()
    for index in range(math.ceil(limit / 0.2)):
        if index < len(trickle):
            with contextlib.suppress(OSError):
                sock.send(trickle[index : index + 1])
        if closed(sock, within=0.2):
            return time.monotonic() - start
    return math.inf


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def answered(endpoint: str, status: int) -> float:
    """How many answers the metrics counted for this endpoint label and status."""
    labels = {"endpoint": endpoint, "status": str(status)}
    return metrics.REGISTRY.get_sample_value("credit_gateway_oauth_requests_total", labels) or 0


def refused_connections(reason: str) -> float:
    labels = {"reason": reason}
    name = "credit_gateway_oauth_connections_refused_total"
    return metrics.REGISTRY.get_sample_value(name, labels) or 0


def der(cert: IssuedCert) -> bytes:
    pem = cert.cert_path.read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------- requests


def test_a_request_reaches_the_app_off_the_loop_with_the_client_certificate(env: Env) -> None:
    server = env.start(endpoints=("/token",))
    tokens, others = answered("/token", 200), answered("other", 200)
    with connect(server.port, context=env.tls(env.client)) as sock:
        status, headers, body = exchange(
            sock, "POST", "/token?ignored=1", b"a=1", {**FORM, "X-Trace": "Abc"}
        )
    assert status == 200
    assert headers["server"] == "credit-gateway-oauth"
    assert headers["cache-control"] == "no-store"
    echo = json.loads(body)
    assert echo["method"] == "POST"
    assert echo["path"] == "/token?ignored=1"
    assert echo["headers"]["x-trace"] == "Abc"
    assert echo["headers"]["content-type"] == FORM["Content-Type"]
    assert echo["body"] == "a=1"
    assert echo["cert"] == hashlib.sha256(der(env.client)).hexdigest()
    with connect(server.port, context=env.tls()) as sock:
        assert json.loads(exchange(sock)[2])["cert"] is None
    # Counted by endpoint (the path without its query), any path not the app's as "other".
    assert (answered("/token", 200), answered("other", 200)) == (tokens + 1, others + 1)
    # `handle` blocks; it ran in the pool handed over as `run`, never on the loop.
    assert env.app.threads
    assert all(name.startswith("db") for name in env.app.threads)


def test_malformed_requests_and_app_failures_get_json_errors(env: Env) -> None:
    server = env.start()
    failed, malformed = answered("other", 500), answered("other", 400)
    with connect(server.port, context=env.tls()) as sock:
        status, headers, body = exchange(sock, "GET", "/boom")
        assert (status, json.loads(body)["error"]) == (500, "server_error")
        assert headers["content-type"] == "application/json"
    with connect(server.port, context=env.tls()) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = receive(sock)
        assert (status, json.loads(body)["error"]) == (400, "invalid_request")
        assert closed(sock, within=1.0)
    assert (answered("other", 500), answered("other", 400)) == (failed + 1, malformed + 1)


# --------------------------------------------------------------------------- connection caps


def test_trickling_connections_without_certificates_do_not_keep_a_client_out(env: Env) -> None:
    """500 connections trickling a byte every 2 s, from 50 other addresses, half of them still
    in the TLS handshake and half in a request head: a certified client is answered at once,
    and the server drops every trickler by its deadline."""
    limits = replace(
        FAST,
        handshake_timeout=8.0,
        header_timeout=8.0,
        idle_timeout=8.0,
        max_connections_per_address=10,
        max_connections=1000,
    )
    server = env.start(limits)
    addresses = [f"127.0.0.{n}" for n in range(2, 52)]
    anonymous = env.tls()
    with contextlib.ExitStack() as stack:
        tricklers: list[socket.socket] = []
        for index in range(500):
            context = anonymous if index % 2 else None
            sock = connect(server.port, source=addresses[index % 50], context=context)
            tricklers.append(stack.enter_context(sock))
        opened = time.monotonic()
        assert wait_until(lambda: server.open_connections == 500)
        # The per-address cap applies to them: an 11th from one of their addresses is refused.
        with connect(server.port, source=addresses[0]) as surplus:
            assert closed(surplus, within=1.0)

        trickle = b"POST /token HTTP/1.1\r\n"
        for round_ in range(2):
            for index, sock in enumerate(tricklers):
                byte = trickle[round_] if index % 2 else PARTIAL_CLIENT_HELLO[round_]
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))
            assert server.open_connections >= 500  # all still held, none dropped early
            start = time.monotonic()
            with connect(server.port, context=env.tls(env.client)) as client:
                status, _, body = exchange(client, "POST", "/token", b"grant_type=x", FORM)
            assert time.monotonic() - start < 1.0
            assert status == 200
            assert json.loads(body)["cert"] is not None
            time.sleep(2.0)

        left = opened + limits.header_timeout + 3.0 - time.monotonic()
        assert all(closed(sock, within=max(left, 0.1)) for sock in tricklers)
        assert wait_until(lambda: server.open_connections == 0)


def test_one_address_is_capped_and_its_surplus_closed_before_tls(env: Env) -> None:
    server = env.start(replace(FAST, handshake_timeout=5.0))
    over = refused_connections(metrics.OVER_CAPACITY)
    with contextlib.ExitStack() as stack:
        kept = [stack.enter_context(connect(server.port, source="127.0.0.9")) for _ in range(4)]
        surplus = [stack.enter_context(connect(server.port, source="127.0.0.9")) for _ in range(2)]
        other = stack.enter_context(connect(server.port, source="127.0.0.10"))
        # Closed at once, well before the handshake timeout, without a byte from the client.
        assert all(closed(sock, within=1.0) for sock in surplus)
        assert not any(closed(sock, within=0.2) for sock in [*kept, other])
        assert refused_connections(metrics.OVER_CAPACITY) == over + 2
        assert server.open_connections == 5
        kept[0].close()  # its slot comes back
        assert wait_until(lambda: server.open_connections == 4)
        again = stack.enter_context(connect(server.port, source="127.0.0.9"))
        assert not closed(again, within=0.3)


def test_connections_over_the_total_cap_are_closed_at_once(env: Env) -> None:
    server = env.start(replace(FAST, handshake_timeout=5.0, max_connections=3))
    with contextlib.ExitStack() as stack:
        kept = [
            stack.enter_context(connect(server.port, source=f"127.0.0.{n}")) for n in (11, 12, 13)
        ]
        surplus = stack.enter_context(connect(server.port, source="127.0.0.14"))
        assert closed(surplus, within=1.0)
        assert not any(closed(sock, within=0.2) for sock in kept)


# --------------------------------------------------------------------------- timeouts


def test_a_handshake_that_does_not_finish_is_dropped(env: Env) -> None:
    server = env.start()
    failed = refused_connections(metrics.HANDSHAKE_FAILED)
    with connect(server.port) as sock:
        elapsed = seconds_until_closed(sock, limit=4.0, trickle=PARTIAL_CLIENT_HELLO)
    assert 0.8 <= elapsed < 2.5
    assert wait_until(lambda: server.open_connections == 0)
    assert wait_until(lambda: refused_connections(metrics.HANDSHAKE_FAILED) == failed + 1)


def test_a_request_head_not_complete_in_time_is_dropped(env: Env) -> None:
    server = env.start(replace(FAST, header_timeout=1.0, idle_timeout=4.0))
    slow_head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 40
    timed_out = refused_connections(metrics.HEADER_TIMEOUT)
    # A connection's first request: its bytes, one every 0.2 s, do not extend the deadline.
    with connect(server.port, context=env.tls()) as sock:
        assert 0.8 <= seconds_until_closed(sock, limit=4.0, trickle=slow_head) < 2.5
    # A later one: the deadline runs from its first byte, after any idle time.
    with connect(server.port, context=env.tls()) as sock:
        assert exchange(sock)[0] == 200
        time.sleep(1.5)  # idle for longer than header_timeout, which does not count idle time
        assert 0.8 <= seconds_until_closed(sock, limit=4.0, trickle=slow_head) < 2.5
    assert refused_connections(metrics.HEADER_TIMEOUT) == timed_out + 2


def test_an_idle_keep_alive_connection_is_closed(env: Env) -> None:
    server = env.start(replace(FAST, header_timeout=1.0, idle_timeout=2.0))
    with connect(server.port, context=env.tls()) as sock:
        assert exchange(sock)[0] == 200
        time.sleep(1.2)  # idle for longer than header_timeout: still open
        assert exchange(sock)[0] == 200
        assert 1.6 <= seconds_until_closed(sock, limit=5.0) < 3.5


def test_a_body_not_received_in_time_gets_408(env: Env) -> None:
    server = env.start()
    with connect(server.port, context=env.tls()) as sock:
        sock.sendall(head("POST", "/token", FORM, 100) + b"grant_type")
        start = time.monotonic()
        status, headers, body = receive(sock)
        assert 0.8 <= time.monotonic() - start < 2.5
        assert (status, json.loads(body)["error"]) == (408, "invalid_request")
        assert headers["connection"] == "close"
        assert closed(sock, within=1.0)


# --------------------------------------------------------------------------- bodies


def test_body_size_and_framing(env: Env) -> None:
    server = env.start()
    tls_context = env.tls()

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with connect(server.port, context=tls_context) as sock:
            reply = exchange(sock, "POST", "/token", body, headers)
            if reply[0] != 200:
                assert reply[1]["connection"] == "close"
                assert closed(sock, within=1.0)
            return reply

    exact = b"a=" + b"x" * 1022
    assert json.loads(post(exact, FORM)[2])["body"] == exact.decode()
    status, headers, body = post(exact + b"x", FORM)
    assert (status, json.loads(body)["error"]) == (413, "invalid_request")
    assert headers["content-type"] == "application/json"
    assert post(b"{}", {"Content-Type": "application/json"})[0] == 415
    with connect(server.port, context=tls_context) as sock:
        chunked = {**FORM, "Transfer-Encoding": "chunked"}
        sock.sendall(head("POST", "/token", chunked, None) + b"3\r\na=1\r\n")
        assert receive(sock)[0] == 411
    with connect(server.port, context=tls_context) as sock:
        sock.sendall(head("POST", "/token", FORM, None))
        assert receive(sock)[0] == 411


def test_expect_100_continue(env: Env) -> None:
    server = env.start()
    with connect(server.port, context=env.tls()) as sock:
        sock.sendall(head("POST", "/token", {**FORM, "Expect": "100-continue"}, 3))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"a=1")
        status, _, body = receive(sock)
        assert (status, json.loads(body)["body"]) == (200, "a=1")
    # Refused before the client sends a byte of it: no waiting for a body that will not come.
    with connect(server.port, context=env.tls()) as sock:
        sock.sendall(head("POST", "/token", {**FORM, "Expect": "100-continue"}, 5000))
        start = time.monotonic()
        assert receive(sock)[0] == 413
        assert time.monotonic() - start < 0.5


def test_a_connection_serves_at_most_max_requests(env: Env) -> None:
    server = env.start()
    with connect(server.port, context=env.tls()) as sock:
        replies = [exchange(sock) for _ in range(3)]
        assert [status for status, _, _ in replies] == [200, 200, 200]
        assert [headers.get("connection") for _, headers, _ in replies] == [None, None, "close"]
        assert closed(sock, within=1.0)


# --------------------------------------------------------------------------- life cycle


def test_stop_closes_the_listener_and_every_connection(env: Env) -> None:
    server = env.start(replace(FAST, handshake_timeout=5.0, header_timeout=5.0, idle_timeout=5.0))
    with (
        connect(server.port, context=env.tls()) as idle,
        connect(server.port, context=env.tls()) as busy,
        connect(server.port) as handshaking,
    ):
        assert exchange(idle)[0] == 200
        send(busy, "GET", "/slow")
        assert env.app.entered.wait(timeout=5)
        stopping = asyncio.run_coroutine_threadsafe(server.stop(), env.loop.loop)
        assert receive(busy)[0] == 200  # the request under way was let finish
        stopping.result(timeout=10)
        assert all(closed(sock, within=1.0) for sock in (idle, busy, handshaking))
    assert server.open_connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, server.port), timeout=1).close()


def test_reuse_port_lets_processes_share_the_port(env: Env) -> None:
    first = env.start(reuse_port=True)
    second = env.start(port=first.port, reuse_port=True)
    assert second.port == first.port
    with connect(second.port, context=env.tls()) as sock:
        assert exchange(sock)[0] == 200
    with pytest.raises(OSError, match="in use"):
        env.start(port=first.port)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        replace(FAST, header_timeout=0)
