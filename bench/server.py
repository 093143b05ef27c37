"""A server process for the benchmark: `bare` (grpcio mTLS echo) or `gateway` (the real
gateway, plus an echo method behind its interceptor to price the auth layer alone).

Prints `READY <port>` when serving; on SIGTERM stops and prints its peak RSS as JSON.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc

ECHO = "/bench.Echo/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _echo_handler() -> grpc.GenericRpcHandler:
    handler = grpc.unary_unary_rpc_method_handler(_echo)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})


def serve_bare(certs: Path) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((_echo_handler(),))
    credentials = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print(f"READY {port}", flush=True)
    return server


def serve_gateway(config: Path) -> grpc.Server:
    from credit_gateway.api.interceptor import GatewayInterceptor
    from credit_gateway.auth.scopes import INQUIRY_OPEN, MethodRule, PrincipalKind
    from credit_gateway.config import Settings
    from credit_gateway.server import start

    def add_echo(server: grpc.Server, interceptor: GatewayInterceptor) -> None:
        # Same mTLS, same token checks as every gateway method; no work behind them.
        interceptor.rules = {
            **interceptor.rules,
            ECHO: MethodRule(INQUIRY_OPEN, PrincipalKind.PARTICIPANT),
        }
        server.add_generic_rpc_handlers((_echo_handler(),))

    running = start(Settings.load(config), extra=add_echo)
    print(f"READY {running.port}", flush=True)
    return running.grpc_server


def main() -> int:
    mode, arg = sys.argv[1], Path(sys.argv[2])
    server = serve_bare(arg) if mode == "bare" else serve_gateway(arg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mib": round(peak_kib / 1024, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
