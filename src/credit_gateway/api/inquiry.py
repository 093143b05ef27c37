"""InquiryService: protobuf in, exchange.inquiry.release, protobuf out."""

from __future__ import annotations

import grpc

from credit_gateway.api.convert import to_timestamp
from credit_gateway.api.interceptor import current_call
from credit_gateway.api.v1 import common_pb2, inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.errors import InvalidArgument
from credit_gateway.exchange.inquiry import Inquiry, InquiryResult, InquiryService
from credit_gateway.policy import Channel

MAX_PURPOSE = 64
SELF_CALLER = "self"


class InquiryServicer(inquiry_pb2_grpc.InquiryServiceServicer):
    def __init__(self, service: InquiryService) -> None:
        self.service = service

    def QueryOpen(
        self, request: inquiry_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> common_pb2.QueryResponse:
        return self._participant_query(Channel.OPEN_INQUIRY, "QueryOpen", request, None)

    def ShareGovernment(
        self, request: inquiry_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> common_pb2.QueryResponse:
        return self._participant_query(Channel.GOVERNMENT_SHARING, "ShareGovernment", request, None)

    def QueryAuthorized(
        self, request: inquiry_pb2.AuthorizedQueryRequest, context: grpc.ServicerContext
    ) -> common_pb2.QueryResponse:
        return self._participant_query(
            Channel.AUTHORIZED_INQUIRY, "QueryAuthorized", request.query, request.consent_token
        )

    def QueryOwn(
        self, request: inquiry_pb2.OwnQueryRequest, context: grpc.ServicerContext
    ) -> common_pb2.QueryResponse:
        call = current_call()
        # The audit log names the caller "self", never the identity number the token carries.
        inquiry = Inquiry(
            Channel.SELF_INQUIRY,
            SELF_CALLER,
            None,
            "QueryOwn",
            call.principal.id,
            purpose="SELF",
            item_codes=tuple(request.item_codes),
        )
        return _response(self.service.release(inquiry))

    def _participant_query(
        self,
        channel: Channel,
        method: str,
        request: inquiry_pb2.QueryRequest,
        consent_token: str | None,
    ) -> common_pb2.QueryResponse:
        call = current_call()
        if not request.subject_code:
            raise InvalidArgument.field("subject_code", "required")
        if not request.purpose or len(request.purpose) > MAX_PURPOSE:
            raise InvalidArgument.field("purpose", f"required, at most {MAX_PURPOSE} characters")
        if not request.agreement_id:
            raise InvalidArgument.field(
                "agreement_id", "name the agreement the inquiry is made under"
            )
        inquiry = Inquiry(
            channel,
            call.client.id,
            call.client.kind.value,
            method,
            request.subject_code,
            request.purpose,
            tuple(request.item_codes),
            request.agreement_id,
            consent_token,
        )
        return _response(self.service.release(inquiry))


def _response(result: InquiryResult) -> common_pb2.QueryResponse:
    return common_pb2.QueryResponse(
        inquiry_id=result.inquiry_id,
        records=[
            common_pb2.ReleasedRecord(
                record_id=r.record_id,
                item_code=r.item_code,
                provider_code=r.provider_id,
                payload_json=r.payload,
                occurred_at=to_timestamp(r.occurred_at),
                labels=list(r.labels),
            )
            for r in result.released
        ],
        withheld=[
            common_pb2.Withheld(item_code=w.item_code, reason=w.reason, count=w.count)
            for w in result.withheld
        ],
        conditions=list(result.conditions),
        consent_id=result.consent_id or "",
        agreement_id=result.agreement_id or "",
    )
