"""ExchangeService.PullRecords and SubscribeChanges: protobuf in, services/feed.py, protobuf out.

A pull answers subject by subject, each one a release of the release path. A subscription
reads the feed after its cursor whenever the feed's head moves past it, and sends one
ChangeBatch a batch, each only after the previous one was written (the generator is pulled by
the server as it writes, so a slow reader slows only itself and the server holds one batch for
it at most). Nothing new: a heartbeat (no changes, the current cursor) every
feed_heartbeat_seconds, the caller's standing checked again with it.

The head is read by one task per process (`FeedHub`), every feed_poll_ms, for every open
subscription: a thousand subscriptions wait on it, not on the database. A change committed
through any replica moves the head in the shared table, so every replica's hub sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from credit_gateway.adapters.grpc.convert import (
    identifier,
    item_codes,
    query_response,
    released_record,
    subject_kind,
    to_timestamp,
)
from credit_gateway.adapters.grpc.interceptor import StandingCheck, current_call
from credit_gateway.adapters.grpc.v1 import exchange_pb2
from credit_gateway.domain.exchange import ChangeKind
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.feed import (
    Batch,
    FeedService,
    Pull,
    PullAnswer,
    SentChange,
    Subscriber,
)
from credit_gateway.services.release import InquiryService

_Ctx = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger("credit_gateway.feed")

_KINDS = {
    ChangeKind.NEW: exchange_pb2.RecordChange.KIND_NEW,
    ChangeKind.CORRECTED: exchange_pb2.RecordChange.KIND_CORRECTED,
    ChangeKind.SUSPENDED: exchange_pb2.RecordChange.KIND_SUSPENDED,
    ChangeKind.RESTORED: exchange_pb2.RecordChange.KIND_RESTORED,
    ChangeKind.DELETED: exchange_pb2.RecordChange.KIND_DELETED,
    ChangeKind.EXPIRED: exchange_pb2.RecordChange.KIND_EXPIRED,
}


class FeedHub:
    """The feed's head as one task reads it, for every subscription of this process."""

    def __init__(
        self, read_head: Callable[[], int], blocking: Blocking, poll_seconds: float
    ) -> None:
        self.read_head, self.blocking, self.poll_seconds = read_head, blocking, poll_seconds
        self.head = -1  # not read yet
        self._moved = asyncio.Event()
        self._users = 0
        self._poller: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[FeedHub]:
        """The hub, polling for as long as any subscription is in the block."""
        self._users += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            yield self
        finally:
            self._users -= 1
            if not self._users and self._poller is not None:
                self._poller.cancel()
                self._poller = None

    async def beyond(self, seq: int, timeout: float) -> bool:
        """Whether the head moved past `seq` within `timeout` seconds."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.head <= seq:
                    await self._moved.wait()
        return self.head > seq

    async def _poll(self) -> None:
        while True:
            try:
                head = await self.blocking.stream(self.read_head)
            except Exception as error:  # a database blip: subscriptions wait, the poller retries
                log.error("feed poll failed", extra={"fields": {"error": str(error)}})
            else:
                if head != self.head:
                    self.head = head
                    moved, self._moved = self._moved, asyncio.Event()
                    moved.set()  # wakes every waiter; later ones wait on the new event
            await asyncio.sleep(self.poll_seconds)


class Feed:
    def __init__(self, gateway: Gateway, blocking: Blocking, inquiry: InquiryService) -> None:
        self.gateway, self.blocking, self.inquiry = gateway, blocking, inquiry
        s = gateway.settings
        self.service = FeedService(gateway)
        self.pull = Pull(inquiry, blocking, s.pull_max_subjects)
        self.hub = FeedHub(self.service.head_seq, blocking, s.feed_poll_ms / 1000)
        self.standing = StandingCheck(gateway)
        self.batch_size = s.feed_batch
        self.heartbeat = float(s.feed_heartbeat_seconds)

    async def pull_records(
        self, request: exchange_pb2.PullRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.PulledSubject]:
        call = current_call()
        self.pull.check_count(len(request.subjects))  # before any subject is looked at
        inquiries = self.pull.inquiries(
            call.standing,
            identifier(request.agreement_id, "agreement_id"),
            identifier(request.purpose, "purpose"),
            [(s.subject_code, subject_kind(s.subject_kind)) for s in request.subjects],
            item_codes(request.item_codes),
        )
        async for answer in self.pull.answers(inquiries):
            yield _pulled(answer)

    async def subscribe_changes(
        self, request: exchange_pb2.SubscribeRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.ChangeBatch]:
        call = current_call()
        assert call.checked is not None  # the interceptor read the standing of this method
        subscriber = Subscriber(
            call.checked.id,
            call.checked.kind,
            identifier(request.agreement_id, "agreement_id"),
            identifier(request.purpose, "purpose"),
        )
        seq = await self.blocking.stream(self.service.start, subscriber, request.cursor)
        loop = asyncio.get_running_loop()
        async with self.hub.watching() as hub:
            # At once: the subscriber has its starting cursor (an empty one names "now").
            yield self._message(subscriber, seq)
            next_beat = loop.time() + self.heartbeat
            while True:
                head = hub.head
                if head > seq:
                    batch = await self.blocking.stream(
                        self.service.batch, subscriber, seq, self.batch_size
                    )
                    if batch is not None:
                        seq = batch.seq
                        yield self._message(subscriber, seq, batch)
                        next_beat = loop.time() + self.heartbeat
                        continue
                # Nothing (more) to read: wait for the head to move past what was read.
                if await hub.beyond(max(head, seq), next_beat - loop.time()):
                    continue
                # A stream may run for hours: the caller's standing is checked as it runs.
                await self.standing.recheck(self.blocking, call)
                yield self._message(subscriber, seq)
                next_beat = loop.time() + self.heartbeat

    def _message(
        self, subscriber: Subscriber, seq: int, batch: Batch | None = None
    ) -> exchange_pb2.ChangeBatch:
        cursor = self.service.cursor(subscriber.agreement_id, seq)
        if batch is None:
            return exchange_pb2.ChangeBatch(cursor=cursor)
        return exchange_pb2.ChangeBatch(
            cursor=cursor,
            changes=[_change(c) for c in batch.changes],
            inquiry_ids=list(batch.inquiry_ids),
        )


def _pulled(answer: PullAnswer) -> exchange_pb2.PulledSubject:
    pulled = exchange_pb2.PulledSubject(index=answer.index, subject_code=answer.subject_code)
    if answer.refusal is not None:
        pulled.refused_reason = answer.refusal.reason
        pulled.refused_message = answer.refusal.message
    if answer.result is not None:
        response = query_response(answer.result)  # the inquiry's conversion, records and withheld
        pulled.inquiry_id = response.inquiry_id
        pulled.records.extend(response.records)
        pulled.withheld.extend(response.withheld)
    return pulled


def _change(sent: SentChange) -> exchange_pb2.RecordChange:
    change = exchange_pb2.RecordChange(
        kind=_KINDS[sent.kind],
        record_id=sent.record_id,
        item_code=sent.item_code,
        subject_code=sent.subject_code,
        replaces=sent.replaces or "",
        changed_at=to_timestamp(sent.at),
    )
    if sent.record is not None:
        change.record.CopyFrom(released_record(sent.record))
    return change
