"""SubmissionService: a client stream of records in, one result per record out."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc

from credit_gateway.adapters.grpc.convert import to_datetime
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.v1 import submission_pb2, submission_pb2_grpc
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.services.submission import (
    Abandoned,
    Incoming,
    RecordOutcome,
    SubmissionService,
)

_Ctx = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger("credit_gateway.calls")

_OUTCOMES = {
    "ACCEPTED": submission_pb2.RecordResult.OUTCOME_ACCEPTED,
    "DUPLICATE": submission_pb2.RecordResult.OUTCOME_DUPLICATE,
    "REJECTED": submission_pb2.RecordResult.OUTCOME_REJECTED,
}


CHUNK = 500  # records handed to a database thread at once for checking


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
        chunk: list[Incoming] = []
        async for pb in request_iterator:
            if batch.count + len(chunk) >= self.max_records:
                raise InvalidArgument(
                    f"a submission stream carries at most {self.max_records} records",
                    reason="STREAM_TOO_LONG",
                )
            chunk.append(_incoming(pb))
            if len(chunk) >= CHUNK:
                await self.blocking.stream(self.service.check, batch, chunk)
                chunk = []
        await self.blocking.stream(self.service.check, batch, chunk)
        await _half_closed(context)
        # If the call is cancelled from here on (client gone, deadline, shutdown), the write is
        # rolled back before its commit.
        gone = threading.Event()
        job = asyncio.ensure_future(self.blocking.stream(self.service.finish, batch, gone.is_set))
        try:
            outcomes = await asyncio.shield(job)
        except asyncio.CancelledError:
            gone.set()
            job.add_done_callback(_settled)
            raise
        return _result(outcomes)


async def _half_closed(context: _Ctx) -> None:
    """Makes sure the request stream ended by the client's half-close. gRPC ends it the same
    way when the call is cancelled (the client cancels, its deadline passes, the server shuts
    down) and tells the handler only a moment later, so a submission could be committed for a
    client that is gone. Sending the response headers now fails on a call that is gone."""
    try:
        await context.send_initial_metadata(())
    except Exception as failed:  # grpc's ExecuteBatchError: the call was cancelled
        raise asyncio.CancelledError("the call ended before its stream did") from failed


def _settled(job: asyncio.Future[list[RecordOutcome]]) -> None:
    """The write of a call that went away ends on its thread: rolled back (Abandoned), or
    failed. Nobody waits for it any more; its exception is taken here so that asyncio does not
    report it as never retrieved."""
    if not job.cancelled():
        error = job.exception()
        if error is not None and not isinstance(error, Abandoned):
            log.error("abandoned submission failed", extra={"fields": {"error": str(error)}})


def _incoming(pb: submission_pb2.SubmittedRecord) -> Incoming:
    occurred = None
    if pb.HasField("occurred_at"):
        try:
            occurred = to_datetime(pb.occurred_at, "occurred_at")
        except InvalidArgument:
            occurred = None
    return Incoming(
        pb.provider_record_id,
        pb.item_code,
        pb.subject_code,
        pb.payload_json,
        occurred,
        pb.notice_reference,
        pb.signature,
        pb.key_id,
    )


def _result(outcomes: list[RecordOutcome]) -> submission_pb2.SubmissionResult:
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
