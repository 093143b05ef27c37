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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Blocking:
    def __init__(self, call_threads: int, stream_threads: int) -> None:
        self._calls = ThreadPoolExecutor(call_threads, thread_name_prefix="db")
        self._streams = ThreadPoolExecutor(stream_threads, thread_name_prefix="db-stream")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on a unary call's thread, with the caller's context (request id, call)."""
        return await _run(self._calls, fn, *args, **kwargs)

    async def stream(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on a stream's thread: streams queue there, never in the calls' pool."""
        return await _run(self._streams, fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Waits for the work already handed over (a transaction commits or rolls back)."""
        self._calls.shutdown(wait=True, cancel_futures=True)
        self._streams.shutdown(wait=True, cancel_futures=True)


async def _run(
    pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    context = contextvars.copy_context()
    job = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, job)
