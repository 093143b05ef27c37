"""The load generator, run in its own process: N calls in flight against one method.

Unary mode: for `seconds` (after `warmup`), keep `concurrency` calls of the same serialized
request in flight; print calls/s, p50, p99 (ms) and the error count as JSON.
Stream mode: send the records of a file in one client stream; print records/s.
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
        started = time.perf_counter()
        result = await call(iter(records), metadata=metadata, timeout=600)
        elapsed = time.perf_counter() - started
    return {
        "records": len(records),
        "seconds": round(elapsed, 2),
        "records_per_s": round(len(records) / elapsed, 1),
        "response_hex": result.hex(),  # the caller checks every record was accepted
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["unary", "stream"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument(
        "--request", required=True, help="file with the serialized request (hex lines for stream)"
    )
    parser.add_argument("--token", default="")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    result = asyncio.run(unary(args) if args.mode == "unary" else stream(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
