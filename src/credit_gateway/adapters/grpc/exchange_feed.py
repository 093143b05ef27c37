"""ExchangeService.PullRecords and SubscribeChanges (placeholder: being built)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from credit_gateway.adapters.grpc.v1 import exchange_pb2
from credit_gateway.errors import FailedPrecondition
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import InquiryService

_Ctx = grpc.aio.ServicerContext[Any, Any]


class Feed:
    def __init__(self, gateway: Gateway, blocking: Blocking, inquiry: InquiryService) -> None:
        self.gateway, self.blocking, self.inquiry = gateway, blocking, inquiry

    async def pull_records(
        self, request: exchange_pb2.PullRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.PulledSubject]:
        raise FailedPrecondition("PullRecords is not built yet", reason="NOT_BUILT")
        yield  # an async generator

    async def subscribe_changes(
        self, request: exchange_pb2.SubscribeRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.ChangeBatch]:
        raise FailedPrecondition("SubscribeChanges is not built yet", reason="NOT_BUILT")
        yield
