"""The one bridge from the event loop to blocking work: transactions and the authlib server.

Everything the gateway serves runs on one asyncio loop; the database drivers are synchronous.
A call hands its whole transaction to one thread here and awaits it (one hand-off per call, not
one per statement), so no call holds a thread while it waits on its peer, and a thread is held
only while the database works. Two pools: unary calls' transactions, and the blocking work of
streams (a submission's checks and writes, a watch's reads), so that however many streams are
open, unary calls always find a thread. Each thread keeps its pinned database connection
(`Database.read_driver`) for as long as the pool lives.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from credit_gateway import metrics

P = ParamSpec("P")
T = TypeVar("T")


class Blocking:
    def __init__(self, call_threads: int, stream_threads: int) -> None:
        self._calls = _Pool(call_threads, "db")
        self._streams = _Pool(stream_threads, "db-stream")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on a unary call's thread, with the caller's context (request id, call)."""
        return await self._calls.run(fn, *args, **kwargs)

    async def stream(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on a stream's thread: streams queue there, never in the calls' pool."""
        return await self._streams.run(fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Waits for the work already handed over (a transaction commits or rolls back)."""
        self._calls.executor.shutdown(wait=True, cancel_futures=True)
        self._streams.executor.shutdown(wait=True, cancel_futures=True)

    def metric_samples(self) -> Iterable[metrics.Sample]:
        """Each pool's threads, those busy and the jobs queued, as a scrape reads them."""
        for name, pool in (("calls", self._calls), ("streams", self._streams)):
            queued = pool.queued()
            yield metrics.DB_THREADS, (name,), pool.size
            yield metrics.DB_THREADS_BUSY, (name,), max(0, min(pool.size, pool.waiting - queued))
            yield metrics.DB_JOBS_QUEUED, (name,), queued


class _Pool:
    """A thread pool and how many of the loop's tasks wait on it. `waiting` is counted on the
    event loop alone (no lock, no work on the threads); a scrape, on the loop too, reads it
    with the executor's queue: those not queued hold a thread (or just left one)."""

    def __init__(self, size: int, prefix: str) -> None:
        self.size = size
        self.executor = ThreadPoolExecutor(size, thread_name_prefix=prefix)
        self.waiting = 0

    def queued(self) -> int:
        return self.executor._work_queue.qsize()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        context = contextvars.copy_context()
        job = functools.partial(context.run, fn, *args, **kwargs)
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, job)
        finally:
            self.waiting -= 1
