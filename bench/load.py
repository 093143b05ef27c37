"""The load generator, run in its own process: N calls in flight against one method.

Unary mode: for `seconds` (after `warmup`), keep `concurrency` calls of the same serialized
request in flight; print calls/s, p50, p99 (ms) and the error count as JSON.
Stream mode: send the records of a file in one client stream; print records/s.
Feed mode: one server-streaming call of the serialized request (or the median of `--repeat`);
read until `--expect` records came, each message one record, or with `--changes` each change of
a ChangeBatch (decoded with exchange_pb2); print records/s from the call to the last record,
and the messages and bytes that carried them (messages with no record, like a heartbeat, are
not counted).
HTTP mode: POST each line of a file (form bodies, each used once: client assertions are
single-use) to a URL over TLS with a client certificate, `concurrency` at a time; print
requests/s of 200 answers. Hold mode: open `--streams` Health.Watch streams spread over the
certificates in `--certs-dir` (a few per certificate, as the per-certificate limit allows), print
OPEN, and keep them until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import grpc
from grpc import aio


def _credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())


async def unary(args: argparse.Namespace) -> dict[str, object]:
    request = Path(args.request).read_bytes()
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    async with aio.secure_channel(
        args.target, _credentials(args.ca, args.cert, args.key)
    ) as channel:
        call = channel.unary_unary(args.method)  # bytes in, bytes out
        await call(request, metadata=metadata, timeout=10)
        latencies: list[float] = []
        errors = 0
        deadline_warm = time.perf_counter() + args.warmup
        deadline = deadline_warm + args.seconds

        async def worker() -> None:
            nonlocal errors
            while True:
                started = time.perf_counter()
                if started >= deadline:
                    return
                try:
                    await call(request, metadata=metadata, timeout=10)
                except grpc.RpcError:
                    errors += 1  # counted apart: a refused call is not throughput
                    continue
                if started >= deadline_warm:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    latencies.sort()
    return {
        "calls_per_s": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "errors": errors,
    }


async def stream(args: argparse.Namespace) -> dict[str, object]:
    records = [bytes.fromhex(line) for line in Path(args.request).read_text().split()]
    metadata = (("authorization", f"Bearer {args.token}"),)
    async with aio.secure_channel(
        args.target, _credentials(args.ca, args.cert, args.key)
    ) as channel:
        call = channel.stream_unary(args.method)
        await channel.channel_ready()  # the TLS handshake is not the stream's
        started = time.perf_counter()
        result = await call(iter(records), metadata=metadata, timeout=600)
        elapsed = time.perf_counter() - started
    return {
        "records": len(records),
        "seconds": round(elapsed, 2),
        "records_per_s": round(len(records) / elapsed, 1),
        "response_hex": result.hex(),  # the caller checks every record was accepted
    }


async def feed(args: argparse.Namespace) -> dict[str, object]:
    from credit_gateway.adapters.grpc.v1 import exchange_pb2

    request = Path(args.request).read_bytes()
    metadata = (("authorization", f"Bearer {args.token}"),)

    async def once(channel: aio.Channel) -> dict[str, object]:
        records = messages = size = 0
        started = time.perf_counter()
        call = channel.unary_stream(args.method)(request, metadata=metadata, timeout=600)
        async for message in call:
            found = len(exchange_pb2.ChangeBatch.FromString(message).changes) if args.changes else 1
            if found:
                records, messages, size = records + found, messages + 1, size + len(message)
            if records >= args.expect:
                break
        elapsed = time.perf_counter() - started
        call.cancel()  # a subscription does not end by itself
        return {
            "records": records,
            "messages": messages,
            "bytes": size,
            "seconds": round(elapsed, 4),
            "records_per_s": round(records / elapsed, 1),
        }

    async with aio.secure_channel(
        args.target, _credentials(args.ca, args.cert, args.key)
    ) as channel:
        await channel.channel_ready()  # the TLS handshake is not the stream's
        runs = [await once(channel) for _ in range(args.repeat)]
    # A short stream is at the mercy of the shared machine: the median of `repeat` runs.
    return sorted(runs, key=lambda r: float(str(r["seconds"])))[len(runs) // 2]


async def http(args: argparse.Namespace) -> dict[str, object]:
    import ssl

    import aiohttp

    bodies = Path(args.request).read_text().split()
    context = ssl.create_default_context(cafile=str(args.ca))
    context.load_cert_chain(args.cert, args.key)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=context, limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(bodies)
        started_all = time.perf_counter()

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                started = time.perf_counter()
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                try:
                    async with session.post(args.target, data=body, headers=headers) as answer:
                        await answer.read()
                        if answer.status != 200:
                            if not errors:  # the first refusal says why the rest failed
                                print(answer.status, await answer.text(), file=sys.stderr)
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started_all
    if not latencies:
        raise SystemExit(f"every one of {errors} requests failed")
    latencies.sort()
    return {
        "calls_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "errors": errors,
    }


async def hold(args: argparse.Namespace) -> dict[str, object]:
    import signal

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    keys = sorted(Path(args.certs_dir).glob("*.key"))
    ca = args.ca.read_bytes()
    channels = [
        aio.secure_channel(
            args.target,
            grpc.ssl_channel_credentials(
                ca, key.read_bytes(), key.with_suffix(".pem").read_bytes()
            ),
        )
        for key in keys
    ]
    calls = []
    for i in range(args.streams):
        stub = health_pb2_grpc.HealthStub(channels[i % len(channels)])
        call = stub.Watch(health_pb2.HealthCheckRequest())
        await call.read()  # the first answer: the stream is open on the server
        calls.append(call)
    print("OPEN", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close()
    return {"streams": len(calls)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["unary", "stream", "feed", "http", "hold"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", default="")
    parser.add_argument(
        "--request", default="", help="file with the serialized request (hex lines for stream)"
    )
    parser.add_argument("--token", default="")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--streams", type=int, default=0)
    parser.add_argument("--certs-dir", default="")
    parser.add_argument("--expect", type=int, default=0, help="feed: records to read")
    parser.add_argument("--changes", action="store_true", help="feed: count ChangeBatch changes")
    parser.add_argument("--repeat", type=int, default=1, help="feed: calls, the median reported")
    args = parser.parse_args()
    modes = {"unary": unary, "stream": stream, "feed": feed, "http": http, "hold": hold}
    result = asyncio.run(modes[args.mode](args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
