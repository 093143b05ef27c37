"""ExchangeService: the national and provincial platforms' push, pull and change feed.

Each method is its module's: PushRecords in exchange_push.py, PullRecords and SubscribeChanges
in exchange_feed.py. This class only puts them on the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from credit_gateway.adapters.grpc.exchange_feed import Feed
from credit_gateway.adapters.grpc.exchange_push import Push
from credit_gateway.adapters.grpc.v1 import exchange_pb2, exchange_pb2_grpc, submission_pb2
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import InquiryService

_Ctx = grpc.aio.ServicerContext[Any, Any]


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking, inquiry: InquiryService) -> None:
        self.push = Push(gateway, blocking)
        self.feed = Feed(gateway, blocking, inquiry)

    async def PushRecords(
        self, request_iterator: AsyncIterator[exchange_pb2.PushedRecord], context: _Ctx
    ) -> submission_pb2.SubmissionResult:
        return await self.push.push_records(request_iterator, context)

    async def PullRecords(
        self, request: exchange_pb2.PullRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.PulledSubject]:
        async for answer in self.feed.pull_records(request, context):
            yield answer

    async def SubscribeChanges(
        self, request: exchange_pb2.SubscribeRequest, context: _Ctx
    ) -> AsyncIterator[exchange_pb2.ChangeBatch]:
        async for batch in self.feed.subscribe_changes(request, context):
            yield batch
