"""One poller per process for every open WatchConsents stream.

Each watch used to read the event table ten times a second; a thousand watches made ten
thousand reads a second. Here one task reads every grantee's new events (a change made through
any replica is in the shared table) and hands each to the queues of that grantee's watches. A
watch whose queue fills (its client reads too slowly) is told so and ends, so that the server
never holds more than a bounded window for anybody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from credit_gateway.adapters.storage import events as event_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.domain.consent import ConsentEvent
from credit_gateway.errors import ResourceExhausted
from credit_gateway.runtime.blocking import Blocking

log = logging.getLogger("credit_gateway.watch")
POLL_SECONDS = 0.1
BATCH = 500
WINDOW = 256  # events held for one slow watch before it is ended


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[ConsentEvent] = field(default_factory=lambda: asyncio.Queue(WINDOW))
    overflowed: bool = False

    async def next(self, timeout: float) -> ConsentEvent | None:
        """The next event, or None when none came within `timeout`."""
        if self.overflowed and self.queue.empty():
            raise ResourceExhausted(
                "the watch fell too far behind its events; open it again and re-read the "
                "consents it follows",
                reason="WATCH_BEHIND",
            )
        # Not wait_for: on Python 3.11 it swallows a cancellation that comes with an event,
        # and the watch of a client that is gone would run on, holding its slot.
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None


class ConsentEventHub:
    def __init__(self, db: Database, blocking: Blocking, poll_seconds: float = POLL_SECONDS):
        self.db, self.blocking, self.poll_seconds = db, blocking, poll_seconds
        self._watches: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._seq = 0
        self._poller: asyncio.Task[None] | None = None
        self._start: asyncio.Future[int] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, grantee_id: str) -> AsyncIterator[Subscription]:
        """The grantee's events from now on, for as long as the block runs."""
        if self._poller is None or self._poller.done():
            # Made before any await, so two watches opening at once share one poller.
            self._start = start = asyncio.ensure_future(self.blocking.stream(self._latest))
            self._poller = asyncio.create_task(self._poll(start))
        assert self._start is not None
        await asyncio.shield(self._start)  # where "now" is in the event table (or StorageError)
        subscription = Subscription()
        self._watches[grantee_id].add(subscription)
        try:
            yield subscription
        finally:
            self._watches[grantee_id].discard(subscription)
            if not self._watches[grantee_id]:
                del self._watches[grantee_id]
            if not self._watches and self._poller is not None:
                self._poller.cancel()
                self._poller = None

    def close(self) -> None:
        """Stops the poller (at shutdown, when watches may not have ended yet)."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def _latest(self) -> int:
        with self.db.transaction(write=False) as session:
            return event_store.latest_seq(session)

    def _since(self, seq: int) -> list[tuple[str, ConsentEvent]]:
        with self.db.transaction(write=False) as session:
            return event_store.events_since(session, seq, BATCH)

    async def _poll(self, start: asyncio.Future[int]) -> None:
        try:
            self._seq = await start
        except Exception:  # the watches that wait on `start` are told; the next one retries
            return
        while True:
            try:
                found = await self.blocking.stream(self._since, self._seq)
            except Exception as error:  # a database blip: the watches wait, the poller retries
                log.error("watch poll failed", extra={"fields": {"error": str(error)}})
                found = []
            for grantee_id, event in found:
                self._seq = event.seq
                for subscription in self._watches.get(grantee_id, ()):
                    try:
                        subscription.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        subscription.overflowed = True
            if len(found) < BATCH:
                await asyncio.sleep(self.poll_seconds)
