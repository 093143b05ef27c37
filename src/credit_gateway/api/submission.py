"""SubmissionService: a client stream of records in, one result per record out."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from credit_gateway.api.convert import to_datetime
from credit_gateway.api.interceptor import current_call
from credit_gateway.api.v1 import submission_pb2, submission_pb2_grpc
from credit_gateway.errors import InvalidArgument
from credit_gateway.exchange.submission import Incoming, SubmissionService

_OUTCOMES = {
    "ACCEPTED": submission_pb2.RecordResult.OUTCOME_ACCEPTED,
    "DUPLICATE": submission_pb2.RecordResult.OUTCOME_DUPLICATE,
    "REJECTED": submission_pb2.RecordResult.OUTCOME_REJECTED,
}


class SubmissionServicer(submission_pb2_grpc.SubmissionServiceServicer):
    def __init__(self, service: SubmissionService, max_records: int) -> None:
        self.service, self.max_records = service, max_records

    def SubmitRecords(
        self,
        request_iterator: Iterator[submission_pb2.SubmittedRecord],
        context: grpc.ServicerContext,
    ) -> submission_pb2.SubmissionResult:
        call = current_call()
        outcomes = self.service.submit(call.client.id, self._incoming(request_iterator))
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
        for o in outcomes:
            if o.outcome == "ACCEPTED":
                result.accepted += 1
            elif o.outcome == "DUPLICATE":
                result.duplicates += 1
            else:
                result.rejected += 1
        return result

    def _incoming(self, stream: Iterator[submission_pb2.SubmittedRecord]) -> Iterator[Incoming]:
        for count, pb in enumerate(stream, start=1):
            if count > self.max_records:
                raise InvalidArgument(
                    f"a submission stream carries at most {self.max_records} records",
                    reason="STREAM_TOO_LONG",
                )
            occurred = None
            if pb.HasField("occurred_at"):
                try:
                    occurred = to_datetime(pb.occurred_at, "occurred_at")
                except InvalidArgument:
                    occurred = None
            yield Incoming(
                pb.provider_record_id,
                pb.item_code,
                pb.subject_code,
                pb.payload_json,
                occurred,
                pb.notice_reference,
                pb.signature,
                pb.key_id,
            )
