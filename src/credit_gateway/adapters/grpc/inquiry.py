"""InquiryService: protobuf in, exchange.inquiry.release, protobuf out."""

from __future__ import annotations

from typing import Any

import grpc

from credit_gateway.adapters.grpc.convert import (
    identifier,
    item_codes,
    query_response,
    subject_kind,
)
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.v1 import common_pb2, inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.domain import idempotency
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.policy import Channel
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.services.release import Inquiry, InquiryResult, InquiryService

_Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_TOKEN = 8192  # a consent token is a few hundred bytes
SELF_CALLER = "self"


class InquiryServicer(inquiry_pb2_grpc.InquiryServiceServicer):
    def __init__(self, service: InquiryService, blocking: Blocking) -> None:
        self.service = service
        self.blocking = blocking

    async def QueryOpen(
        self, request: inquiry_pb2.QueryRequest, context: _Ctx
    ) -> common_pb2.QueryResponse:
        return await self._participant_query(
            Channel.OPEN_INQUIRY, "QueryOpen", request, None, context
        )

    async def ShareGovernment(
        self, request: inquiry_pb2.QueryRequest, context: _Ctx
    ) -> common_pb2.QueryResponse:
        return await self._participant_query(
            Channel.GOVERNMENT_SHARING, "ShareGovernment", request, None, context
        )

    async def QueryAuthorized(
        self, request: inquiry_pb2.AuthorizedQueryRequest, context: _Ctx
    ) -> common_pb2.QueryResponse:
        return await self._participant_query(
            Channel.AUTHORIZED_INQUIRY,
            "QueryAuthorized",
            request.query,
            request.consent_token,
            context,
        )

    async def QueryOwn(
        self, request: inquiry_pb2.OwnQueryRequest, context: _Ctx
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
            item_codes=item_codes(request.item_codes),
            # A real-name portal's assertion names a person (adapters/http/oauth.py).
            subject_kind=SubjectKind.NATURAL_PERSON,
            standing=call.standing,  # the portal's, read in the release transaction
        )
        return query_response(await self._release(inquiry))

    async def _release(self, inquiry: Inquiry) -> InquiryResult:
        # SQLite: on the loop (no thread, no hand-off) unless another process holds the writer.
        result = await self.service.release_on_loop(inquiry)
        if result is None:
            result = await self.blocking.call(self.service.release, inquiry)
        return result

    async def _participant_query(
        self,
        channel: Channel,
        method: str,
        request: inquiry_pb2.QueryRequest,
        consent_token: str | None,
        context: _Ctx,
    ) -> common_pb2.QueryResponse:
        call = current_call()
        # Read first: a malformed key refuses the call before anything else is looked at.
        key = idempotency.check_key(
            [str(v) for k, v in context.invocation_metadata() or () if k == idempotency.HEADER]
        )
        if not request.subject_code:
            raise InvalidArgument.field("subject_code", "required")
        purpose = identifier(request.purpose, "purpose")
        kind = subject_kind(request.subject_kind)
        agreement_id = identifier(request.agreement_id, "agreement_id")
        if consent_token is not None and len(consent_token) > MAX_TOKEN:
            raise InvalidArgument.field("consent_token", f"at most {MAX_TOKEN} characters")
        # The caller's standing (and so its kind) is read in the release transaction.
        inquiry = Inquiry(
            channel,
            call.standing.participant_id,
            None,
            method,
            request.subject_code,
            purpose,
            item_codes(request.item_codes),
            agreement_id,
            consent_token,
            subject_kind=kind,
            idempotency_key=key,
            standing=call.standing,
        )
        return query_response(await self._release(inquiry))
