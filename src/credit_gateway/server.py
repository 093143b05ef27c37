"""Wiring: settings -> storage -> services -> the gRPC server (and the HTTPS token endpoint)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from credit_gateway import tls
from credit_gateway.api.interceptor import GatewayInterceptor
from credit_gateway.api.services import register_services
from credit_gateway.auth.https import HttpsServer, serve_https
from credit_gateway.auth.oauth import GatewayAuthorizationServer
from credit_gateway.config import Settings, split_address
from credit_gateway.errors import ConfigError
from credit_gateway.gateway import Gateway
from credit_gateway.storage.trust import SqlTrustStore

log = logging.getLogger("credit_gateway.server")
GRACE_SECONDS = 10.0


@dataclass
class RunningGateway:
    gateway: Gateway
    grpc_server: grpc.Server
    port: int
    health: health.HealthServicer
    https: list[HttpsServer] = field(default_factory=list)

    @property
    def oauth_port(self) -> int:
        return self.https[0].port

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        self.health.enter_graceful_shutdown()
        for https in self.https:
            https.stop()
        self.grpc_server.stop(grace).wait()
        self.gateway.close()


def start(
    settings: Settings,
    gateway: Gateway | None = None,
    extra: Callable[[grpc.Server, GatewayInterceptor], None] | None = None,
) -> RunningGateway:
    """Builds and starts the gateway. `extra` may add handlers behind the same interceptor (the
    benchmark's authenticated echo uses it); production passes nothing."""
    settings.check_files()
    gateway = gateway or Gateway(settings)
    limit = settings.max_message_bytes
    interceptor = GatewayInterceptor(gateway)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.grpc_max_calls,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = register_services(server, gateway)
    if extra is not None:
        extra(server, interceptor)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    # The token endpoint binds first: its port is configured, the gRPC one may be ephemeral.
    https = _token_endpoint(settings, gateway)
    port = server.add_secure_port(settings.grpc_address, tls.grpc_server_credentials(settings))
    if port == 0:
        https.stop()
        raise ConfigError(f"cannot listen on {settings.grpc_address}")
    server.start()
    https.start()
    running = RunningGateway(gateway, server, port, health_servicer, [https])
    log.info(
        "serving",
        extra={
            "fields": {
                "grpc_port": port,
                "oauth_port": https.port,
                "issuer": settings.effective_issuer,
            }
        },
    )
    return running


def _token_endpoint(settings: Settings, gateway: Gateway) -> HttpsServer:
    """The OAuth 2.0 authorization server on HTTPS beside the gRPC port (issue: trust)."""
    app = GatewayAuthorizationServer(
        store=SqlTrustStore(gateway.db, gateway.clock),
        issuer=gateway.token_issuer,
        keyring=gateway.current_keyring,
        issuer_url=settings.effective_issuer,
        clock=gateway.clock,
    )
    host, port = split_address(settings.oauth_address)
    try:
        return serve_https(app.handle, host, port, tls.https_server_context(settings))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.oauth_address}: {exc.strerror}") from exc


def serve_forever(settings: Settings) -> None:
    running = start(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("draining", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    running.stop()
    log.info("stopped")
