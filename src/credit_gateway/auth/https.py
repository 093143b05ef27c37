"""A small HTTPS server (stdlib only) that hosts the OAuth 2.0 authorization server.

The TLS context is built by the caller: whether a client certificate is requested, required and
checked against our CA is its business. This module only reads the certificate the TLS layer
verified (`getpeercert(binary_form=True)`) and hands its DER to the application, which binds
tokens to it (RFC 8705). It bounds what a client can make it hold: body size, socket timeouts,
and the number of connections served at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FORM_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "HttpRequest",
    "HttpResponse",
    "HttpsServer",
    "json_error",
    "media_type",
    "serve_https",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
DISCARD_LIMIT = 1024 * 1024  # a refused body larger than this gets the connection closed on it
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SOCKET_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64


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


def json_error(status: int, error: str, description: str) -> HttpResponse:
    """An RFC 6749 section 5.2 shaped error, also used for transport-level refusals."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
    return HttpResponse(status, headers, body)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_SECONDS  # StreamRequestHandler applies it to the socket
    server_version = "credit-gateway-oauth"
    sys_version = ""

    def do_GET(self) -> None:
        if self.headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = True  # an unread body would be taken for the next request
        self._dispatch(b"")

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None or length_text is None:
            # No chunked bodies: the length must be known before anything is read.
            self._refuse(411, "invalid_request", "Content-Length is required")
            return
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "invalid_request", "bad Content-Length")
            return
        if length > MAX_BODY_BYTES:
            self._discard(length)
            self._refuse(413, "invalid_request", "request body too large")
            return
        # RFC 6749 section 3.2: token endpoint parameters are form-encoded, and so are those
        # of RFC 7009 and RFC 7662.
        if media_type(self.headers.get("Content-Type")) != FORM_CONTENT_TYPE:
            self._discard(length)
            self._refuse(415, "invalid_request", f"Content-Type must be {FORM_CONTENT_TYPE}")
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return
        self._dispatch(body)

    def _dispatch(self, body: bytes) -> None:
        conn = self.connection
        cert = conn.getpeercert(binary_form=True) if isinstance(conn, ssl.SSLSocket) else None
        request = HttpRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_cert_der=cert or None,
        )
        try:
            response = self.server.app_handle(request)
        except Exception:
            log.exception("authorization server failed on %s %s", self.command, self.path)
            response = json_error(500, "server_error", "internal error")
        self._send(response)

    def _discard(self, length: int) -> None:
        """Read (a bounded part of) a refused body, so that a client still sending it gets
        our error instead of a connection reset."""
        remaining = min(length, DISCARD_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 16 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _refuse(self, status: int, error: str, description: str) -> None:
        # The unread body is still on the socket, so this connection cannot carry another request.
        self.close_connection = True
        self._send(json_error(status, error, description), close=True)

    def _send(self, response: HttpResponse, *, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], app_handle: AppHandle, context: ssl.SSLContext
    ) -> None:
        self.app_handle = app_handle
        self.context = context
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Bound the threads a flood of connections can start; refuse the surplus at once.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread and under a timeout, so
        # a client that never completes it cannot stall the accept loop.
        raw: socket.socket = request
        raw.settimeout(SOCKET_TIMEOUT_SECONDS)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


class HttpsServer:
    """The listening socket is bound on construction (so `.port` is known); `start()` serves."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"oauth-https-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


def serve_https(
    app_handle: AppHandle, host: str, port: int, ssl_context: ssl.SSLContext
) -> HttpsServer:
    """Bind an HTTPS server for `app_handle`; call `.start()` to serve in a background thread."""
    return HttpsServer(_Server((host, port), app_handle, ssl_context))
