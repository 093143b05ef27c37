"""interceptor.idle_limited, the client streams' idle limit, on a bare event loop: one timer a
stream. Each wait for a message is bounded, the time the reader spends between messages is not,
and a cancellation of the call is never taken for idleness, even when it comes at the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from credit_gateway.adapters.grpc.interceptor import idle_limited
from credit_gateway.errors import DeadlineExceeded

IDLE = 0.2


async def sent(gaps: list[float]) -> AsyncIterator[int]:
    """Messages 0, 1, ... each after its gap."""
    for n, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield n


async def read(messages: AsyncIterator[int], pause: float = 0.0) -> list[int]:
    got = []
    async for message in idle_limited(messages, IDLE):
        got.append(message)
        await asyncio.sleep(pause)  # the reader's own work between messages
    return got


def test_messages_within_the_limit_all_arrive() -> None:
    gaps = [0.0, IDLE / 2, IDLE / 2, IDLE / 3, IDLE / 2, IDLE / 2]  # longer together than IDLE
    assert asyncio.run(read(sent(gaps))) == list(range(len(gaps)))


def test_a_wait_past_the_limit_ends_the_stream_at_the_limit() -> None:
    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DeadlineExceeded) as ended:
            await read(sent([0.0, IDLE / 2, 10 * IDLE]))
        assert ended.value.reason == "STREAM_IDLE"
        return loop.time() - started - IDLE / 2

    assert IDLE <= asyncio.run(timed()) < 2 * IDLE


def test_the_readers_own_time_between_messages_is_not_idleness() -> None:
    # Each message comes at once when asked for; the reader takes twice the limit over each.
    assert asyncio.run(read(sent([0.0] * 3), pause=2 * IDLE)) == [0, 1, 2]


@pytest.mark.parametrize("at", [IDLE / 2, IDLE])
def test_a_cancelled_call_is_cancelled_not_idle(at: float) -> None:
    async def cancelled() -> None:
        reader = asyncio.ensure_future(read(sent([0.0, 10 * IDLE])))
        await asyncio.sleep(at)  # at the limit: the call's cancellation comes with the idle one
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(cancelled())


def test_the_timer_goes_with_the_stream() -> None:
    async def after() -> int:
        await read(sent([0.0, 0.0]))
        loop = asyncio.get_running_loop()
        return sum(1 for h in loop._scheduled if not h.cancelled())  # type: ignore[attr-defined]

    assert asyncio.run(after()) == 0
