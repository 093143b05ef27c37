"""A server process for the benchmark. Modes:

- `bare-threaded CERTS`: grpcio's threaded server, an mTLS echo (the stack the gateway left);
- `bare-aio CERTS`: grpc.aio, the same echo (the baseline every gateway figure is a ratio to),
  and the exchange's streaming baselines: `bench.Stream/Count`, a client stream answered with
  its message count, and `bench.Stream/Spray`, which answers "N SIZE" with N messages of SIZE
  bytes (bytes in, bytes out: no protobuf on either side); and `bench.Stream/Verify`, the client
  stream of pushed records doing only the cryptography a push cannot skip (`_verify_chunk`);
- `gateway CONFIG`: the real gateway, plus an echo method behind its interceptor (the auth layer
  alone), served like `credit-gateway serve` serves it;
- `raw-release CONFIG`: the bare grpc.aio server whose echo runs the release path's own
  statements through the raw driver on a database thread (bench/release_profile.py), against the
  gateway database CONFIG names: what the release path would cost without the gateway's Python;
- `https-hello CERTS`: the token endpoint's HTTP server (auth/https.py) answering "hello", the
  bare figure for tokens/s.

Prints `READY <port>` when serving; on SIGTERM stops and prints its peak RSS as JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

ECHO = "/bench.Echo/Echo"


def _echo_handler(behaviour: Callable[..., Any]) -> grpc.GenericRpcHandler:
    handler = grpc.unary_unary_rpc_method_handler(behaviour)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})


def _credentials(certs: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )


def serve_bare_threaded(certs: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((_echo_handler(lambda request, _context: request),))
    port = server.add_secure_port("127.0.0.1:0", _credentials(certs))
    server.start()
    print(f"READY {port}", flush=True)
    _wait_for_sigterm()
    server.stop(1).wait()


def _verify_chunk(records: list[Any], origin_key: Any, provider_keys: dict[bytes, Any]) -> None:
    """What no push can skip, a record at a time: the provider's canonical bytes and the
    origin's claim over them made, and both ES256 signatures verified (the provider's keys
    parsed once a distinct JWK Set, as the gateway caches them). Nothing of the gateway's other
    checks, its audit or its store."""
    from credit_gateway.adapters.grpc.convert import to_datetime
    from credit_gateway.crypto.jwks import ec_keys
    from credit_gateway.crypto.signatures import verify_es256
    from credit_gateway.domain.pushed import OriginClaim
    from credit_gateway.domain.records import Submission

    for pushed in records:
        record = pushed.record
        jwks = pushed.provider_jwks
        keys = provider_keys.get(jwks)
        if keys is None:
            keys = provider_keys[jwks] = ec_keys(json.loads(jwks))
        signing = Submission(
            pushed.provider_code, record.provider_record_id, record.item_code,
            record.subject_code, json.loads(record.payload_json),
            to_datetime(record.occurred_at, "occurred_at"), None,
        ).signing_bytes()  # fmt: skip
        claim = OriginClaim(
            pushed.origin_record_id, pushed.provider_code, jwks,
            hashlib.sha256(signing).hexdigest(), record.signature,
        )  # fmt: skip
        verify_es256(origin_key, claim.signing_bytes(), pushed.origin_signature, what="origin")
        verify_es256(keys[record.key_id], signing, record.signature, what="provider")


def _stream_handler() -> grpc.GenericRpcHandler:
    from credit_gateway.runtime.blocking import Blocking

    blocking = Blocking(1, 2)  # the verifying stream's threads, as the gateway's streams have

    async def count(requests: AsyncIterator[bytes], _context: object) -> bytes:
        n = 0
        async for _ in requests:
            n += 1
        return str(n).encode()

    async def verify(requests: AsyncIterator[bytes], context: Any) -> bytes:
        """Read as the gateway reads a push (adapters/grpc/submission.read_in_chunks: each chunk
        parsed and checked on a stream thread, two at once, while the next is read)."""
        from cryptography.x509 import load_pem_x509_certificate

        from credit_gateway.adapters.grpc.submission import read_in_chunks
        from credit_gateway.adapters.grpc.v1 import exchange_pb2

        (pem,) = context.auth_context()["x509_pem_cert"]
        origin_key = load_pem_x509_certificate(pem).public_key()
        provider_keys: dict[bytes, Any] = {}
        chunks: list[int] = []  # each chunk's length, appended on its thread

        def check(records: list[Any], _first: int) -> None:
            _verify_chunk(records, origin_key, provider_keys)
            chunks.append(len(records))

        convert = exchange_pb2.PushedRecord.FromString
        await read_in_chunks(blocking, requests, convert, check, sys.maxsize)
        return str(sum(chunks)).encode()

    async def spray(request: bytes, _context: object) -> AsyncIterator[bytes]:
        n, size = (int(x) for x in request.split())
        message = b"x" * size
        for _ in range(n):
            yield message

    return grpc.method_handlers_generic_handler(
        "bench.Stream",
        {
            "Count": grpc.stream_unary_rpc_method_handler(count),
            "Verify": grpc.stream_unary_rpc_method_handler(verify),
            "Spray": grpc.unary_stream_rpc_method_handler(spray),
        },
    )


async def _bare_aio(
    certs: Path, behaviour: Callable[..., Awaitable[bytes]], streams: bool = False
) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_echo_handler(behaviour),))
    if streams:
        server.add_generic_rpc_handlers((_stream_handler(),))
    port = server.add_secure_port("127.0.0.1:0", _credentials(certs))
    await server.start()
    print(f"READY {port}", flush=True)
    await _until_sigterm()
    await server.stop(1)


async def _echo(request: bytes, _context: object) -> bytes:
    return request


async def _gateway(config: Path) -> None:
    from credit_gateway.adapters.grpc.interceptor import GatewayInterceptor
    from credit_gateway.auth.scopes import INQUIRY_OPEN, MethodRule, PrincipalKind
    from credit_gateway.runtime.config import Settings
    from credit_gateway.runtime.server import serve

    def add_echo(server: grpc.aio.Server, interceptor: GatewayInterceptor) -> None:
        # Same mTLS, same token checks as every gateway method; no work behind them.
        interceptor.rules = {
            **interceptor.rules,
            ECHO: MethodRule(INQUIRY_OPEN, PrincipalKind.PARTICIPANT),
        }
        server.add_generic_rpc_handlers((_echo_handler(_echo),))

    served = await serve(Settings.load(config), extra=add_echo)
    print(f"READY {served.port} {served.oauth_port}", flush=True)
    await _until_sigterm()
    await served.stop(1)


async def _raw_release(config: Path) -> None:
    from release_profile import raw_release_handler

    from credit_gateway.runtime.config import Settings

    certs = Settings.load(config).certs_dir
    one, close = raw_release_handler(config)
    pool = futures.ThreadPoolExecutor(8)
    loop = asyncio.get_running_loop()

    async def release(request: bytes, _context: object) -> bytes:
        await loop.run_in_executor(pool, one)
        return request

    try:
        await _bare_aio(certs, release)
    finally:
        pool.shutdown()
        close()


async def _https_hello(certs: Path) -> None:
    import ssl

    from credit_gateway.adapters.http.server import HttpRequest, HttpResponse, serve_https

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.load_verify_locations(cafile=str(certs / "ca.pem"))
    context.verify_mode = ssl.CERT_OPTIONAL
    pool = futures.ThreadPoolExecutor(8)
    loop = asyncio.get_running_loop()

    def hello(_request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, (("Content-Type", "text/plain"),), b"hello")

    async def run(job: Callable[[], HttpResponse]) -> HttpResponse:
        return await loop.run_in_executor(pool, job)  # as the gateway runs its OAuth server

    https = await serve_https(hello, "127.0.0.1", 0, context, run=run)
    print(f"READY {https.port}", flush=True)
    await _until_sigterm()
    await https.stop()
    pool.shutdown()


async def _until_sigterm() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def _wait_for_sigterm() -> None:
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def main() -> int:
    mode, arg = sys.argv[1], Path(sys.argv[2])
    if mode == "bare-threaded":
        serve_bare_threaded(arg)
    elif mode == "bare-aio":
        asyncio.run(_bare_aio(arg, _echo, streams=True))
    elif mode == "gateway":
        asyncio.run(_gateway(arg))
    elif mode == "raw-release":
        asyncio.run(_raw_release(arg))
    elif mode == "https-hello":
        asyncio.run(_https_hello(arg))
    else:
        raise SystemExit(f"unknown mode {mode}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mib": round(peak_kib / 1024, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
