"""SubmissionService: a client stream of records in, one result per record out."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from credit_gateway.adapters.grpc.convert import subject_kind, to_datetime
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.v1 import submission_pb2, submission_pb2_grpc
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.services.submission import (
    Abandoned,
    Incoming,
    IncomingNotice,
    RecordOutcome,
    SubmissionService,
    Violation,
    bad_time,
    unknown_subject_kind,
)

_Ctx = grpc.aio.ServicerContext[Any, Any]
M = TypeVar("M")  # a stream's message
R = TypeVar("R")  # a record as the service checks it
log = logging.getLogger("credit_gateway.calls")

_OUTCOMES = {
    "ACCEPTED": submission_pb2.RecordResult.OUTCOME_ACCEPTED,
    "DUPLICATE": submission_pb2.RecordResult.OUTCOME_DUPLICATE,
    "REJECTED": submission_pb2.RecordResult.OUTCOME_REJECTED,
}


CHUNK = 500  # records handed to a database thread at once for checking
CHECKING = 2  # chunks of one stream checked at once


class SubmissionServicer(submission_pb2_grpc.SubmissionServiceServicer):
    def __init__(self, service: SubmissionService, blocking: Blocking, max_records: int) -> None:
        self.service, self.blocking, self.max_records = service, blocking, max_records

    async def SubmitRecords(
        self,
        request_iterator: AsyncIterator[submission_pb2.SubmittedRecord],
        context: _Ctx,
    ) -> submission_pb2.SubmissionResult:
        call = current_call()
        batch = await self.blocking.stream(self.service.begin, call.client.id)
        await read_in_chunks(
            self.blocking,
            request_iterator,
            incoming,
            functools.partial(self.service.check, batch),
            self.max_records,
        )
        return await finish_unless_gone(
            self.blocking, context, functools.partial(self.service.finish, batch)
        )


# What the record streams (SubmitRecords, ExchangeService.PushRecords) share: the stream read
# and checked in chunks on a stream thread, then one write that a client gone rolls back.


async def read_in_chunks(
    blocking: Blocking,
    messages: AsyncIterator[M],
    convert: Callable[[M], R],
    check: Callable[[list[R], int], None],
    max_records: int,
) -> None:
    """Reads the stream to its end, handing its records to `check` (with the stream index of a
    chunk's first) CHUNK at a time on stream threads, so the loop never runs the checks (nor
    `convert`, which turns the chunk's messages into records there). Up to
    CHECKING chunks are checked at once while the next is read: the checks' ES256 verifications
    release the GIL, so two of them use both cores. More than `max_records` refuses the stream;
    a check's error fails it, after the chunks in flight are done (nothing runs on after)."""

    def converted_and_checked(chunk: list[M], first: int) -> None:
        check([convert(pb) for pb in chunk], first)

    read = 0
    chunk: list[M] = []
    checking: deque[asyncio.Future[None]] = deque()
    try:
        async for pb in messages:
            if read >= max_records:
                raise InvalidArgument(
                    f"a submission stream carries at most {max_records} records",
                    reason="STREAM_TOO_LONG",
                )
            chunk.append(pb)
            read += 1
            if len(chunk) >= CHUNK:
                if len(checking) >= CHECKING:
                    await checking.popleft()
                job = blocking.stream(converted_and_checked, chunk, read - CHUNK)
                checking.append(asyncio.ensure_future(job))
                chunk = []
        job = blocking.stream(converted_and_checked, chunk, read - len(chunk))
        checking.append(asyncio.ensure_future(job))
        while checking:
            await checking.popleft()
    finally:
        if checking:  # the stream failed: let what is on a thread end before the batch goes
            await asyncio.gather(*checking, return_exceptions=True)


async def finish_unless_gone(
    blocking: Blocking,
    context: _Ctx,
    finish: Callable[[Callable[[], bool]], list[RecordOutcome]],
) -> submission_pb2.SubmissionResult:
    """`finish(abandoned)` on a stream thread once the client half-closed the stream, and its
    outcomes' result message made there too (10,000 results are ~0.1 s the loop need not
    spend); if the call is cancelled from then on (client gone, deadline, shutdown),
    `abandoned()` turns true and the write is rolled back before its commit."""
    await _half_closed(context)
    gone = threading.Event()

    def finished(abandoned: Callable[[], bool]) -> submission_pb2.SubmissionResult:
        return submission_result(finish(abandoned))

    job = asyncio.ensure_future(blocking.stream(finished, gone.is_set))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        gone.set()
        job.add_done_callback(_settled)
        raise


async def _half_closed(context: _Ctx) -> None:
    """Makes sure the request stream ended by the client's half-close. gRPC ends it the same
    way when the call is cancelled (the client cancels, its deadline passes, the server shuts
    down) and tells the handler only a moment later, so a submission could be committed for a
    client that is gone. Sending the response headers now fails on a call that is gone."""
    try:
        await context.send_initial_metadata(())
    except Exception as failed:  # grpc's ExecuteBatchError: the call was cancelled
        raise asyncio.CancelledError("the call ended before its stream did") from failed


def _settled(job: asyncio.Future[Any]) -> None:
    """The write of a call that went away ends on its thread: rolled back (Abandoned), or
    failed. Nobody waits for it any more; its exception is taken here so that asyncio does not
    report it as never retrieved."""
    if not job.cancelled():
        error = job.exception()
        if error is not None and not isinstance(error, Abandoned):
            log.error("abandoned submission failed", extra={"fields": {"error": str(error)}})


def incoming(pb: submission_pb2.SubmittedRecord) -> Incoming:
    """The record as the service checks it. What does not convert (a time finer than a
    microsecond, an unknown subject kind) is the record's own rejection, not the stream's."""
    problem: Violation | None = None

    def when(ts: Timestamp, field: str) -> datetime | None:
        nonlocal problem
        try:
            return to_datetime(ts, field, required=False)
        except InvalidArgument as exc:
            problem = problem or bad_time(field, exc.message)
            return None

    kind = None
    try:
        kind = subject_kind(pb.subject_kind)
    except InvalidArgument as exc:
        problem = unknown_subject_kind(exc.message)
    occurred = when(pb.occurred_at, "occurred_at") if pb.HasField("occurred_at") else None
    notice = None
    if pb.HasField("notice"):
        delivered = pb.notice.delivered_at
        at = when(delivered, "notice.delivered_at") if pb.notice.HasField("delivered_at") else None
        notice = IncomingNotice(pb.notice.number, at)
    return Incoming(
        pb.provider_record_id,
        pb.item_code,
        pb.subject_code,
        pb.payload_json,
        occurred,
        notice,
        pb.signature,
        pb.key_id,
        kind,
        problem,
    )


def submission_result(outcomes: list[RecordOutcome]) -> submission_pb2.SubmissionResult:
    result = submission_pb2.SubmissionResult(
        results=[
            submission_pb2.RecordResult(
                provider_record_id=o.provider_record_id,
                outcome=_OUTCOMES[o.outcome],
                record_id=o.record_id,
                index=o.index,
                violations=[
                    submission_pb2.Violation(
                        reason=v.reason, field=v.field, description=v.description
                    )
                    for v in o.violations
                ],
            )
            for o in outcomes
        ]
    )
    counts = Counter(o.outcome for o in outcomes)
    result.accepted = counts["ACCEPTED"]
    result.duplicates = counts["DUPLICATE"]
    result.rejected = counts["REJECTED"]
    return result
